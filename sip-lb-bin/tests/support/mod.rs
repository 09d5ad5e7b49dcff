//! End-to-end harness: the real `sip-lb` binary and real `sipp` processes on loopback,
//! ports chosen per test, every process stopped by PID when the test ends.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A scenario file of the shared sipp scenarios.
pub fn scenario(name: &str) -> PathBuf {
    let own = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(name);
    if own.exists() {
        own
    } else {
        root().join("benches/lb").join(name)
    }
}

static USED: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// A UDP+TCP port free on 127.0.0.1 now, never handed out twice in this process.
pub fn free_port() -> u16 {
    loop {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = s.local_addr().unwrap().port();
        drop(s);
        let mut used = USED.lock().unwrap_or_else(|e| e.into_inner());
        if !used.contains(&p) && std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            used.push(p);
            return p;
        }
    }
}

static SERIAL: Mutex<()> = Mutex::new(());

/// End-to-end tests run one at a time (they measure exact spreads and share 2 cores).
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A child process killed (by its PID) when dropped.
pub struct Proc {
    pub child: Child,
    pub name: String,
    pub log: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal to this process only.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with the PID of a child we spawned and still own (not yet
        // reaped, so the PID cannot have been reused).
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits for exit up to `timeout`; returns the exit code.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<i32> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(libc::SIGTERM);
            if self.wait_timeout(Duration::from_secs(3)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A temporary directory for one test, removed at the end unless the test failed.
pub struct TestDir(pub PathBuf);

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        let d = std::env::temp_dir().join(format!("sip-lb-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TestDir(d)
    }
    pub fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Starts any program for a test, its output in `<name>.log` in the test directory.
pub fn spawn_proc(name: &str, cmd: Command, dir: &TestDir) -> Proc {
    spawn(name, cmd, dir)
}

fn spawn(name: &str, mut cmd: Command, dir: &TestDir) -> Proc {
    let log = dir.path(&format!("{name}.log"));
    let f = std::fs::File::create(&log).unwrap();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .current_dir(&dir.0)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {name}: {e} (scripts/test.sh installs sipp, tshark and socat)")
        });
    Proc {
        child,
        name: name.into(),
        log,
    }
}

/// A sipp backend answering calls and probes on `port`.
pub fn sipp_uas(dir: &TestDir, port: u16, scenario_file: &str) -> Proc {
    let mut c = Command::new("sipp");
    c.arg("-sf")
        .arg(scenario(scenario_file))
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args([
            "-trace_stat",
            "-stf",
            &format!("uas-{port}.csv"),
            "-fd",
            "1",
        ])
        .args(["-nostdin", "-timeout", "120s", "-timeout_error"]);
    let p = spawn(&format!("uas-{port}"), c, dir);
    std::thread::sleep(Duration::from_millis(200));
    p
}

/// Runs a sipp caller to completion; returns its final statistics.
#[allow(clippy::too_many_arguments)]
pub fn sipp_uac(
    dir: &TestDir,
    target: SocketAddr,
    scenario_file: &str,
    calls: u32,
    rate: u32,
    transport: &str,
    extra: &[&str],
    timeout: Duration,
) -> SippResult {
    let port = free_port();
    let stat = format!("uac-{port}.csv");
    let mut c = Command::new("sipp");
    c.arg("-sf")
        .arg(scenario(scenario_file))
        .arg(target.to_string())
        .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-t", transport])
        .args(["-m", &calls.to_string(), "-r", &rate.to_string()])
        .args(["-trace_stat", "-stf", &stat, "-fd", "1"])
        .args([
            "-nostdin",
            "-timeout",
            &format!("{}s", timeout.as_secs()),
            "-timeout_error",
        ])
        .args(extra);
    let mut p = spawn(&format!("uac-{port}"), c, dir);
    let code = p.wait_timeout(timeout + Duration::from_secs(10));
    if code.is_none() {
        p.kill();
    }
    let st = read_stats(&dir.path(&stat));
    SippResult {
        exit: code,
        successful: st
            .get("SuccessfulCall(C)")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        failed: st
            .get("FailedCall(C)")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        created: st
            .get("TotalCallCreated")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        log: p.log_text(),
    }
}

/// The last line of a sipp statistics CSV.
pub fn read_stats(path: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() < 2 {
        return HashMap::new();
    }
    let head = lines[0].trim_end_matches(';').split(';');
    let last = lines[lines.len() - 1].trim_end_matches(';').split(';');
    head.zip(last)
        .map(|(h, v)| (h.to_string(), v.to_string()))
        .collect()
}

/// Calls a sipp backend has seen (first messages of new Call-IDs), from its stat file.
pub fn uas_calls(dir: &TestDir, port: u16) -> u64 {
    read_stats(&dir.path(&format!("uas-{port}.csv")))
        .get("TotalCallCreated")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[derive(Debug)]
pub struct SippResult {
    pub exit: Option<i32>,
    pub successful: u64,
    pub failed: u64,
    pub created: u64,
    pub log: String,
}

impl SippResult {
    /// Asserts that all `calls` succeeded and none failed; on failure prints sipp's log
    /// and `context` (e.g. the balancer's log).
    #[track_caller]
    pub fn assert_all_succeeded(&self, calls: u64, context: &str) {
        assert_eq!(
            (self.successful, self.failed),
            (calls, 0),
            "{}\n{context}",
            self.log
        );
    }
}

/// The balancer under test.
pub struct SipLb {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
}

impl SipLb {
    /// Starts `sip-lb` with `args` (the listen and admin addresses are added) and waits
    /// until it answers an OPTIONS.
    pub fn start(dir: &TestDir, args: &[&str]) -> SipLb {
        Self::start_workers(dir, 2, args)
    }

    /// The balancer with `workers` worker threads over set 1 of the list file `list`, by
    /// `algorithm` (a Kamailio number or a name), and the `extra` options.
    pub fn start_list(
        dir: &TestDir,
        workers: usize,
        list: &Path,
        algorithm: &str,
        extra: &[&str],
    ) -> SipLb {
        let list = list.to_str().expect("a UTF-8 path");
        let mut args = vec![
            "--dispatcher-list",
            list,
            "--set",
            "1",
            "--algorithm",
            algorithm,
        ];
        args.extend_from_slice(extra);
        Self::start_workers(dir, workers, &args)
    }

    /// [`SipLb::start`] with `workers` worker threads.
    pub fn start_workers(dir: &TestDir, workers: usize, args: &[&str]) -> SipLb {
        let port = free_port();
        let admin_port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
        let mut c = Command::new(env!("CARGO_BIN_EXE_sip-lb"));
        c.args(["--listen", &format!("udp:{addr}")])
            .args([
                "--admin",
                &admin.to_string(),
                "--workers",
                &workers.to_string(),
                "--log-level",
                "info",
            ])
            .args(args);
        Self::spawn_and_wait(dir, c, addr, admin)
    }

    /// Starts `sip-lb --config FILE` where the config listens on `addr` and serves admin on `admin`.
    pub fn start_config(
        dir: &TestDir,
        config: &Path,
        addr: SocketAddr,
        admin: SocketAddr,
    ) -> SipLb {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sip-lb"));
        c.arg("--config").arg(config);
        Self::spawn_and_wait(dir, c, addr, admin)
    }

    /// Starts `sip-lb` with exactly `args` (which must make it listen on UDP `addr` and
    /// serve admin on `admin`) and waits up to `timeout` for it to answer an OPTIONS.
    pub fn spawn_with(
        dir: &TestDir,
        args: &[&str],
        addr: SocketAddr,
        admin: SocketAddr,
        timeout: Duration,
    ) -> SipLb {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sip-lb"));
        c.args(args);
        Self::wait_ready(dir, c, addr, admin, timeout)
    }

    fn spawn_and_wait(dir: &TestDir, c: Command, addr: SocketAddr, admin: SocketAddr) -> SipLb {
        Self::wait_ready(dir, c, addr, admin, Duration::from_secs(15))
    }

    fn wait_ready(
        dir: &TestDir,
        c: Command,
        addr: SocketAddr,
        admin: SocketAddr,
        timeout: Duration,
    ) -> SipLb {
        let proc = spawn("sip-lb", c, dir);
        let mut lb = SipLb { proc, addr, admin };
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if options_ping(addr) == Some(200) {
                return lb;
            }
            if let Ok(Some(st)) = lb.proc.child.try_wait() {
                panic!(
                    "sip-lb exited ({st}) before answering OPTIONS on {addr}:\n{}",
                    lb.proc.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "sip-lb did not answer OPTIONS on {addr} within {timeout:?}:\n{}",
            lb.proc.log_text()
        );
    }

    /// GET or POST on the admin interface; returns (status, body).
    pub fn http(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        http(self.admin, method, path, body)
    }

    pub fn destinations(&self) -> serde_json::Value {
        let (code, body) = self.http("GET", "/api/destinations", "");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// The state of destination `index` of set 1.
    pub fn state(&self, index: usize) -> String {
        self.destinations()["sets"][0]["destinations"][index]["state"]
            .as_str()
            .unwrap_or("?")
            .to_string()
    }
}

/// A minimal HTTP/1.1 client (the admin interface is on loopback).
pub fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or("", |x| x.1).to_string();
    (code, body)
}

/// Sends an OPTIONS to `addr`, returns the status code of the answer (within 300 ms).
pub fn options_ping(addr: SocketAddr) -> Option<u16> {
    let s = UdpSocket::bind("127.0.0.1:0").ok()?;
    s.set_read_timeout(Some(Duration::from_millis(300))).ok()?;
    let me = s.local_addr().ok()?;
    let msg = format!(
        "OPTIONS sip:{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKping{}\r\nMax-Forwards: 70\r\n\
         From: <sip:test@{me}>;tag=p\r\nTo: <sip:{addr}>\r\nCall-ID: ping-{}-{}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        me.port(),
        me.port(),
        std::process::id()
    );
    s.send_to(msg.as_bytes(), addr).ok()?;
    let mut buf = [0u8; 4096];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    std::str::from_utf8(&buf[..n])
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A sipp backend running `backend.xml`: answers calls (with Record-Route), CANCELs and
/// OPTIONS probes on 127.0.0.1:`port`, and counts what it receives per scenario message
/// (`-trace_counts`), so calls (INVITEs) and probes (OPTIONS) are told apart.
pub struct Backend {
    /// The sipp process.
    pub proc: Proc,
    /// Its port on 127.0.0.1.
    pub port: u16,
    counts: PathBuf,
}

impl Backend {
    /// Starts a backend on `port`; it stops by itself after `lifetime` at the latest.
    pub fn start(dir: &TestDir, port: u16, lifetime: Duration) -> Backend {
        let mut c = Command::new("sipp");
        c.arg("-sf")
            .arg(scenario("backend.xml"))
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-trace_counts", "-fd", "1", "-nostdin"])
            .args(["-timeout", &format!("{}s", lifetime.as_secs().max(1))]);
        let proc = spawn(&format!("backend-{port}"), c, dir);
        let counts = dir.path(&format!("backend_{}_counts.csv", proc.pid()));
        let b = Backend { proc, port, counts };
        // Ready when it answers a probe (that probe is counted).
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        assert!(
            wait_until(Duration::from_secs(5), || options_ping(addr) == Some(200)),
            "backend on {port} does not answer OPTIONS:\n{}",
            b.proc.log_text()
        );
        b
    }

    /// The address.
    pub fn addr(&self) -> SocketAddr {
        format!("127.0.0.1:{}", self.port).parse().unwrap()
    }

    /// Message counts from sipp's last dump (once a second): column name → count.
    pub fn counts(&self) -> HashMap<String, u64> {
        read_stats(&self.counts)
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
            .collect()
    }

    /// The first count of `method` received (`INVITE`, `OPTIONS`, `CANCEL`, ...).
    fn received(&self, method: &str) -> u64 {
        let c = self.counts();
        let suffix = format!("_{method}_Recv");
        let mut cols: Vec<(u32, u64)> = c
            .iter()
            .filter_map(|(k, v)| Some((k.strip_suffix(&suffix)?.parse().ok()?, *v)))
            .collect();
        cols.sort();
        cols.first().map_or(0, |(_, v)| *v)
    }

    /// Calls received (initial INVITEs, retransmissions not counted).
    pub fn calls(&self) -> u64 {
        self.received("INVITE")
    }

    /// OPTIONS probes received (the readiness probe included).
    pub fn probes(&self) -> u64 {
        self.received("OPTIONS")
    }

    /// CANCELs received before the call was answered.
    pub fn cancels(&self) -> u64 {
        self.received("CANCEL")
    }

    /// Waits until sipp's dumped counts satisfy `f` (they lag by up to a second).
    pub fn wait_counts(&self, timeout: Duration, mut f: impl FnMut(&Backend) -> bool) -> bool {
        wait_until(timeout, || f(self))
    }
}

/// `n` sipp backends running `scenario_file` on free ports, and a dispatcher.list of them
/// (set 1): `(ports, backends, list file)`.
pub fn uas_backends(
    dir: &TestDir,
    n: usize,
    scenario_file: &str,
) -> (Vec<u16>, Vec<Proc>, PathBuf) {
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let uas = ports
        .iter()
        .map(|&p| sipp_uas(dir, p, scenario_file))
        .collect();
    let list = write_list(dir, &ports);
    (ports, uas, list)
}

/// Writes a dispatcher.list for set 1 with these ports.
pub fn write_list(dir: &TestDir, ports: &[u16]) -> PathBuf {
    let p = dir.path("dispatcher.list");
    let text: String = ports
        .iter()
        .map(|p| format!("1 sip:127.0.0.1:{p}\n"))
        .collect();
    std::fs::write(&p, text).unwrap();
    p
}

/// Waits until `f` is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

/// A sipp backend running `scenario_file` with `-trace_msg`, so that every message it
/// receives can be read back with [`traced_requests`].
pub fn sipp_traced(dir: &TestDir, port: u16, scenario_file: &str) -> Proc {
    let mut c = Command::new("sipp");
    c.arg("-sf")
        .arg(scenario(scenario_file))
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-trace_msg", "-nostdin", "-timeout", "120s"]);
    let p = spawn(&format!("traced-{port}"), c, dir);
    std::thread::sleep(Duration::from_millis(200));
    p
}

/// The requests a traced sipp received, in order: `(method, Call-ID)`, retransmissions
/// included (each datagram once).
pub fn traced_requests(dir: &TestDir, p: &Proc, scenario_file: &str) -> Vec<(String, String)> {
    let stem = scenario_file.trim_end_matches(".xml");
    let log = dir.path(&format!("{stem}_{}_messages.log", p.pid()));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let mut out = Vec::new();
    // Each received datagram is logged once as "UDP message received [n] bytes :"
    // (sipp logs an unexpected one a second time under another title).
    for block in text.split("-----------------------------------------------") {
        let Some(body) = block
            .split_once("message received [")
            .map(|(_, rest)| rest.split_once('\n').map_or("", |x| x.1))
        else {
            continue;
        };
        let mut lines = body.lines().map(str::trim).filter(|l| !l.is_empty());
        let Some(first) = lines.next() else { continue };
        if first.starts_with("SIP/2.0") {
            continue;
        }
        let method = first.split(' ').next().unwrap_or("").to_string();
        let call_id = lines
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                (name.eq_ignore_ascii_case("call-id") || name == "i")
                    .then(|| value.trim().to_string())
            })
            .unwrap_or_default();
        out.push((method, call_id));
    }
    out
}
