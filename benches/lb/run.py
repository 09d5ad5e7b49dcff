#!/usr/bin/env python3
"""Side-by-side load benchmark: sip-lb (stateful, stateless) against Kamailio's dispatcher.

Topology on loopback: one sipp caller (INVITE/100/180/200/ACK/BYE/200, honouring
Record-Route) -> balancer on UDP 127.0.0.1:5060 -> four sipp backends (127.0.0.1:5081-5084)
that answer calls and OPTIONS probes.

For each run it measures: calls attempted / succeeded / failed, retransmissions seen by the
caller, achieved calls/s, the balancer's CPU seconds per 1000 calls (user+system of its
whole process tree, /proc/PID/stat before and after the measured window; also shown apart as
user and system time), how often per call the balancer's threads went to sleep waiting for
work (voluntary context switches, /proc/PID/task/*/status), the caller's
CPU in the same window (ratio balancer/caller), idle and peak RSS, and the spread of calls
over the backends.

Kamailio runs with its default memory manager (`qm`, which Debian builds with its debugging
records) and with `-x tlsf` (`kamailio-tlsf`): the ratios are taken against the cheaper of
all its variants, as an operator tuning it would run it.

    benches/lb/run.py            # fixed rate (1000 calls/s, 20000 calls, 5 reps) + sweep
    benches/lb/run.py --quick    # under two minutes: 1 rep of 3000 calls, short sweep
    benches/lb/run.py --no-build --lb-bin A --alt-bin B --balancers sip-lb-1w,sip-lb-1w-alt --sweep ""
                                 # two builds of sip-lb against each other, interleaved

sip-lb variants by name: `-stateless`, `-1w` (one worker), `-linger` (`--linger-us 500`),
`-alt` (the `--alt-bin` binary), in that order (`sip-lb-stateless-1w-alt`).

Installs kamailio and sip-tester when missing (apt-get), refuses to start when a port is
taken, bounds every run in count and time, and stops only the processes it started.
"""

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
LB = ("127.0.0.1", 5060)
CALLER_PORT = 5070
BACKENDS = [5081, 5082, 5083, 5084]
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
MPATH_CANDIDATES = [
    "/usr/lib/x86_64-linux-gnu/kamailio/modules/",
    "/usr/lib/aarch64-linux-gnu/kamailio/modules/",
    "/usr/lib/kamailio/modules/",
]

started = []  # every Popen we started, stopped by PID at exit


def need(cmd, pkg):
    if shutil.which(cmd):
        return
    print(f"run.py: installing {pkg} (for {cmd})", file=sys.stderr)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", pkg], check=True, env=env)


def port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def spawn(args, log, **kw):
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True, **kw)
    started.append(p)
    return p


# How long a balancer may take to exit after SIGTERM before it is killed (--stop-wait).
STOP_WAIT = 5
# How long the caller waits for an expected message before the call fails (sipp's
# -recv_timeout, seconds).
RECV_TIMEOUT = 32
# A second sip-lb binary for the balancers named ...-alt (--alt-bin).
ALT_BIN = ""


def stop(p, sig=signal.SIGTERM, wait=5):
    if p.poll() is not None:
        return
    try:
        os.killpg(p.pid, sig)  # the group we created: the process and its children only
    except ProcessLookupError:
        return
    try:
        p.wait(wait)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(5)


def stop_all():
    for p in started:
        stop(p, wait=3)


def tree(pid):
    """pid and all its descendants."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(d))
            except OSError:
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_split(pid):
    """User and system CPU seconds of pid's whole process tree."""
    user = system = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11])
            system += int(fields[12])
        except OSError:
            pass
    return user / CLK, system / CLK


def cpu_seconds(pid):
    return sum(cpu_split(pid))


def context_switches(pid):
    """Voluntary context switches (a thread went to sleep waiting) of pid's whole tree."""
    total = 0
    for p in tree(pid):
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/status") as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches:"):
                            total += int(line.split()[1])
        except OSError:
            pass
    return total


