#!/usr/bin/env python3
"""Measures shoald on a running two-host lab (scripts/bench.sh brings it up
and tears it down): idle RSS, API read latency, raft write latency, worker
join time. With --ha, on a lab of five hosts instead: failover time (leader
SIGKILL to the first accepted write) and write latency with 3 and 5
managers. Python stdlib only.

    bench.py --lab LAB --dir DIR --manager HOST=IP --worker HOST=IP --root ROOT
    bench.py --ha --lab LAB --dir DIR --managers H1=IP1,...,H5=IP5

Every loop is bounded in count and in wall-clock time; a loop that hits its
time cap reports what it measured and says so."""

import argparse
import http.client
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import time

API = "/v1.47"
SETTLE_S = 3.0

# (count, wall-clock cap in seconds) per loop.
READ_N, READ_CAP = 2000, 25.0
WRITE_N, WRITE_CAP = 300, 30.0
JOIN_ROUNDS, JOIN_CAP = 5, 60.0
HA_WRITE_N, HA_WRITE_CAP = 200, 30.0
FAILOVER_ROUNDS, FAILOVER_CAP = 5, 60.0
WAIT_CAP = 20.0  # any single "wait until" inside setup or a round


class BenchError(Exception):
    pass


class UnixConn(http.client.HTTPConnection):
    def __init__(self, path, timeout=15):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


class Client:
    """One keep-alive connection; reconnects only if the server closed it."""

    def __init__(self, sock, timeout=15):
        self.conn = UnixConn(sock, timeout)
        self.conn.connect()
        self.reconnects = 0

    def call(self, method, path, body=None):
        hdrs = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        if self.conn.sock is None:
            self.reconnects += 1
        self.conn.request(method, API + path, body=data, headers=hdrs)
        r = self.conn.getresponse()
        raw = r.read()
        if r.will_close:
            self.conn.close()
        return r.status, raw

    def json(self, method, path, body=None, want=(200,)):
        st, raw = self.call(method, path, body)
        if st not in want:
            raise BenchError("%s %s: HTTP %d %s" % (method, path, st, raw[:300].decode(errors="replace")))
        return json.loads(raw) if raw else None

    def close(self):
        self.conn.close()


def wait_for(fn, what, cap=WAIT_CAP, interval=0.005):
    """Polls fn until truthy; returns (value, seconds waited)."""
    t0 = time.monotonic()
    while True:
        v = fn()
        if v:
            return v, time.monotonic() - t0
        if time.monotonic() - t0 > cap:
            raise BenchError("timed out after %.0fs waiting for %s" % (cap, what))
        time.sleep(interval)


def pct(xs, p):
    """Nearest-rank percentile of a non-empty list."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))
    return s[k]


def ms(x):
    return "%.3f" % (x * 1000.0)


def lab_pid(args, host):
    out = subprocess.run([args.lab, "--dir", args.dir, "pid", host], capture_output=True,
                         text=True, timeout=15)
    if out.returncode != 0:
        raise BenchError("lab pid %s: %s" % (host, out.stderr.strip()))
    return int(out.stdout.strip())


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError("no VmRSS for pid %d" % pid)


def timed_loop(n, cap, step):
    """Runs step() up to n times within cap seconds; returns (samples, capped)."""
    out = []
    t_end = time.monotonic() + cap
    while len(out) < n:
        if time.monotonic() > t_end:
            return out, True
        out.append(step())
    return out, False


# ---- swarm plumbing ----

def node_state(mgr, node_id):
    """State of node_id in the manager's node list; None if not listed."""
    for n in mgr.json("GET", "/nodes"):
        if n["ID"] == node_id:
            return n["Status"]["State"]
    return None


def join(worker, mgr_ip, wkr_ip, token):
    body = {"ListenAddr": "0.0.0.0:2377", "AdvertiseAddr": wkr_ip,
            "RemoteAddrs": ["%s:2377" % mgr_ip], "JoinToken": token}
    t0 = time.monotonic()
    st, raw = worker.call("POST", "/swarm/join", body)
    t_answer = time.monotonic() - t0
    if st != 200:
        raise BenchError("swarm join: HTTP %d %s" % (st, raw[:300].decode(errors="replace")))
    return t0, t_answer


def worker_node_id(worker):
    return worker.json("GET", "/info")["Swarm"]["NodeID"]


def leave_and_remove(mgr, worker, node_id):
    worker.json("POST", "/swarm/leave")
    wait_for(lambda: node_state(mgr, node_id) == "down", "node %s Down" % node_id, interval=0.02)
    mgr.json("DELETE", "/nodes/%s?force=true" % node_id)
    wait_for(lambda: node_state(mgr, node_id) is None, "node %s removed" % node_id, interval=0.02)


# ---- figures ----

