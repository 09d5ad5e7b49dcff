//! End-to-end tests: the real `sip-lb` binary between real `sipp` callers and backends on
//! loopback (Debian package `sip-tester`; `scripts/test.sh` installs it).

mod support;

use std::time::Duration;

use support::*;

fn config_file(
    dir: &TestDir,
    lb_port: u16,
    admin_port: u16,
    list: &std::path::Path,
    extra: &str,
) -> std::path::PathBuf {
    let p = dir.path("sip-lb.toml");
    std::fs::write(
        &p,
        format!(
            "[proxy]\nlisten = [\"udp:127.0.0.1:{lb_port}\"]\nworkers = 2\ncookie_key = \"e2e\"\n\
             [dispatcher]\nlist = \"{}\"\nset = 1\nalgorithm = \"round-robin\"\n\
             [admin]\nlisten = \"127.0.0.1:{admin_port}\"\n{extra}",
            list.display()
        ),
    )
    .unwrap();
    p
}

#[test]
fn round_robin_1000_calls_exactly_250_per_backend() {
    let _g = serial();
    let dir = TestDir::new("rr");
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let _uas: Vec<Proc> = ports
        .iter()
        .map(|&p| sipp_uas(&dir, p, "uas.xml"))
        .collect();
    let list = write_list(&dir, &ports);
    let (lp, ap) = (free_port(), free_port());
    // Probes off, so the backends count exactly the calls.
    let cfg = config_file(&dir, lp, ap, &list, "[probing]\nenabled = false\n");
    let lb = SipLb::start_config(
        &dir,
        &cfg,
        format!("127.0.0.1:{lp}").parse().unwrap(),
        format!("127.0.0.1:{ap}").parse().unwrap(),
    );
    let r = sipp_uac(
        &dir,
        lb.addr,
        "uac.xml",
        1000,
        200,
        "u1",
        &[],
        Duration::from_secs(60),
    );
    assert_eq!((r.successful, r.failed), (1000, 0), "{}", r.log);
    std::thread::sleep(Duration::from_millis(1500));
    let spread: Vec<u64> = ports.iter().map(|&p| uas_calls(&dir, p)).collect();
    assert_eq!(spread, vec![250, 250, 250, 250]);
    // Every call ended: no active call, no open client transaction towards a backend.
    assert!(
        wait_until(Duration::from_secs(10), || {
            let d = lb.destinations();
            d["calls"] == 0
                && d["sets"][0]["destinations"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|x| x["outstanding"] == 0 && x["active_calls"] == 0)
        }),
        "{}",
        lb.destinations()
    );
}

#[test]
fn cancel_before_answer_and_503_when_every_backend_is_down() {
    let _g = serial();
    let dir = TestDir::new("cancel");
    let ports: Vec<u16> = (0..2).map(|_| free_port()).collect();
    let mut uas: Vec<Proc> = ports
        .iter()
        .map(|&p| sipp_uas(&dir, p, "uas_cancel.xml"))
        .collect();
    let list = write_list(&dir, &ports);
    let lb = SipLb::start(
        &dir,
        &[
            "--dispatcher-list",
            list.to_str().unwrap(),
            "--set",
            "1",
            "--algorithm",
            "4",
        ],
    );
    let r = sipp_uac(
        &dir,
        lb.addr,
        "uac_cancel.xml",
        20,
        10,
        "u1",
        &[],
        Duration::from_secs(30),
    );
    assert_eq!((r.successful, r.failed), (20, 0), "{}", r.log);
    // Every backend gone: the balancer answers 503 (after probes mark them, or after the
    // failover attempts time out).
    for u in &mut uas {
        u.kill();
    }
    let r = sipp_uac(
        &dir,
        lb.addr,
        "uac_expect_503.xml",
        3,
        1,
        "u1",
        &["-recv_timeout", "40000"],
        Duration::from_secs(60),
    );
    assert_eq!((r.successful, r.failed), (3, 0), "{}", r.log);
}

