//! The `sip-lb` binary (being assembled; see README.md).
fn main() {
    eprintln!("sip-lb: the runtime is not assembled yet");
    std::process::exit(2);
}