def bench_reads(mgr, path):
    def step():
        t0 = time.perf_counter()
        st, _ = mgr.call("GET", path)
        dt = time.perf_counter() - t0
        if st != 200:
            raise BenchError("GET %s: HTTP %d" % (path, st))
        return dt
    return timed_loop(READ_N, READ_CAP, step)


def bench_writes(mgr, node_id, n=WRITE_N, cap=WRITE_CAP):
    flip = [0]

    def step():
        node = mgr.json("GET", "/nodes/" + node_id)
        spec = node["Spec"]
        labels = dict(spec.get("Labels") or {})
        flip[0] ^= 1
        labels["bench.toggle"] = "ab"[flip[0]]
        spec["Labels"] = labels
        path = "/nodes/%s/update?version=%d" % (node_id, node["Version"]["Index"])
        t0 = time.perf_counter()
        st, raw = mgr.call("POST", path, spec)
        dt = time.perf_counter() - t0
        if st != 200:
            raise BenchError("POST %s: HTTP %d %s" % (path, st, raw[:300].decode(errors="replace")))
        return dt
    return timed_loop(n, cap, step)


# ---- highly-available managers (--ha) ----

def once(sock, method, path, body=None, timeout=3.0):
    """One request on a fresh connection: (status, decoded JSON or None);
    (0, None) when the daemon does not answer."""
    c = UnixConn(sock, timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        c.request(method, API + path, body=data,
                  headers={"Content-Type": "application/json"} if data else {})
        r = c.getresponse()
        raw = r.read()
        try:
            return r.status, (json.loads(raw) if raw else None)
        except ValueError:
            return r.status, None
    except (OSError, http.client.HTTPException):
        return 0, None
    finally:
        c.close()


def try_write(sock, node_id, key):
    """GET + POST node update adding a label through one manager; True if
    acknowledged."""
    st, node = once(sock, "GET", "/nodes/" + node_id)
    if st != 200:
        return False
    spec = node["Spec"]
    spec["Labels"] = dict(spec.get("Labels") or {}, **{key: "1"})
    st, _ = once(sock, "POST", "/nodes/%s/update?version=%d" % (node_id, node["Version"]["Index"]), spec)
    return st == 200


def ha_view(sock):
    """(leader hostname or None, {hostname: reachability}) of the managers
    as sock's daemon lists them."""
    st, nodes = once(sock, "GET", "/nodes")
    if st != 200:
        return None, {}
    leader, reach = None, {}
    for n in nodes:
        ms = n.get("ManagerStatus")
        if ms:
            h = n["Description"]["Hostname"]
            reach[h] = ms.get("Reachability")
            if ms.get("Leader"):
                leader = h
    return leader, reach


def lab_run(args, *cmd):
    out = subprocess.run([args.lab, "--dir", args.dir] + list(cmd), capture_output=True,
                         text=True, timeout=40)
    if out.returncode != 0:
        raise BenchError("lab %s: %s" % (" ".join(cmd), out.stderr.strip()))
    return out.stdout


def main_ha(args):
    t_start = time.monotonic()
    mgrs = [kv.split("=") for kv in args.managers.split(",")]
    if len(mgrs) != 5:
        raise BenchError("--ha wants 5 managers, got %d" % len(mgrs))
    sock = {h: os.path.join(args.dir, h, "shoal.sock") for h, _ in mgrs}
    ip = dict(mgrs)
    names = [h for h, _ in mgrs]

    def jsoncall(h, method, path, body=None):
        st, b = once(sock[h], method, path, body, timeout=60)
        if st != 200:
            raise BenchError("%s %s on %s: HTTP %d %r" % (method, path, h, st, b))
        return b

    def join(h, token):
        jsoncall(h, "POST", "/swarm/join", {"ListenAddr": "0.0.0.0:2377", "AdvertiseAddr": ip[h],
                                            "RemoteAddrs": ["%s:2377" % ip[names[0]]],
                                            "JoinToken": token})

    def all_reachable(members):
        def ok():
            for h in members:
                leader, reach = ha_view(sock[h])
                if leader is None or sorted(reach) != sorted(members) or \
                        any(r != "reachable" for r in reach.values()):
                    return None
            return leader
        return wait_for(ok, "managers %s all reachable" % members, interval=0.02)[0]

    jsoncall(names[0], "POST", "/swarm/init", {"ListenAddr": "0.0.0.0:2377", "AdvertiseAddr": ip[names[0]]})
    token = jsoncall(names[0], "GET", "/swarm")["JoinTokens"]["Manager"]
    for h in names[1:3]:
        join(h, token)
    three = names[:3]
    leader = all_reachable(three)
    node_of = {n["Description"]["Hostname"]: n["ID"] for n in jsoncall(leader, "GET", "/nodes")}
    time.sleep(1.0)

    lat = []
    c = Client(sock[leader])
    xs, capped = bench_writes(c, node_of[leader], HA_WRITE_N, HA_WRITE_CAP)
    c.close()
    lat.append(("POST node update on the leader, 3 managers", HA_WRITE_N, xs, capped))

    # Failover rounds: SIGKILL the leader, write through the survivors until
    # one write is acknowledged, restart, wait until all are reachable.
    failovers = []
    fo_capped = False
    t_end = time.monotonic() + FAILOVER_CAP
    for r in range(FAILOVER_ROUNDS):
        if time.monotonic() > t_end:
            fo_capped = True
            break
        leader = all_reachable(three)
        pid = lab_pid(args, leader)
        rest = [h for h in three if h != leader]
        t0 = time.monotonic()
        os.kill(pid, 9)
        k = [0]

        def accepted():
            k[0] += 1
            return try_write(sock[rest[k[0] % 2]], node_of[rest[0]], "failover.%d.%d" % (r, k[0]))
        wait_for(accepted, "a write after killing the leader %s" % leader, interval=0.005)
        failovers.append(time.monotonic() - t0)
        # shoald refuses to start while its pid file names a process called
        # shoald, which the killed one is until it is reaped.
        wait_for(lambda: not os.path.exists("/proc/%d" % pid), "killed shoald %d reaped" % pid,
                 interval=0.01)
        lab_run(args, "start", leader)

    all_reachable(three)
    for h in names[3:]:
        join(h, token)
    leader = all_reachable(names)
    time.sleep(1.0)
    c = Client(sock[leader])
    xs, capped = bench_writes(c, node_of[leader], HA_WRITE_N, HA_WRITE_CAP)
    c.close()
    lat.append(("POST node update on the leader, 5 managers", HA_WRITE_N, xs, capped))

    print()
    print("shoal bench: highly-available managers  (lab: %s; times in ms)"
          % ", ".join("%s=%s" % tuple(hi) for hi in mgrs))
    print()
    w = 44
    print("%-*s %6s %9s %9s %9s %9s" % (w, "write latency (ms)", "n", "p50", "p99", "max", "mean"))
    print("%-*s %6s %9s %9s %9s %9s" % (w, "-" * w, "-" * 6, "-" * 9, "-" * 9, "-" * 9, "-" * 9))
    for what, n, xs, capped in lat:
        if not xs:
            print("%-*s %6d   (no samples)" % (w, what, 0))
            continue
        print("%-*s %6d %9s %9s %9s %9s%s" % (w, what, len(xs), ms(pct(xs, 50)), ms(pct(xs, 99)),
                                              ms(max(xs)), ms(statistics.fmean(xs)),
                                              "   CAPPED (%d wanted)" % n if capped else ""))
    print()
    print("%-*s %6s %9s %9s %9s" % (w, "failover, 3 managers (ms)", "rounds", "median", "min", "max"))
    print("%-*s %6s %9s %9s %9s" % (w, "-" * w, "-" * 6, "-" * 9, "-" * 9, "-" * 9))
    if failovers:
        print("%-*s %6d %9s %9s %9s%s" % (w, "leader SIGKILL -> first accepted write", len(failovers),
                                          ms(statistics.median(failovers)), ms(min(failovers)),
                                          ms(max(failovers)),
                                          "   CAPPED (%d wanted)" % FAILOVER_ROUNDS if fo_capped else ""))
    else:
        print("%-*s %6d   (no samples)" % (w, "leader SIGKILL -> first accepted write", 0))
    print()
    print("bench: HA measured in %.1fs" % (time.monotonic() - t_start))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lab", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--ha", action="store_true", help="the HA figures on 5 hosts (--managers)")
    ap.add_argument("--managers", help="H1=IP1,...,H5=IP5 (with --ha)")
    ap.add_argument("--manager", help="HOST=IP")
    ap.add_argument("--worker", help="HOST=IP")
    ap.add_argument("--root")
    args = ap.parse_args()
    if args.ha:
        if not args.managers:
            ap.error("--ha needs --managers")
        return main_ha(args)
    if not (args.manager and args.worker and args.root):
        ap.error("--manager, --worker and --root are required")
    mgr_host, mgr_ip = args.manager.split("=")
    wkr_host, wkr_ip = args.worker.split("=")
    t_start = time.monotonic()

    mgr = Client(os.path.join(args.dir, mgr_host, "shoal.sock"))
    worker = Client(os.path.join(args.dir, wkr_host, "shoal.sock"), timeout=60)

    # Cluster: one manager, one worker.
    mgr_id = mgr.json("POST", "/swarm/init",
                      {"ListenAddr": "0.0.0.0:2377", "AdvertiseAddr": mgr_ip})
    token = mgr.json("GET", "/swarm")["JoinTokens"]["Worker"]
    join(worker, mgr_ip, wkr_ip, token)
    wkr_id = worker_node_id(worker)
    wait_for(lambda: node_state(mgr, wkr_id) == "ready", "worker Ready")
    wait_for(lambda: node_state(mgr, mgr_id) == "ready", "manager Ready")
    time.sleep(SETTLE_S)

    rows = []  # (figure, value, note)

    mgr_pid, wkr_pid = lab_pid(args, mgr_host), lab_pid(args, wkr_host)
    rows.append(("idle RSS, manager shoald", "%d KiB" % rss_kib(mgr_pid), "VmRSS, %.0fs after settle" % SETTLE_S))
    rows.append(("idle RSS, worker shoald", "%d KiB" % rss_kib(wkr_pid), "VmRSS, %.0fs after settle" % SETTLE_S))

    lat = []  # (what, n, samples, capped)
    for path in ("/info", "/nodes"):
        xs, capped = bench_reads(mgr, path)
        lat.append(("GET %s%s" % (API, path), READ_N, xs, capped))
    xs, capped = bench_writes(mgr, mgr_id)
    lat.append(("POST %s/nodes/<id>/update" % API, WRITE_N, xs, capped))

    # Join rounds: leave + remove, then a timed join.
    answers, readies = [], []
    t_end = time.monotonic() + JOIN_CAP
    join_capped = False
    for _ in range(JOIN_ROUNDS):
        if time.monotonic() > t_end:
            join_capped = True
            break
        leave_and_remove(mgr, worker, wkr_id)
        t0, t_answer = join(worker, mgr_ip, wkr_ip, token)
        wkr_id = worker_node_id(worker)
        wait_for(lambda: node_state(mgr, wkr_id) == "ready", "rejoined worker Ready", interval=0.002)
        answers.append(t_answer)
        readies.append(time.monotonic() - t0)

    if mgr.reconnects or worker.reconnects:
        print("bench: note: server closed keep-alive connections (manager %d, worker %d reconnects)"
              % (mgr.reconnects, worker.reconnects))
    mgr.close()
    worker.close()

    # ---- report ----
    print()
    print("shoal bench  (lab: manager %s=%s, worker %s=%s; times in ms)"
          % (mgr_host, mgr_ip, wkr_host, wkr_ip))
    print()
    w = 36
    print("%-*s %14s   %s" % (w, "figure", "value", "note"))
    print("%-*s %14s   %s" % (w, "-" * w, "-" * 14, "-" * 30))
    for name in ("shoald", "shoal"):
        p = os.path.join(args.root, "bin", name)
        rows.insert(0 if name == "shoald" else 1,
                    ("binary size, bin/" + name, "%d KiB" % (os.path.getsize(p) // 1024),
                     "%d bytes" % os.path.getsize(p)))
    for f, v, note in rows:
        print("%-*s %14s   %s" % (w, f, v, note))
    print()
    print("%-*s %6s %9s %9s %9s %9s" % (w, "latency (ms)", "n", "p50", "p99", "max", "mean"))
    print("%-*s %6s %9s %9s %9s %9s" % (w, "-" * w, "-" * 6, "-" * 9, "-" * 9, "-" * 9, "-" * 9))
    for what, n, xs, capped in lat:
        if not xs:
            print("%-*s %6d   (no samples)" % (w, what, 0))
            continue
        print("%-*s %6d %9s %9s %9s %9s%s" % (w, what, len(xs), ms(pct(xs, 50)), ms(pct(xs, 99)),
                                              ms(max(xs)), ms(statistics.fmean(xs)),
                                              "   CAPPED (%d wanted)" % n if capped else ""))
    print()
    print("%-*s %6s %9s %9s %9s" % (w, "worker join (ms)", "rounds", "median", "min", "max"))
    print("%-*s %6s %9s %9s %9s" % (w, "-" * w, "-" * 6, "-" * 9, "-" * 9, "-" * 9))
    for what, xs in (("POST /swarm/join -> 200", answers),
                     ("POST /swarm/join -> Ready on manager", readies)):
        if not xs:
            print("%-*s %6d   (no samples)" % (w, what, 0))
            continue
        print("%-*s %6d %9s %9s %9s%s" % (w, what, len(xs), ms(statistics.median(xs)), ms(min(xs)),
                                          ms(max(xs)),
                                          "   CAPPED (%d wanted)" % JOIN_ROUNDS if join_capped else ""))
    print()
    print("bench: measured in %.1fs" % (time.monotonic() - t_start))


if __name__ == "__main__":
    try:
        main()
    except (BenchError, OSError, http.client.HTTPException, KeyError, ValueError) as e:
        print("bench: FAILED: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)