def rss_bytes(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * PAGE
        except OSError:
            pass
    return total


def wait_ready(timeout=10):
    """Waits until the balancer answers an OPTIONS (any response)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.2)
    port = s.getsockname()[1]
    end = time.time() + timeout
    # Kamailio relays this OPTIONS to a backend. A sipp backend silently drops a Call-ID it
    # has seen in the last half minute (its dead-call memory), and Kamailio then marks that
    # backend down: so every probe of every run has a Call-ID and branch of its own.
    run_id = f"{os.getpid()}-{time.monotonic_ns()}"
    n = 0
    while time.time() < end:
        n += 1
        msg = (f"OPTIONS sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKready{run_id}-{n}\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:ready@127.0.0.1>;tag=r{n}\r\nTo: <sip:127.0.0.1:5060>\r\n"
               f"Call-ID: ready-{run_id}-{n}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        s.sendto(msg.encode(), LB)
        try:
            s.recvfrom(65536)
            s.close()
            return True
        except socket.timeout:
            pass
    s.close()
    return False


def sipp_stats(path):
    """Last line of a sipp -trace_stat CSV as a dict."""
    try:
        with open(path) as f:
            lines = [l for l in f.read().splitlines() if l.strip()]
    except OSError:
        return {}
    if len(lines) < 2:
        return {}
    head = lines[0].rstrip(";").split(";")
    last = lines[-1].rstrip(";").split(";")
    return dict(zip(head, last))


def stat_int(d, key):
    try:
        return int(d.get(key, "0"))
    except ValueError:
        return 0


class Balancer:
    def __init__(self, name, workdir, lb_bin, list_file, children=2, lb_args=()):
        self.name, self.workdir, self.lb_bin, self.list_file = name, workdir, lb_bin, list_file
        self.children = children
        self.lb_args = list(lb_args)
        self.proc = None

    def start(self):
        log = open(os.path.join(self.workdir, f"{self.name}.log"), "w")
        if self.name.startswith("sip-lb"):
            args = [self.lb_bin, "--listen", "udp:127.0.0.1:5060", "--dispatcher-list", self.list_file,
                    "--set", "1", "--algorithm", "4", "--admin", "127.0.0.1:0", "--log-level", "warn"]
            if self.name.startswith("sip-lb-stateless"):
                args.append("--stateless")
            if "-1w" in self.name:
                # One worker: it sends from the listener and blocks in its receive.
                args += ["--workers", "1"]
            if self.name.endswith("-alt"):
                # The same options with another build (`--alt-bin`): an A/B of two builds
                # in one run, interleaved like every other variant.
                if not ALT_BIN:
                    raise RuntimeError(f"{self.name} needs --alt-bin")
                args[0] = ALT_BIN
            if "-linger" in self.name:
                # Receive coalescing: 500 us more latency per hop, fewer wake-ups.
                args += ["--linger-us", "500"]
            self.proc = spawn(args + self.lb_args, log)
        else:
            mode = "stateless" if "stateless" in self.name else "stateful"
            mpath = next((m for m in MPATH_CANDIDATES if os.path.isdir(m)), MPATH_CANDIDATES[0])
            with open(os.path.join(HERE, f"kamailio-{mode}.cfg")) as f:
                cfg = (f.read().replace("__LISTEN__", "127.0.0.1:5060").replace("__LIST__", self.list_file)
                       .replace("__CHILDREN__", str(self.children)).replace("__MPATH__", mpath))
            path = os.path.join(self.workdir, f"{self.name}.cfg")
            with open(path, "w") as f:
                f.write(cfg)
            # Kamailio's memory manager: its default (qm) unless the name asks for another
            # (`kamailio-tlsf`, `kamailio-stateless-fm`), for shared and private memory alike.
            memory = next((["-x", m] for m in ("tlsf", "fm", "qm") if self.name.endswith(f"-{m}")), [])
            self.proc = spawn(["kamailio", "-f", path, "-DD", "-E", "-m", "1024", "-M", "64"] + memory +
                              ["-P", os.path.join(self.workdir, f"{self.name}.pid")], log)
        if not wait_ready():
            raise RuntimeError(f"{self.name} did not answer on 127.0.0.1:5060; see {log.name}")

    def stop(self):
        if self.proc:
            stop(self.proc, wait=STOP_WAIT)
            self.proc = None


def start_backends(workdir):
    procs = []
    for port in BACKENDS:
        log = open(os.path.join(workdir, f"backend-{port}.log"), "w")
        procs.append(spawn(["sipp", "-sf", os.path.join(HERE, "uas.xml"), "-i", "127.0.0.1", "-p", str(port),
                            "-trace_stat", "-stf", os.path.join(workdir, f"backend-{port}.csv"), "-fd", "1",
                            "-nostdin", "-timeout", "3600s", "-max_recv_loops", "10000",
                            "-t", "u1"], log, cwd=workdir))
    time.sleep(0.5)
    for p in procs:
        if p.poll() is not None:
            raise RuntimeError("a sipp backend did not start; see backend logs in " + workdir)
    return procs


def one_run(bal, workdir, rate, calls, tag):
    stat = os.path.join(workdir, f"caller-{tag}.csv")
    log = open(os.path.join(workdir, f"caller-{tag}.log"), "w")
    timeout = int(calls / rate * 2 + 30)
    idle_rss = rss_bytes(bal.proc.pid)
    cpu0 = cpu_split(bal.proc.pid)
    sw0 = context_switches(bal.proc.pid)
    t0 = time.time()
    caller = spawn(["sipp", "-sf", os.path.join(HERE, "uac.xml"), f"{LB[0]}:{LB[1]}", "-i", "127.0.0.1",
                    "-p", str(CALLER_PORT), "-r", str(rate), "-m", str(calls), "-l", str(max(rate * 4, 100)),
                    "-trace_stat", "-stf", stat, "-fd", "1", "-nostdin", "-timeout", f"{timeout}s",
                    "-timeout_error", "-max_recv_loops", "10000", "-max_sched_loops", "10000", "-t", "u1",
                    "-recv_timeout", f"{RECV_TIMEOUT}s"], log, cwd=workdir)
    caller_cpu = 0.0
    peak = idle_rss
    while caller.poll() is None:
        time.sleep(0.25)
        peak = max(peak, rss_bytes(bal.proc.pid))
        c = cpu_seconds(caller.pid)
        if c:
            caller_cpu = c
        if time.time() - t0 > timeout + 10:
            stop(caller)
    elapsed = time.time() - t0
    cpu1 = cpu_split(bal.proc.pid)
    sw1 = context_switches(bal.proc.pid)
    st = sipp_stats(stat)
    ok, failed = stat_int(st, "SuccessfulCall(C)"), stat_int(st, "FailedCall(C)")
    retrans = stat_int(st, "Retransmissions(C)")
    user, system = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    used = user + system
    return {
        "balancer": bal.name, "rate": rate, "calls": calls, "ok": ok, "failed": failed,
        "retrans": retrans, "cps": ok / elapsed if elapsed else 0,
        # sipp's own measure of the rate at which it created calls (its CallRate(C)).
        "created_rate": float(st.get("CallRate(C)", "0") or 0),
        "cpu_per_1000": used / max(ok, 1) * 1000, "caller_cpu": caller_cpu,
        "user_per_1000": user / max(ok, 1) * 1000, "sys_per_1000": system / max(ok, 1) * 1000,
        "sleeps_per_call": (sw1 - sw0) / max(ok, 1),
        "ratio_caller": used / caller_cpu if caller_cpu else float("nan"),
        "idle_rss_mb": idle_rss / 2**20, "peak_rss_mb": peak / 2**20,
    }


def spread(workdir):
    # The backends write their counters once a second (-fd 1): wait for the write that
    # includes the last calls, or the last second's calls are missing from the spread.
    time.sleep(2.5)
    out = []
    for port in BACKENDS:
        st = sipp_stats(os.path.join(workdir, f"backend-{port}.csv"))
        # Calls the backend received (its OPTIONS probes included, one per 5 s): a
        # completed call is counted only when sipp lets it go, 4 s after its last
        # message, so SuccessfulCall lags the spread by seconds.
        out.append(stat_int(st, "IncomingCall(C)"))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one short repetition and a short sweep (< 2 min)")
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--sweep", default="1000,2000,3000,4000,5000,6000,8000,10000")
    ap.add_argument("--balancers", default="sip-lb,sip-lb-1w,sip-lb-stateless,sip-lb-stateless-1w,kamailio,kamailio-tlsf,"
                    "kamailio-stateless,kamailio-stateless-tlsf",
                    help="sip-lb and sip-lb-stateless run with one worker per core, the -1w variants with one "
                         "worker; kamailio runs with its default memory manager (qm), the -tlsf and -fm variants "
                         "with `-x tlsf` and `-x fm`")
    ap.add_argument("--kamailio-children", default="2,4")
    ap.add_argument("--no-build", action="store_true", help="use the sip-lb binary as it is")
    ap.add_argument("--stop-wait", type=float, default=5,
                    help="seconds a balancer may take to exit after SIGTERM (a --lb-bin under valgrind needs more)")
    ap.add_argument("--lb-args", default="", help="extra sip-lb options, e.g. \"--workers 1\"")
    ap.add_argument("--alt-bin", default="",
                    help="a second sip-lb binary, run for the balancer names ending in -alt "
                         "(sip-lb-1w-alt: the options of sip-lb-1w, this binary)")
    ap.add_argument("--lb-bin", default=os.path.join(ROOT, "target", "release", "sip-lb"),
                    help="the sip-lb binary (default: target/release/sip-lb, built first)")
    a = ap.parse_args()
    global STOP_WAIT, RECV_TIMEOUT, ALT_BIN
    STOP_WAIT = a.stop_wait
    ALT_BIN = a.alt_bin
    if a.quick:
        # A call that lost a message fails after 8 s instead of 32, so a failing sweep
        # step cannot hold the quick run for half a minute.
        RECV_TIMEOUT = 8
        a.calls, a.reps, a.sweep, a.kamailio_children = 3000, 1, "2000,4000", "2"
        if a.balancers == ap.get_default("balancers"):
            a.balancers = "sip-lb-1w,sip-lb-stateless-1w,kamailio-tlsf,kamailio-stateless-tlsf"

    need("sipp", "sip-tester")
    need("kamailio", "kamailio")
    for port in [LB[1], CALLER_PORT] + BACKENDS:
        if not port_free(port):
            sys.exit(f"run.py: UDP port {port} on 127.0.0.1 is taken; stop what uses it and re-run")
    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "sip-lb"], cwd=ROOT, check=True)
    lb_bin = a.lb_bin
    workdir = tempfile.mkdtemp(prefix="sip-lb-bench-")
    list_file = os.path.join(workdir, "dispatcher.list")
    with open(list_file, "w") as f:
        for p in BACKENDS:
            f.write(f"1 sip:127.0.0.1:{p}\n")

    names = a.balancers.split(",")
    kids = [int(k) for k in a.kamailio_children.split(",")]
    variants = []
    for n in names:
        if n.startswith("kamailio"):
            variants += [(f"{n}", k) for k in kids]
        else:
            variants.append((n, 0))

    results = {}
    try:
        backends = start_backends(workdir)
        # (1) fixed rate, repetitions interleaved between balancers.
        for rep in range(a.reps):
            for n, k in variants:
                label = n if not k else f"{n}-{k}w"
                bal = Balancer(n, workdir, lb_bin, list_file, k or 2, a.lb_args.split())
                bal.start()
                time.sleep(1)
                r = one_run(bal, workdir, a.rate, a.calls, f"{label}-{rep}")
                bal.stop()
                results.setdefault(label, []).append(r)
                print(f"  {label:26} rep {rep}: {r['ok']}/{r['calls']} ok, {r['failed']} failed, "
                      f"{r['cpu_per_1000']:.3f} CPU-s/1000 calls, {r['cps']:.0f} calls/s", flush=True)
        # (2) sweep: highest rate with < 0.5 % failed and >= 95 % of the target rate.
        # Fresh backends for every balancer, so no run inherits another's backlog.
        sweep = {}
        for n, k in (variants if a.sweep.strip() else []):
            for p in backends:
                stop(p)
            time.sleep(1)
            backends = start_backends(workdir)
            label = n if not k else f"{n}-{k}w"
            best = 0
            for rate in [int(x) for x in a.sweep.split(",") if x.strip()]:
                bal = Balancer(n, workdir, lb_bin, list_file, k or 2, a.lb_args.split())
                bal.start()
                time.sleep(1)
                calls = max(rate * (2 if a.quick else 8), 2000)
                r = one_run(bal, workdir, rate, calls, f"sweep-{label}-{rate}")
                bal.stop()
                time.sleep(2)
                passed = r["failed"] < 0.005 * calls and r["created_rate"] >= 0.95 * rate
                print(f"  sweep {label:20} {rate:6}/s: {r['ok']} ok {r['failed']} failed, calls created at {r['created_rate']:.0f}/s "
                      f"{'pass' if passed else 'FAIL'}", flush=True)
                if not passed:
                    break
                best = rate
            sweep[label] = best
        for p in backends:
            stop(p)
    finally:
        stop_all()

    def med(label, key):
        v = [r[key] for r in results[label]]
        return statistics.median(v), min(v), max(v)

    print()
    print(f"Fixed rate {a.rate} calls/s, {a.calls} calls, {a.reps} repetition(s); workdir {workdir}")
    print(f"{'balancer':26} {'ok':>7} {'failed':>6} {'retr':>6} {'calls/s':>8} "
          f"{'CPU-s/1000 (median [min-max])':>32} {'user':>6} {'system':>6} {'sleeps/call':>11} "
          f"{'bal/caller':>10} {'idle MB':>8} {'peak MB':>8} {'max rate':>8}")
    for label in results:
        c, lo, hi = med(label, "cpu_per_1000")
        rs = results[label]
        print(f"{label:26} {statistics.median([r['ok'] for r in rs]):7.0f} "
              f"{statistics.median([r['failed'] for r in rs]):6.0f} "
              f"{statistics.median([r['retrans'] for r in rs]):6.0f} "
              f"{statistics.median([r['cps'] for r in rs]):8.0f} "
              f"{c:12.3f} [{lo:.3f}-{hi:.3f}]{'':>5} "
              f"{med(label, 'user_per_1000')[0]:6.3f} {med(label, 'sys_per_1000')[0]:6.3f} "
              f"{med(label, 'sleeps_per_call')[0]:11.1f} "
              f"{statistics.median([r['ratio_caller'] for r in rs]):10.2f} "
              f"{statistics.median([r['idle_rss_mb'] for r in rs]):8.1f} "
              f"{max(r['peak_rss_mb'] for r in rs):8.1f} {sweep.get(label, 0):8}")
    kam = {l: med(l, "cpu_per_1000")[0] for l in results if l.startswith("kamailio")}
    for mode in ("", "-stateless"):
        theirs = [v for l, v in kam.items() if l.startswith(f"kamailio{mode}-") and ("stateless" in l) == bool(mode)]
        for ours in (f"sip-lb{mode}", f"sip-lb{mode}-1w"):
            if ours in results and theirs:
                o = med(ours, "cpu_per_1000")[0]
                print(f"ratio {ours} / best kamailio{mode}: CPU per call {o / min(theirs):.2f} "
                      f"(kamailio / sip-lb = {min(theirs) / o:.1f}x)")
                best = min((l for l in results if l.startswith(f"kamailio{mode}-") and ("stateless" in l) == bool(mode)),
                           key=lambda l: med(l, "cpu_per_1000")[0])
                for part in ("user", "sys"):
                    t, u = med(best, f"{part}_per_1000")[0], med(ours, f"{part}_per_1000")[0]
                    print(f"      {part:6} CPU: {best} {t:.3f}, {ours} {u:.3f} (kamailio / sip-lb = {t / u if u else float('nan'):.1f}x)")
    print(f"calls received per backend (cumulative over all runs, probes included): {spread(workdir)}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)