#[test]
fn stateful_failover_when_a_backend_stops_and_probes_bring_it_back() {
    let _g = serial();
    let dir = TestDir::new("failover");
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let mut uas: Vec<Proc> = ports
        .iter()
        .map(|&p| sipp_uas(&dir, p, "uas.xml"))
        .collect();
    let list = write_list(&dir, &ports);
    let (lp, ap) = (free_port(), free_port());
    let cfg = config_file(
        &dir,
        lp,
        ap,
        &list,
        "[probing]\ninterval_s = 0.5\ntimeout_s = 0.4\ninactive_threshold = 2\n[timers]\nno_response_ms = 1000\n",
    );
    let lb = SipLb::start_config(
        &dir,
        &cfg,
        format!("127.0.0.1:{lp}").parse().unwrap(),
        format!("127.0.0.1:{ap}").parse().unwrap(),
    );
    let addr = lb.addr;
    let dir2 = TestDir(dir.0.clone());
    let caller = std::thread::spawn(move || {
        let r = sipp_uac(
            &dir2,
            addr,
            "uac.xml",
            600,
            100,
            "u1",
            &[],
            Duration::from_secs(60),
        );
        std::mem::forget(dir2);
        r
    });
    std::thread::sleep(Duration::from_secs(2));
    uas[3].kill();
    let r = caller.join().unwrap();
    assert_eq!((r.successful, r.failed), (600, 0), "{}", r.log);
    assert!(
        wait_until(Duration::from_secs(5), || lb.state(3) == "inactive"),
        "{}",
        lb.destinations()
    );
    // The backend returns on the same port: probes make it active again.
    uas[3] = sipp_uas(&dir, ports[3], "uas.xml");
    assert!(
        wait_until(Duration::from_secs(10), || lb.state(3) == "active"),
        "{}",
        lb.destinations()
    );
}

#[test]
fn stateless_mode_completes_calls() {
    let _g = serial();
    let dir = TestDir::new("stateless");
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let _uas: Vec<Proc> = ports
        .iter()
        .map(|&p| sipp_uas(&dir, p, "uas.xml"))
        .collect();
    let list = write_list(&dir, &ports);
    let lb = SipLb::start(
        &dir,
        &[
            "--dispatcher-list",
            list.to_str().unwrap(),
            "--set",
            "1",
            "--algorithm",
            "round-robin",
            "--stateless",
        ],
    );
    let r = sipp_uac(
        &dir,
        lb.addr,
        "uac.xml",
        400,
        100,
        "u1",
        &[],
        Duration::from_secs(40),
    );
    assert_eq!((r.successful, r.failed), (400, 0), "{}", r.log);
}

#[test]
fn tcp_caller_to_udp_backends() {
    let _g = serial();
    let dir = TestDir::new("tcp");
    let ports: Vec<u16> = (0..2).map(|_| free_port()).collect();
    let _uas: Vec<Proc> = ports
        .iter()
        .map(|&p| sipp_uas(&dir, p, "uas.xml"))
        .collect();
    let list = write_list(&dir, &ports);
    let port = free_port();
    let tcp = format!("tcp:127.0.0.1:{port}");
    let lb = SipLb::start(
        &dir,
        &[
            "--listen",
            &tcp,
            "--dispatcher-list",
            list.to_str().unwrap(),
            "--set",
            "1",
            "--algorithm",
            "4",
        ],
    );
    let target = format!("127.0.0.1:{port}").parse().unwrap();
    let r = sipp_uac(
        &dir,
        target,
        "uac.xml",
        50,
        20,
        "t1",
        &[],
        Duration::from_secs(40),
    );
    assert_eq!(
        (r.successful, r.failed),
        (50, 0),
        "{}\n{}",
        r.log,
        lb.proc.log_text()
    );
}

#[test]
fn reload_under_load_loses_no_call() {
    let _g = serial();
    let dir = TestDir::new("reload");
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let _uas: Vec<Proc> = ports
        .iter()
        .map(|&p| sipp_uas(&dir, p, "uas.xml"))
        .collect();
    let list = write_list(&dir, &ports[..3]);
    let lb = SipLb::start(
        &dir,
        &[
            "--dispatcher-list",
            list.to_str().unwrap(),
            "--set",
            "1",
            "--algorithm",
            "4",
        ],
    );
    let addr = lb.addr;
    let dir2 = TestDir(dir.0.clone());
    let caller = std::thread::spawn(move || {
        let r = sipp_uac(
            &dir2,
            addr,
            "uac.xml",
            800,
            200,
            "u1",
            &[],
            Duration::from_secs(60),
        );
        std::mem::forget(dir2);
        r
    });
    std::thread::sleep(Duration::from_millis(1500));
    // Mid-run: backend 0 leaves, backend 3 joins; reload by SIGHUP, then by the API.
    write_list(&dir, &ports[1..]);
    lb.proc.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(1000));
    write_list(&dir, &ports);
    let (code, body) = lb.http("POST", "/api/reload", "");
    assert_eq!(code, 200, "{body}");
    let r = caller.join().unwrap();
    assert_eq!((r.successful, r.failed), (800, 0), "{}", r.log);
    let d = lb.destinations();
    assert_eq!(
        d["sets"][0]["destinations"].as_array().unwrap().len(),
        4,
        "{d}"
    );
    assert!(uas_calls(&dir, ports[3]) > 0, "the added backend got calls");
}

#[test]
fn invalid_rfc4475_requests_get_4xx_while_calls_run() {
    let _g = serial();
    let dir = TestDir::new("torture");
    let ports: Vec<u16> = (0..2).map(|_| free_port()).collect();
    let _uas: Vec<Proc> = ports
        .iter()
        .map(|&p| sipp_uas(&dir, p, "uas.xml"))
        .collect();
    let list = write_list(&dir, &ports);
    let mut lb = SipLb::start(
        &dir,
        &[
            "--dispatcher-list",
            list.to_str().unwrap(),
            "--set",
            "1",
            "--algorithm",
            "4",
        ],
    );
    let addr = lb.addr;
    let dir2 = TestDir(dir.0.clone());
    let caller = std::thread::spawn(move || {
        let r = sipp_uac(
            &dir2,
            addr,
            "uac.xml",
            300,
            50,
            "u1",
            &[],
            Duration::from_secs(40),
        );
        std::mem::forget(dir2);
        r
    });
    let corpus = root().join("sip-core/tests/corpus/rfc4475");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut answered = 0;
    let files = [
        "badinv01",
        "clerr",
        "ncl",
        "scalar02",
        "quotbal",
        "ltgtruri",
        "lwsruri",
        "lwsstart",
        "trws",
        "escruri",
        "badaspec",
        "badvers",
        "mismatch01",
        "mismatch02",
        "insuf",
        "multi01",
        "mcl01",
        "bext01",
        "unkscm",
        "zeromf",
    ];
    for f in files {
        // The corpus names documentation hosts (192.0.2.x, example.com); point them at
        // loopback so nothing could ever leave the machine.
        let raw = std::fs::read(corpus.join(format!("{f}.dat"))).unwrap();
        let text = String::from_utf8_lossy(&raw).replace("192.0.2.", "127.0.0.");
        sock.send_to(text.as_bytes(), lb.addr).unwrap();
        let mut buf = [0u8; 65536];
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let line = String::from_utf8_lossy(&buf[..n.min(12)]).to_string();
            assert!(
                line.starts_with("SIP/2.0 4") || line.starts_with("SIP/2.0 505"),
                "{f}: {line}"
            );
            answered += 1;
        }
    }
    assert!(
        answered >= files.len() - 2,
        "only {answered} of {} answered",
        files.len()
    );
    let r = caller.join().unwrap();
    assert_eq!((r.successful, r.failed), (300, 0), "{}", r.log);
    assert!(lb.proc.child.try_wait().unwrap().is_none(), "sip-lb exited");
    // Clean exit on SIGTERM.
    lb.proc.signal(libc::SIGTERM);
    assert_eq!(lb.proc.wait_timeout(Duration::from_secs(10)), Some(0));
}

#[test]
fn admin_metrics_state_and_check_config() {
    let _g = serial();
    let dir = TestDir::new("admin");
    let ports: Vec<u16> = (0..2).map(|_| free_port()).collect();
    let list = write_list(&dir, &ports);
    let lb = SipLb::start(
        &dir,
        &[
            "--dispatcher-list",
            list.to_str().unwrap(),
            "--set",
            "1",
            "--algorithm",
            "call-id-hash",
        ],
    );
    let (code, body) = lb.http("GET", "/metrics", "");
    assert_eq!(code, 200);
    assert!(
        body.contains("# TYPE siplb_requests_received_total counter"),
        "{body}"
    );
    assert!(
        body.contains("siplb_requests_received_total{method=\"OPTIONS\"}"),
        "{body}"
    );
    let (code, body) = lb.http(
        "POST",
        "/api/destinations/1/1/state",
        "{\"state\":\"disabled\"}",
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(lb.state(1), "disabled");
    let (code, _) = lb.http(
        "POST",
        "/api/destinations/1/9/state",
        "{\"state\":\"disabled\"}",
    );
    assert_eq!(code, 404);
    let (code, page) = lb.http("GET", "/", "");
    assert_eq!(code, 200);
    assert!(page.contains("/api/destinations"));

    // check-config: a good file prints the effective configuration; a bad one names
    // file, line and field.
    let exe = env!("CARGO_BIN_EXE_sip-lb");
    let good = root().join("examples/sip-lb.toml");
    let out = std::process::Command::new(exe)
        .arg("check-config")
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("[dispatcher]"));
    let bad = dir.path("bad.toml");
    std::fs::write(
        &bad,
        "[proxy]\nlisten = [\"udp:127.0.0.1:5060\"]\nmode = \"sideways\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(exe)
        .arg("check-config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:3: proxy.mode: "), "{err}");
}
