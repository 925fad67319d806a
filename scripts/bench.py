#!/usr/bin/env python3
"""Measures shoald on a running two-host lab (scripts/bench.sh brings it up
and tears it down): idle RSS, API read latency, raft write latency, worker
join time. With --ha, on a lab of five hosts instead: failover time (leader
SIGKILL to the first accepted write) and write latency with 3 and 5
managers. With --services, on a lab of three hosts plus a registry host
(shoald started with --registry-mirror): time from service create to N/N
tasks running as crun containers on one node and on three, task start
latency, shoald RSS with 50 tasks and the RSS of one conmon. With
--networks, on a lab of two hosts plus a registry host: create to 50/50
running on the manager alone with no network and with an overlay network,
next to 10 bare `crun run -d`; TCP throughput (iperf3) between tasks on the
two nodes over VXLAN, next to the same between the two hosts. With --mesh,
on a lab of two hosts plus a registry host (the client): a service of two
nginx replicas published on 8080 in ingress mode; HTTP throughput (wrk) and
connection setup (curl) through the routing mesh, from the client and from
the manager itself, next to the same from the manager's ingress sandbox
straight to each replica; then the time from SIGKILL of one replica to the
last failed request of a client hitting the mesh every 20 ms. With --sim,
on a lab of three managers plus a host running bin/shoal-sim: N simulated
nodes and S services x R replicas on them (time to all running, tasks/s,
leader RSS and idle CPU, service ls and node ls latency, raft snapshot,
rescheduling after a tenth of the nodes go down, failover with the full
store). Python stdlib only.

    bench.py --lab LAB --dir DIR --manager HOST=IP --worker HOST=IP --root ROOT
    bench.py --ha --lab LAB --dir DIR --managers H1=IP1,...,H5=IP5
    bench.py --services --lab LAB --dir DIR --hosts M=IP,W1=IP,W2=IP
    bench.py --networks --lab LAB --dir DIR --hosts M=IP,W=IP --images IMAGES
    bench.py --mesh --lab LAB --dir DIR --hosts M=IP,W=IP --client HOST
    bench.py --sim --lab LAB --dir DIR --managers H1=IP1,H2=IP2,H3=IP3 --simhost H=IP --root ROOT
             [--sim-nodes N --sim-services S --sim-replicas R]

Every loop is bounded in count and in wall-clock time; a loop that hits its
time cap reports what it measured and says so."""

import argparse
import calendar
import concurrent.futures
import http.client
import glob
import json
import math
import mmap
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

API = "/v1.47"
SETTLE_S = 3.0
IDLE_S = 11.0           # idle figures of the services part: past one heap trim
SETTLED_CAP = 30.0      # ... and past the trim that closes the pull's libraries
RSS_GOAL_KIB = 12 * 1024  # issue 13: idle shoald RSS

# (count, wall-clock cap in seconds) per loop.
READ_N, READ_CAP = 2000, 25.0
WRITE_N, WRITE_CAP = 300, 30.0
JOIN_ROUNDS, JOIN_CAP = 5, 60.0
HA_WRITE_N, HA_WRITE_CAP = 200, 30.0
FAILOVER_ROUNDS, FAILOVER_CAP = 5, 60.0
WAIT_CAP = 20.0  # any single "wait until" inside setup or a round
SVC_SIZES = (1, 10, 50)
SVC_POLL_S = 0.05
SVC_RUN_CAP = 60.0      # create -> N/N running, per round
SVC_GONE_CAP = 30.0     # remove -> no container left, per round
SVC_PHASE_CAP = 100.0   # all rounds of one phase (1 node, 3 nodes)
SVC_MAX_POLLS = int(SVC_RUN_CAP / SVC_POLL_S) + 1
# One task per round: a start alone on the node measures what seccomp adds
# to it; in rounds of 20 the queueing spread (~1 s) hid a few ms.
SECCOMP_N = 1           # replicas per round of the seccomp comparison (1 node)
SECCOMP_ROUNDS = 15     # rounds per mode, alternating (default, unconfined)
SECCOMP_CAP = 90.0      # all of its rounds
BPF_ANNOTATION = "run.oci.seccomp_bpf_data"  # shoald's compiled filter for crun (src/seccomp/bpf.h)
LIMIT_ROUNDS = 3        # bare crun rounds per bundle, one at a time (the best is the limit)
PAIR_ROUNDS = 3         # per size: a shoal round, then a bare crun round of the same size
PAIR_CAP = 150.0        # all of them
LIMIT_CAP = 120.0       # each bare crun measurement (two bundles at N=50: ~30 s idle)
SEQ_N = 10              # bare crun containers one at a time, per round and bundle


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


def touch_mib_s(mib=256):
    """MiB/s at which this process touches mib of fresh anonymous memory
    (huge pages, as the managers' store is), then as much again right
    after freeing it: a VM that backs its memory lazily (and takes freed
    pages back) charges the first touch to whoever grows."""
    def once_():
        n = mib << 20
        m = mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if hasattr(mmap, "MADV_HUGEPAGE"):
            m.madvise(mmap.MADV_HUGEPAGE)
        t = time.monotonic()
        for i in range(0, n, 4096):
            m[i] = 1
        d = time.monotonic() - t
        m.close()
        return mib / max(d, 1e-6)
    fresh = once_()
    return fresh, once_()


def pss_kib(pid):
    """Proportional set size: shared library pages split among the
    processes mapping them (what a node really pays per process)."""
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    raise BenchError("no Pss for pid %d" % pid)


def wait_settled(pid):
    """An idle daemon closes libcurl and libnftables at the first trim
    (every 10 s) after 5 s without use: an idle figure is the settled one."""
    def settled():
        with open("/proc/%d/maps" % pid) as f:
            maps = f.read()
        return "libcurl" not in maps and "libnftables" not in maps
    wait_for(settled, "the libraries closed", cap=SETTLED_CAP, interval=0.5)
    time.sleep(0.5)


def rss_split_kib(pid):
    """RSS as anonymous memory (heap, stacks: the process's own) and pages
    of mapped files (the program's and its libraries' code and data), with
    the largest file's share: (anon, files, (name, kib))."""
    anon, files, per = 0, 0, {}
    name = None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and ":" in parts[3]:
                name = parts[5] if len(parts) > 5 and parts[5].startswith("/") else None
            elif parts[0] == "Rss:":
                kib = int(parts[1])
                if name:
                    files += kib
                    per[name] = per.get(name, 0) + kib
                else:
                    anon += kib
    top = max(per.items(), key=lambda kv: kv[1]) if per else ("-", 0)
    return anon, files, (os.path.basename(top[0]), top[1])


def pids_named(comm):
    """PIDs whose /proc/<pid>/comm is comm."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/comm" % d) as f:
                    if f.read().strip() == comm:
                        out.append(int(d))
            except OSError:
                pass
    return out


def cpu_s(pid):
    """User + system CPU seconds of pid and its reaped children (the crun
    processes shoald and conmon ran and waited for)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def loop_sched_s(pid):
    """(ran, waited for a core) seconds of pid's main thread, the event
    loop's (schedstat)."""
    with open("/proc/%d/task/%d/schedstat" % (pid, pid)) as f:
        run_ns, wait_ns = f.read().split()[:2]
    return int(run_ns) / 1e9, int(wait_ns) / 1e9


def mem_kib(pid):
    return rss_kib(pid), pss_kib(pid)


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


def log_time(line):
    """Unix time of a shoald log line (time="...Z"), or None."""
    m = re.match(r'time="(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z"', line)
    if not m:
        return None
    return calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) + float(m.group(2) or 0)


def first_log_after(lab_dir, hosts, text, since):
    """(time, host) of the earliest line containing text logged after
    since by any of hosts, or None."""
    best = None
    for h in hosts:
        try:
            with open(os.path.join(lab_dir, h, "shoald.log"), errors="replace") as f:
                for ln in f:
                    if text in ln:
                        t = log_time(ln)
                        if t is not None and t >= since and (best is None or t < best[0]):
                            best = (t, h)
        except OSError:
            pass
    return best


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


# ---- services as crun containers (--services) ----

def parse_ts(ts):
    """Seconds since the epoch of an RFC 3339 UTC timestamp with up to
    nanoseconds ("2026-01-02T03:04:05.123456789Z"); datetime keeps only
    microseconds, so the fraction is added by hand."""
    import calendar
    if not ts.endswith("Z"):
        raise ValueError("timestamp not in UTC: %r" % ts)
    base, _, frac = ts[:-1].partition(".")
    secs = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    return secs + (int(frac) / 10 ** len(frac) if frac else 0.0)


def lab_conmons(labdir):
    """PIDs of conmon processes whose command line points into labdir."""
    needle = labdir.rstrip("/") + "/"
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0].decode(errors="replace")) == "conmon" and \
                any(needle in a.decode(errors="replace") for a in argv):
            pids.append(int(p))
    return pids


def mem_kib_or_none(pid):
    try:
        return mem_kib(pid)
    except (OSError, BenchError):
        return None  # ended while we looked


_pinned = {}


def pinned_image(mgr, image="busybox", tag="latest"):
    """The image as `docker service create` sends it: name:tag@digest, the
    digest from GET /distribution (the CLI's --resolve-image default)."""
    if image not in _pinned:
        d = mgr.json("GET", "/distribution/%s:%s/json" % (image, tag))
        _pinned[image] = "%s:%s@%s" % (image, tag, d["Descriptor"]["digest"])
    return _pinned[image]


def svc_round(mgr, nodes, n, labdir, name, at_full=None, network=None, seccomp=None):
    """One round: create busybox `sleep 3600` replicated n (attached to the
    network ID `network` if given; Privileges.Seccomp.Mode `seccomp` if
    given), poll the tasks every SVC_POLL_S until n
    are running, call at_full() if given, remove the service and wait until
    no container of it is left on any node (API) and no conmon of the lab
    remains. Returns a dict of figures."""
    body = {"Name": name,
            "TaskTemplate": {"ContainerSpec": {"Image": pinned_image(mgr), "Command": ["sleep", "3600"],
                                               # sleep as PID 1 ignores SIGTERM: the
                                               # removal is measured with SIGKILL
                                               # (issue 13's goal), the grace unused
                                               "StopSignal": "SIGKILL",
                                               "StopGracePeriod": 100000000}},
            "Mode": {"Replicated": {"Replicas": n}}}
    if network:
        body["TaskTemplate"]["Networks"] = [{"Target": network}]
    if seccomp:
        body["TaskTemplate"]["ContainerSpec"]["Privileges"] = {"Seccomp": {"Mode": seccomp}}
    res = {"n": n, "capped": False, "gone_capped": False, "running": 0}
    w0 = time.time()
    t0 = time.monotonic()
    sid = mgr.json("POST", "/services/create", body, want=(200, 201))["ID"]
    q = "/tasks?filters=" + urllib.parse.quote(json.dumps({"service": [sid]}))
    running = []
    for _ in range(SVC_MAX_POLLS):
        tasks = mgr.json("GET", q)
        running = [t for t in tasks if t.get("DesiredState") == "running"
                   and t["Status"]["State"] == "running"]
        if len(running) >= n:
            break
        if time.monotonic() - t0 > SVC_RUN_CAP:
            res["capped"] = True
            break
        time.sleep(SVC_POLL_S)
    else:
        res["capped"] = True
    res["t_running"] = time.monotonic() - t0
    res["running"] = len(running)
    res["starts"] = [parse_ts(t["Status"]["Timestamp"]) - w0 for t in running]
    # The last task's running timestamp (the worker's, once crun start
    # returned): what the limit measures (crun run -d returned), without
    # the poll's step of up to SVC_POLL_S.
    res["t_last"] = max(res["starts"]) if len(running) >= n else None
    per_node = {}
    for t in running:
        per_node[t.get("NodeID", "?")] = per_node.get(t.get("NodeID", "?"), 0) + 1
    res["per_node"] = sorted(per_node.values(), reverse=True)
    if at_full and not res["capped"]:
        at_full(res)

    t1 = time.monotonic()
    mgr.json("DELETE", "/services/" + sid, want=(200, 204))
    flt = "/containers/json?all=1&filters=" + urllib.parse.quote(
        json.dumps({"label": ["com.docker.swarm.service.id=" + sid]}))

    def gone():
        return all(not c.json("GET", flt) for c in nodes) and not lab_conmons(labdir)
    t_gone_end = t1 + SVC_GONE_CAP
    while not gone():
        if time.monotonic() > t_gone_end:
            res["gone_capped"] = True
            break
        time.sleep(SVC_POLL_S)
    res["t_gone"] = time.monotonic() - t1
    return res


def alternate(kinds, n_rounds, cap, run):
    """run(kind, i) for round i of each kind in turn, until cap seconds have
    passed; returns ({kind: [results]}, capped)."""
    out = {k: [] for k in kinds}
    t_end = time.monotonic() + cap
    for i in range(n_rounds):
        for k in kinds:
            if time.monotonic() > t_end:
                return out, True
            out[k].append(run(k, i))
    return out, False


def svc_phase(mgr, nodes, labdir, tag, at_full=None):
    out, capped = [], False
    t_end = time.monotonic() + SVC_PHASE_CAP
    for n in SVC_SIZES:
        if time.monotonic() > t_end:
            capped = True
            break
        out.append(svc_round(mgr, nodes, n, labdir, "bench-%s-%d" % (tag, n),
                             at_full if n == SVC_SIZES[-1] else None))
    return out, capped


def pull(c, image="busybox", tag="latest"):
    """POST /images/create and read the progress stream to its end; fails on
    an error message in the stream."""
    st, raw = c.call("POST", "/images/create?fromImage=%s&tag=%s" % (image, tag))
    if st != 200 or b'"error"' in raw:
        raise BenchError("pull %s:%s: HTTP %d %s" % (image, tag, st, raw[-300:].decode(errors="replace")))


def main_services(args):
    t_start = time.monotonic()
    hosts = [kv.split("=") for kv in args.hosts.split(",")]
    if len(hosts) != 3:
        raise BenchError("--services wants 3 hosts (manager first), got %d" % len(hosts))
    (m_host, m_ip), workers = hosts[0], hosts[1:]
    sock = {h: os.path.join(args.dir, h, "shoal.sock") for h, _ in hosts}
    mgr = Client(sock[m_host], timeout=60)

    # One node: the manager alone (the workers' shoald is not running yet).
    mgr_id = mgr.json("POST", "/swarm/init", {"ListenAddr": "0.0.0.0:2377", "AdvertiseAddr": m_ip})
    wait_for(lambda: node_state(mgr, mgr_id) == "ready", "manager Ready")
    pull(mgr)
    pinned_image(mgr)  # the CLI's digest query too, before the idle figure
    t_pulled = time.monotonic()
    time.sleep(IDLE_S)
    m_pid = lab_pid(args, m_host)

    wait_settled(m_pid)
    rss = {"first": mem_kib(m_pid), "first_s": time.monotonic() - t_pulled,
           "first_split": rss_split_kib(m_pid)}

    def at_full(res):
        time.sleep(1.0)  # let the last status reports and their raft writes land
        rss["full"] = mem_kib(m_pid)
        rss["cpu"] = cpu_s(m_pid) - rss["cpu0"]
        vals = [v for v in (mem_kib_or_none(p) for p in lab_conmons(args.dir)) if v is not None]
        rss["conmon"] = (sum(v[0] for v in vals), sum(v[1] for v in vals), len(vals))
        # shoal's linux.seccomp for these tasks and the program shoald
        # compiled from it (the annotation crun copies), for the bare crun rows
        for cfgp in glob.glob(os.path.join(args.dir, m_host, "data", "containers", "*", "config.json")):
            with open(cfgp) as f:
                cfg = json.load(f)
            sc_section[0] = cfg.get("linux", {}).get("seccomp")
            sc_bpf[0] = cfg.get("annotations", {}).get(BPF_ANNOTATION)
            break

    sc_section = [None]
    sc_bpf = [None]
    one = []
    one_capped = False
    # Rounds 1 and 10, then the idle figure right before the 50-task round.
    t_end = time.monotonic() + SVC_PHASE_CAP
    for n in SVC_SIZES:
        if time.monotonic() > t_end:
            one_capped = True
            break
        if n == SVC_SIZES[-1]:
            time.sleep(1.0)
            rss["idle"] = mem_kib(m_pid)
            rss["cpu0"] = cpu_s(m_pid)
        one.append(svc_round(mgr, [mgr], n, args.dir, "bench-1node-%d" % n,
                             at_full if n == SVC_SIZES[-1] else None))

    # Seccomp: the same tasks under the default profile and unconfined,
    # alternating, on the manager alone.
    sc_rounds, sc_capped = alternate(
        ("default", "unconfined"), SECCOMP_ROUNDS, SECCOMP_CAP,
        lambda mode, i: svc_round(mgr, [mgr], SECCOMP_N, args.dir, "bench-seccomp-%s-%d" % (mode, i),
                                  seccomp=mode))
    sc = {mode: [x for r in rs for x in r["starts"]] for mode, rs in sc_rounds.items()}
    sc_capped = sc_capped or any(r["capped"] for rs in sc_rounds.values() for r in rs)
    sc_info = mgr.json("GET", "/info").get("SecurityOptions")

    # The limits, on the same host in the same run: bare `crun run -d`,
    # as many at a time as there are cores, for each size; and one at a
    # time with and without shoal's seccomp section (its cost per task).
    bundles = crun_bundles(args, sc_section[0], sc_bpf[0])
    par = os.cpu_count() or 1
    # The ratio to the limit in pairs: a shoal round, then bare crun rounds
    # of the same size (crun as it comes and from a read-only bind) right
    # after it. This machine's speed drifts within a run: one shoal round
    # against the best of three bare ones put the same code at 1.27x in
    # one run and 1.63x in the next.
    pairs = {n: [] for n in SVC_SIZES[1:]}
    t_pairs_end = time.monotonic() + PAIR_CAP
    pairs_capped = False
    for i in range(PAIR_ROUNDS):
        for n in SVC_SIZES[1:]:
            if time.monotonic() > t_pairs_end:
                pairs_capped = True
                break
            r = svc_round(mgr, [mgr], n, args.dir, "bench-pair-%d-%d" % (n, i))
            b = crun_par(args, m_host, bundles[:2], n, par, 1, LIMIT_CAP)
            if r["t_last"] is not None:
                pairs[n].append({"shoal": r["t_last"], "starts": r["starts"], "limit": b["plain"][0]["wall"],
                                 "limit_starts": b["plain"][0]["starts"], "ro": b["plain-ro"][0]["wall"]})
    seq = crun_par(args, m_host, bundles[:1] + bundles[2:], SEQ_N, 1, LIMIT_ROUNDS, LIMIT_CAP)

    # Three nodes: start the workers' shoald, join them, pull on each.
    token = mgr.json("GET", "/swarm")["JoinTokens"]["Worker"]
    wclients = []
    for h, ip in workers:
        lab_run(args, "start", h)
        c = Client(sock[h], timeout=60)
        join(c, m_ip, ip, token)
        wid = worker_node_id(c)
        wait_for(lambda: node_state(mgr, wid) == "ready", "worker %s Ready" % h, interval=0.02)
        pull(c)
        wclients.append(c)
    time.sleep(1.0)
    three, three_capped = svc_phase(mgr, [mgr] + wclients, args.dir, "3node")
    for c in [mgr] + wclients:
        c.close()

    # ---- report ----
    print()
    print("shoal bench: services  (busybox sleep 3600 as crun containers; image pulled beforehand on "
          "every node, named name:tag@digest as the docker CLI pins it; lab: %s; times in ms)"
          % ", ".join("%s=%s" % tuple(h) for h in hosts))
    print()
    w = 36
    print("%-*s %6s %11s %11s   %s" % (w, "create -> N/N running (ms)", "N", "running", "removed",
                                      "note"))
    print("%-*s %6s %11s %11s   %s" % (w, "-" * w, "-" * 6, "-" * 11, "-" * 11, "-" * 24))
    for n in SVC_SIZES[1:]:
        ps = pairs[n]
        if not ps:
            print("%-*s %6d   (no pair of rounds%s)" % (w, "limit: bare crun run -d, %d at a time" % par, n,
                                                        ": CAPPED" if pairs_capped else ""))
            continue
        ratios = [x["shoal"] / x["limit"] for x in ps]
        ro_ratios = [x["shoal"] / x["ro"] for x in ps]
        print("%-*s %6d %11s %11s   %s" % (
            w, "limit: bare crun run -d, %d at a time" % par, n, ms(statistics.median(x["limit"] for x in ps)), "",
            "shoal 1 node / limit = %.2fx, the median of %d pairs of rounds (%.2f-%.2fx; shoal: %s ms to the "
            "last task's running timestamp, median)" % (statistics.median(ratios), len(ps), min(ratios),
                                                        max(ratios), ms(statistics.median(x["shoal"] for x in ps)))))
        print("%-*s %6d %11s %11s   %s" % (
            w, "  the same, crun from a read-only bind", n, ms(statistics.median(x["ro"] for x in ps)), "",
            "as shoald runs crun; shoal / this = %.2fx (%.2f-%.2fx)" % (statistics.median(ro_ratios),
                                                                    min(ro_ratios), max(ro_ratios))))
    for label, rounds, capped in (("1 node (manager)", one, one_capped),
                                  ("3 nodes (1 manager + 2 workers)", three, three_capped)):
        for r in rounds:
            notes = []
            if r["capped"]:
                notes.append("CAPPED (%d/%d running after %.0fs)" % (r["running"], r["n"], r["t_running"]))
            if r["gone_capped"]:
                notes.append("CAPPED (containers left after %.0fs)" % SVC_GONE_CAP)
            if len(r["per_node"]) > 1:
                notes.append("tasks per node %s" % "/".join(str(x) for x in r["per_node"]))
            print("%-*s %6d %11s %11s   %s" % (w, label, r["n"], ms(r["t_running"]), ms(r["t_gone"]),
                                              "; ".join(notes)))
        if capped:
            print("%-*s   CAPPED (phase over %.0fs; sizes %s wanted)" % (w, label, SVC_PHASE_CAP, SVC_SIZES))
    print("%-*s   %s" % (w, "", "running = create sent -> GET /tasks shows N/N (polled every %d ms); the "
                         "ratios to the limit use the last task's running timestamp" % (SVC_POLL_S * 1000)))
    print("%-*s   %s" % (w, "", "removed = DELETE /services/<id> -> no container (API) and no conmon left; "
                         "stop signal SIGKILL"))
    print()
    print("%-*s %6s %9s %9s %9s %9s" % (w, "task start latency (ms)", "n", "p50", "p99", "min", "max"))
    print("%-*s %6s %9s %9s %9s %9s" % (w, "-" * w, "-" * 6, "-" * 9, "-" * 9, "-" * 9, "-" * 9))
    for label, rounds in (("1 node, N=%d" % SVC_SIZES[-1], one), ("3 nodes, N=%d" % SVC_SIZES[-1], three)):
        xs = rounds[-1]["starts"] if rounds and rounds[-1]["n"] == SVC_SIZES[-1] else []
        if not xs:
            print("%-*s %6d   (no samples)" % (w, label, 0))
            continue
        print("%-*s %6d %9s %9s %9s %9s" % (w, label, len(xs), ms(statistics.median(xs)), ms(pct(xs, 99)),
                                            ms(min(xs)), ms(max(xs))))
    n_last = SVC_SIZES[-1]
    xs = [s for x in pairs.get(n_last, []) for s in x["limit_starts"]]
    shoal_xs = [s for x in pairs.get(n_last, []) for s in x["starts"]]
    if xs and shoal_xs:
        print("%-*s %6d %9s %9s %9s %9s" % (w, "1 node, N=%d, the pairs' rounds" % n_last, len(shoal_xs),
                                            ms(statistics.median(shoal_xs)), ms(pct(shoal_xs, 99)),
                                            ms(min(shoal_xs)), ms(max(shoal_xs))))
        note = ("shoal 1 node / limit: p50 %.2fx, p99 %.2fx" %
                (statistics.median(shoal_xs) / statistics.median(xs), pct(shoal_xs, 99) / pct(xs, 99)))
        print("%-*s %6d %9s %9s %9s %9s   %s" % (w, "limit: bare crun run -d, %d at a time" % par, len(xs),
                                                ms(statistics.median(xs)), ms(pct(xs, 99)), ms(min(xs)),
                                                ms(max(xs)), note))
    print("%-*s   %s" % (w, "", "create sent -> the task's Status.Timestamp of state running "
                         "(limit: first crun started -> this crun run -d returned)"))
    for mode in ("default", "unconfined"):
        xs = sc.get(mode, [])
        label = "1 node, seccomp %s" % mode
        if not xs:
            print("%-*s %6d   (no samples)" % (w, label, 0))
            continue
        print("%-*s %6d %9s %9s %9s %9s" % (w, label, len(xs), ms(statistics.median(xs)), ms(pct(xs, 99)),
                                            ms(min(xs)), ms(max(xs))))
    if sc.get("default") and sc.get("unconfined"):
        print("%-*s %6s %9s %9s   %s" % (w, "1 node, seccomp default - unconfined", "",
                                         ms(statistics.median(sc["default"]) - statistics.median(sc["unconfined"])),
                                         ms(pct(sc["default"], 99) - pct(sc["unconfined"], 99)),
                                         "p50 / p99 difference: shoal's cost of seccomp per task"))
    for tag, label in (("plain", "bare crun run -d, no seccomp"),
                       ("seccomp", "bare crun run -d, shoal's seccomp"),
                       ("seccomp-bpf", "bare crun, seccomp + shoal's BPF")):
        xs = seq.get(tag)
        if not xs:
            print("%-*s   (not measured: no task config to take the section%s from)"
                  % (w, label, " and annotation" if tag == "seccomp-bpf" else ""))
            continue
        print("%-*s %6d %9s %9s   %s" % (w, label, SEQ_N * len(xs), ms(min(x["wall"] for x in xs) / SEQ_N),
                                         ms(min(x["cpu"] for x in xs)),
                                         "wall / CPU per container (ms), one at a time; %s" %
                                         {"plain": "the limit",
                                          "seccomp": "crun compiles the section (as before shoald did it)",
                                          "seccomp-bpf": "crun copies the %s annotation, as for "
                                                         "shoal's tasks" % BPF_ANNOTATION}[tag]))
    for tag, label in (("seccomp", "seccomp cost, crun compiling"), ("seccomp-bpf", "seccomp cost, shoal's BPF")):
        if not seq.get(tag) or not seq.get("plain"):
            continue
        print("%-*s %6s %9s %9s   %s" % (w, label, "",
                                         ms((min(x["wall"] for x in seq[tag]) - min(x["wall"] for x in seq["plain"])) / SEQ_N),
                                         ms(min(x["cpu"] for x in seq[tag]) - min(x["cpu"] for x in seq["plain"])),
                                         "per container over the limit, wall / CPU (best of %d rounds each)" % LIMIT_ROUNDS))
    if seq.get("seccomp"):
        print("%-*s   %s" % (w, "", "CPU counts the crun processes waited for and the container's cgroup, not "
                             "crun's detached half, which compiles the filter (strace: ~26 ms): trust the wall"))
    print("%-*s   %s" % (w, "", "%d rounds of N=%d per mode, alternating; info SecurityOptions %s%s"
                         % (SECCOMP_ROUNDS, SECCOMP_N, json.dumps(sc_info),
                            "; CAPPED at %.0fs" % SECCOMP_CAP if sc_capped else "")))
    print()
    print("%-*s %11s %11s   %s" % (w, "memory (1 node), KiB", "RSS", "PSS", "note"))
    print("%-*s %11s %11s   %s" % (w, "-" * w, "-" * 11, "-" * 11, "-" * 30))
    row = lambda label, v, note: print("%-*s %11s %11s   %s" % (w, label, v[0], v[1], note))
    row("shoald, idle after init+pull", rss["first"],
        "%.0fs after the pull (heap returned, libraries closed); goal RSS <= %d" %
        (rss["first_s"], RSS_GOAL_KIB))
    anon, files, (big, big_kib) = rss["first_split"]
    row("  its RSS: anonymous", [anon, "-"], "heap and stacks: the daemon's own")
    row("  its RSS: files' pages", [files, "-"],
        "shoald's and its libraries' code and data (%s %d): as many pages of them as "
        "the kernel mapped (it maps cached pages around each fault), shared with other processes" % (big, big_kib))
    if "idle" in rss:
        row("shoald, idle before N=%d" % SVC_SIZES[-1], rss["idle"], "after the 1 and 10 rounds, 1 s settle")
    if "full" in rss:
        n = SVC_SIZES[-1]
        row("shoald, %d tasks running" % n, rss["full"], "1 s after %d/%d running" % (n, n))
        row("shoald per task", ["%.1f" % ((rss["full"][i] - rss["idle"][i]) / n) for i in (0, 1)],
            "(running - idle before) / %d" % n)
        print("%-*s %11s %11s   %s" % (w, "shoald CPU per task started (ms)", ms(rss["cpu"] / n), "",
                                          "user+sys of shoald and the children it reaped (crun start...), "
                                          "create -> %d/%d running" % (n, n)))
        rt, pt, cnt = rss["conmon"]
        row("conmon, one", ["%.1f" % (rt / cnt), "%.1f" % (pt / cnt)] if cnt else ["-", "-"],
            "sums over %d conmon / %d" % (cnt, cnt))
    else:
        row("shoald, %d tasks running" % SVC_SIZES[-1], ["-", "-"], "not measured (round capped)")
    print()
    print("bench: services measured in %.1fs" % (time.monotonic() - t_start))


# ---- networks (--networks) ----

NET_N = 50              # replicas per start-latency round, on the manager alone
NET_ROUNDS = 2          # rounds per variant, alternating (no network, overlay)
NET_START_CAP = 110.0   # all start-latency rounds
CRUN_N = 10             # bare crun containers started one after another
CRUN_CAP = 30.0
IPERF_SECS = 5
IPERF_ROUNDS = 2        # per path, alternating (hosts, overlay)
IPERF_CAP = 60.0        # all iperf3 rounds
IPERF_PORT = 5201

# Runs inside the lab host: for each bundle (argv 4..), starts n containers
# with `crun run -d`, `par` at a time, and reports the wall time until all
# were started plus the CPU time crun used per container (children's
# rusage, plus what the container's cgroup counted; not crun's detached
# half, which compiles a seccomp filter); then removes them. Rounds alternate between the bundles.
CRUN_PAR_SCRIPT = r"""
import atexit, concurrent.futures as cf, json, os, resource, shutil, subprocess, sys, time
root, n, par, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
res = {}
# A bundle whose name ends in "-ro" runs crun from a read-only bind of the
# binary, as shoald does (crun then skips copying itself to a memfd).
os.makedirs(root, exist_ok=True)
ro = os.path.join(root, "crun.ro")
if any(b.endswith("-ro") for b in sys.argv[5:]):
    open(ro, "a").close()
    subprocess.run(["mount", "--bind", shutil.which("crun"), ro], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", ro], check=True)
    atexit.register(lambda: subprocess.run(["umount", ro]))
def one(bundle, cid, t0=None, done=None):
    crun = ro if bundle.endswith("-ro") else "crun"
    with open(os.path.join(bundle, "crun.log"), "ab") as log:
        rc = subprocess.run([crun, "--root", root, "run", "-d", "--bundle", bundle, cid],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=20).returncode
    if rc != 0:
        raise SystemExit("crun run %s: exit %d (see %s/crun.log)" % (cid, rc, bundle))
    if done is not None:
        done.append(time.perf_counter() - t0)
def cg_cpu(cid):
    # CPU the container's process used before and after its exec (crun's
    # cgroup /<id>: the child half of crun runs in it): v1, else v2.
    try:
        with open("/sys/fs/cgroup/cpuacct/%s/cpuacct.usage" % cid) as f:
            return int(f.read()) / 1e9
    except OSError:
        with open("/sys/fs/cgroup/%s/cpu.stat" % cid) as f:
            return int(f.read().split("usage_usec ")[1].split()[0]) / 1e6
for r in range(rounds):
    for b in sys.argv[5:]:
        tag = os.path.basename(b)
        ids = ["bench%s%d" % (tag, i) for i in range(n)]
        c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        done = []  # each container's start, from t0: the latency limit
        try:
            with cf.ThreadPoolExecutor(par) as ex:
                list(ex.map(lambda cid: one(b, cid, t0, done), ids))
            wall = time.perf_counter() - t0
            c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            inside = sum(cg_cpu(cid) for cid in ids) / n
        finally:
            for cid in ids:
                subprocess.run(["crun", "--root", root, "delete", "--force", cid], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20)
        cpu = (c1.ru_utime - c0.ru_utime + c1.ru_stime - c0.ru_stime) / n
        res.setdefault(tag, []).append({"wall": wall, "cpu": cpu + inside, "starts": sorted(done)})
print(json.dumps(res))
"""


def crun_bundles(args, seccomp=None, bpf=None):
    """Bundles for bare `crun run` of busybox `sleep 3600` with crun's
    default spec (own empty network namespace, no conmon, rootfs unpacked
    once and shared read-only): "plain"; with seccomp (a linux.seccomp
    object, e.g. shoal's conversion of the default profile) "seccomp", which
    crun compiles; and with that section plus bpf (shoald's compiled program,
    base64, as the BPF_ANNOTATION of its tasks) "seccomp-bpf"."""
    base = os.path.join(args.dir, "crun-limit")
    rootfs = os.path.join(base, "rootfs")
    if not os.path.isdir(rootfs):
        os.makedirs(base, exist_ok=True)
        subprocess.run(["umoci", "raw", "unpack", "--image", os.path.join(args.images, "busybox") + ":latest",
                        rootfs], check=True, capture_output=True, timeout=60)
    out = []
    for tag, sc, prog in (("plain", None, None), ("plain-ro", None, None), ("seccomp", seccomp, None),
                          ("seccomp-bpf", seccomp, bpf)):
        if not tag.startswith("plain") and (sc is None or (tag == "seccomp-bpf" and prog is None)):
            continue
        b = os.path.join(base, tag)
        os.makedirs(b, exist_ok=True)
        subprocess.run(["crun", "spec"], cwd=b, check=True, capture_output=True, timeout=15)
        cfgp = os.path.join(b, "config.json")
        with open(cfgp) as f:
            cfg = json.load(f)
        cfg["root"] = {"path": rootfs, "readonly": True}
        cfg["process"]["args"] = ["/bin/busybox", "sleep", "3600"]
        cfg["process"]["terminal"] = False
        if sc is not None:
            cfg["linux"]["seccomp"] = sc
        if prog is not None:
            cfg.setdefault("annotations", {})[BPF_ANNOTATION] = prog
        with open(cfgp, "w") as f:
            json.dump(cfg, f)
        out.append(b)
    return out


def crun_par(args, host, bundles, n, par, rounds, cap):
    """{tag: [{"wall", "cpu"}...]} of CRUN_PAR_SCRIPT on host."""
    root = os.path.join(args.dir, "crun-limit", "state")
    os.makedirs(root, exist_ok=True)
    out = subprocess.run([args.lab, "--dir", args.dir, "exec", host, "timeout", "-k", "5", str(int(cap)),
                          "python3", "-c", CRUN_PAR_SCRIPT, root, str(n), str(par), str(rounds)] + bundles,
                         capture_output=True, text=True, timeout=cap + 15)
    if out.returncode != 0:
        raise BenchError("bare crun on %s: exit %d: %s" % (host, out.returncode, out.stderr.strip()[-500:]))
    return json.loads(out.stdout.strip().splitlines()[-1])


def crun_limit(args, host):
    """Seconds of each of CRUN_N sequential `crun run -d` (create + start) of
    busybox `sleep 3600` with crun's default spec (crun_bundles "plain")."""
    r = crun_par(args, host, crun_bundles(args)[:1], 1, 1, CRUN_N, CRUN_CAP)
    return [x["wall"] for x in r["plain"]]


def iperf(args, srv_host, srv_pid, cli_host, cli_pid, addr, tag):
    """One iperf3 TCP test of IPERF_SECS s: server `iperf3 -s -1` on srv_host
    (in the network namespace of srv_pid if given), client on cli_host (in
    cli_pid's if given) to addr. The server is our child (lab exec and
    nsenter exec, so its PID is iperf3's); it ends after the one test and is
    killed by that PID if not. Returns (Gbit/s received, retransmits, bytes
    sent)."""
    def cmd(host, pid, *rest):
        c = [args.lab, "--dir", args.dir, "exec", host]
        if pid:
            c += ["nsenter", "-t", str(pid), "-n"]
        return c + ["iperf3"] + list(rest)
    logp = os.path.join(args.dir, "iperf-%s.log" % tag)
    with open(logp, "wb") as log:
        srv = subprocess.Popen(cmd(srv_host, srv_pid, "-s", "-1", "--forceflush", "-p", str(IPERF_PORT)),
                               stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        def listening():
            if srv.poll() is not None:
                with open(logp, errors="replace") as f:
                    raise BenchError("iperf3 server on %s exited %d: %s" % (srv_host, srv.returncode,
                                                                            f.read()[-300:]))
            with open(logp, errors="replace") as f:
                return "Server listening" in f.read()
        wait_for(listening, "iperf3 server on %s listening" % srv_host, cap=10.0, interval=0.02)
        out = subprocess.run(cmd(cli_host, cli_pid, "-c", addr, "-p", str(IPERF_PORT), "-t", str(IPERF_SECS),
                                 "-J", "--connect-timeout", "3000"),
                             capture_output=True, text=True, timeout=IPERF_SECS + 20)
        try:
            res = json.loads(out.stdout)
        except ValueError:
            raise BenchError("iperf3 client on %s: exit %d: %s %s" % (cli_host, out.returncode,
                                                                      out.stdout[-300:], out.stderr[-300:]))
        if res.get("error") or out.returncode != 0:
            raise BenchError("iperf3 client on %s -> %s: %s" % (cli_host, addr, res.get("error")))
        end = res["end"]
        return (end["sum_received"]["bits_per_second"] / 1e9, end["sum_sent"].get("retransmits", 0),
                end["sum_sent"]["bytes"])
    finally:
        try:
            srv.wait(timeout=5)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait(timeout=5)


def vxlan_tx_bytes(args, host, nid):
    """Bytes sent by vxlan0 in host's namespace of network nid (see
    docs/architecture.md, the data plane)."""
    ns = os.path.join(args.dir, host, "exec", "netns", "1-" + nid[:10])
    out = lab_run(args, "exec", host, "nsenter", "--net=" + ns, "ip", "-j", "-s", "link", "show", "dev", "vxlan0")
    return json.loads(out)[0]["stats64"]["tx"]["bytes"]


def main_networks(args):
    t_start = time.monotonic()
    hosts = [kv.split("=") for kv in args.hosts.split(",")]
    if len(hosts) != 2:
        raise BenchError("--networks wants 2 hosts (manager first), got %d" % len(hosts))
    (m_host, m_ip), (w_host, w_ip) = hosts
    sock = {h: os.path.join(args.dir, h, "shoal.sock") for h, _ in hosts}
    mgr = Client(sock[m_host], timeout=60)
    mgr_id = mgr.json("POST", "/swarm/init", {"ListenAddr": "0.0.0.0:2377", "AdvertiseAddr": m_ip})
    wait_for(lambda: node_state(mgr, mgr_id) == "ready", "manager Ready")
    pull(mgr)
    nid = mgr.json("POST", "/networks/create", {"Name": "benchnet", "Driver": "overlay"},
                   want=(200, 201))["Id"]
    time.sleep(1.0)

    # 1. Start latency on the manager alone: the bare crun limit, then
    # rounds alternating no network / overlay.
    crun_xs = crun_limit(args, m_host)
    rounds, start_capped = alternate(
        ("none", "overlay"), NET_ROUNDS, NET_START_CAP,
        lambda kind, r: svc_round(mgr, [mgr], NET_N, args.dir, "benchnet-%s-%d" % (kind, r),
                                  network=nid if kind == "overlay" else None))

    # 2. Throughput: the worker joins; a global service on benchnet puts one
    # task on each node; iperf3 of the nodes runs in the tasks' namespaces.
    token = mgr.json("GET", "/swarm")["JoinTokens"]["Worker"]
    lab_run(args, "start", w_host)
    wkr = Client(sock[w_host], timeout=60)
    join(wkr, m_ip, w_ip, token)
    wid = worker_node_id(wkr)
    wait_for(lambda: node_state(mgr, wid) == "ready", "worker %s Ready" % w_host, interval=0.02)
    pull(wkr)
    host_of = {mgr_id: m_host, wid: w_host}
    body = {"Name": "benchiperf",
            "TaskTemplate": {"ContainerSpec": {"Image": "busybox", "Command": ["sleep", "3600"],
                                               "StopGracePeriod": 100000000},
                             "Networks": [{"Target": nid}]},
            "Mode": {"Global": {}}}
    sid = mgr.json("POST", "/services/create", body, want=(200, 201))["ID"]
    q = "/tasks?filters=" + urllib.parse.quote(json.dumps({"service": [sid]}))

    def both_running():
        ts = [t for t in mgr.json("GET", q) if t.get("DesiredState") == "running"
              and t["Status"]["State"] == "running"]
        return ts if len({t.get("NodeID") for t in ts}) == 2 else None
    tasks, _ = wait_for(both_running, "benchiperf running on both nodes", cap=60.0, interval=0.1)
    end = {}  # host -> (container pid, overlay address)
    for t in tasks:
        h = host_of[t["NodeID"]]
        addr = [a["Addresses"][0].split("/")[0] for a in t.get("NetworksAttachments") or []
                if a["Network"]["ID"] == nid]
        if not addr:
            raise BenchError("task %s has no address on benchnet: %r" % (t["ID"], t.get("NetworksAttachments")))
        cid = t["Status"]["ContainerStatus"]["ContainerID"]
        c = Client(sock[h])
        pid = c.json("GET", "/containers/%s/json" % cid)["State"]["Pid"]
        c.close()
        if not pid:
            raise BenchError("container %s on %s has no State.Pid" % (cid, h))
        end[h] = (pid, addr[0])
    paths = {"hosts": [], "overlay": []}
    iperf_capped = False
    t_end = time.monotonic() + IPERF_CAP
    for r in range(IPERF_ROUNDS):
        for kind in ("hosts", "overlay"):
            if time.monotonic() > t_end:
                iperf_capped = True
                break
            if kind == "hosts":
                paths[kind].append(iperf(args, w_host, None, m_host, None, w_ip, "%s-%d" % (kind, r)))
            else:
                # The test's bytes must have left through the client node's
                # vxlan0, or this row would measure something else.
                tx0 = vxlan_tx_bytes(args, m_host, nid)
                x = iperf(args, w_host, end[w_host][0], m_host, end[m_host][0], end[w_host][1],
                          "%s-%d" % (kind, r))
                tx = vxlan_tx_bytes(args, m_host, nid) - tx0
                if tx < x[2]:
                    raise BenchError("iperf3 sent %d bytes to %s but vxlan0 on %s only %d"
                                     % (x[2], end[w_host][1], m_host, tx))
                paths[kind].append(x)
    mgr.json("DELETE", "/services/" + sid, want=(200, 204))
    mgr.close()
    wkr.close()

    # ---- report ----
    print()
    print("shoal bench: networks  (busybox sleep 3600 as crun containers; image pulled beforehand; "
          "lab: %s; times in ms)" % ", ".join("%s=%s" % tuple(h) for h in hosts))
    print()
    w = 40
    print("%-*s %6s %11s %9s %9s %9s   %s" % (w, "task start, 1 node (ms)", "N", "total", "per task",
                                            "p50", "max", "note"))
    print("%-*s %6s %11s %9s %9s %9s   %s" % (w, "-" * w, "-" * 6, "-" * 11, "-" * 9, "-" * 9, "-" * 9,
                                            "-" * 20))
    print("%-*s %6d %11s %9s %9s %9s   %s" % (w, "limit: bare crun run -d, sequential", len(crun_xs),
                                            ms(sum(crun_xs)), ms(sum(crun_xs) / len(crun_xs)),
                                            ms(statistics.median(crun_xs)), ms(max(crun_xs)),
                                            "empty netns, no conmon"))
    labels = {"none": "create -> N/N running, no network", "overlay": "create -> N/N running, overlay"}
    for r in range(NET_ROUNDS):
        for kind in ("none", "overlay"):
            if r >= len(rounds[kind]):
                continue
            x = rounds[kind][r]
            notes = ["round %d" % (r + 1)]
            if x["capped"]:
                notes.append("CAPPED (%d/%d running after %.0fs)" % (x["running"], x["n"], x["t_running"]))
            if x["gone_capped"]:
                notes.append("CAPPED (containers left after %.0fs)" % SVC_GONE_CAP)
            st = x["starts"] or [float("nan")]
            print("%-*s %6d %11s %9s %9s %9s   %s" % (w, labels[kind], x["n"], ms(x["t_running"]),
                                                    ms(x["t_running"] / x["n"]), ms(statistics.median(st)),
                                                    ms(max(st)), "; ".join(notes)))
    if start_capped:
        print("%-*s   CAPPED (start rounds over %.0fs; %d of each wanted)" % (w, "", NET_START_CAP, NET_ROUNDS))
    ok = {k: [x["t_running"] for x in v if not x["capped"]] for k, v in rounds.items()}
    if ok["none"] and ok["overlay"]:
        d = (statistics.fmean(ok["overlay"]) - statistics.fmean(ok["none"])) / NET_N
        print("%-*s %6s %11s %9s   %s" % (w, "overlay - no network, per task", "", "", ms(d),
                                          "means of the rounds; limit per container: %s"
                                          % ms(sum(crun_xs) / len(crun_xs))))
    print("%-*s   %s" % (w, "", "no network = docker_gwbridge only; p50/max = create sent -> Status.Timestamp"))
    print()
    print("%-*s %6s %9s %9s %9s   %s" % (w, "TCP throughput, 2 nodes (Gbit/s)", "rounds", "mean", "min",
                                        "max", "retransmits"))
    print("%-*s %6s %9s %9s %9s   %s" % (w, "-" * w, "-" * 6, "-" * 9, "-" * 9, "-" * 9, "-" * 20))
    names = {"hosts": "limit: host %s -> host %s" % (m_host, w_host),
             "overlay": "task -> task over VXLAN (benchnet)"}
    for kind in ("hosts", "overlay"):
        xs = paths[kind]
        if not xs:
            print("%-*s %6d   (no samples)" % (w, names[kind], 0))
            continue
        g = [x[0] for x in xs]
        print("%-*s %6d %9.2f %9.2f %9.2f   %s" % (w, names[kind], len(xs), statistics.fmean(g), min(g), max(g),
                                                 "/".join(str(x[1]) for x in xs)))
    if paths["hosts"] and paths["overlay"]:
        ratio = statistics.fmean(x[0] for x in paths["overlay"]) / statistics.fmean(x[0] for x in paths["hosts"])
        print("%-*s %6s %9.2f   %s" % (w, "overlay / hosts", "", ratio, "ratio of the means"))
    if iperf_capped:
        print("%-*s   CAPPED (iperf3 rounds over %.0fs; %d of each wanted)" % (w, "", IPERF_CAP, IPERF_ROUNDS))
    print("%-*s   %s" % (w, "", "iperf3 -t %d, one TCP stream, receiver's rate; hosts = the lab's eth1 "
                              "(veth + bridge, MTU 1500)" % IPERF_SECS))
    print("%-*s   %s" % (w, "", "overlay: MTU 1450, every test's bytes checked on %s's vxlan0 counters" % m_host))
    print()
    print("bench: networks measured in %.1fs" % (time.monotonic() - t_start))


# ---- routing mesh (--mesh) ----

MESH_PORT = 8080
WRK_ARGS = ["-t1", "-c16", "-d5s", "--latency", "--timeout", "2s"]
WRK_ROUNDS = 2          # per path, alternating
WRK_CAP = 90.0          # all wrk rounds
CONNECT_N = 200         # sequential connections per path
CONNECT_CAP = 30.0      # per path (one curl, killed after this)
KILL_PRE_S = 1.0        # requests before the kill, to see the mesh answer
KILL_PERIOD_S = 0.020   # one request started every 20 ms ...
KILL_N = 500            # ... at most this many ...
KILL_CAP = 10.0         # ... within this many seconds from the loop's start

# Runs on the client host: starts one HTTP GET every PERIOD s, each in its
# own thread so that a request hanging on a dead backend does not hold back
# the next, at most N, within CAP s; each has 1 s to connect and 1 s for the
# answer (like curl -m 1; a thread, not a curl process, so a start is not
# delayed by process creation on a loaded machine). Prints [[start, end,
# outcome], ...], start taken right before connect(2), with CLOCK_MONOTONIC
# times (the clock bench.py reads: the lab has no time namespaces). Outcome
# "200" or the error: refused, timeout, reset, closed, HTTP code.
KILL_LOOP = r'''
import json, socket, sys, threading, time
host, port, period, n, cap = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
out = []
def get(r):
    t0 = time.monotonic()
    r[0] = t0
    try:
        with socket.create_connection((host, port), timeout=1.0) as s:
            s.settimeout(max(0.05, t0 + 1.0 - time.monotonic()))
            s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            head = s.recv(64)
            r[2] = head.split(b" ")[1].decode() if head.startswith(b"HTTP/") else "closed"
    except ConnectionRefusedError:
        r[2] = "refused"
    except ConnectionResetError:
        r[2] = "reset"
    except (socket.timeout, TimeoutError):
        r[2] = "timeout"
    except OSError as e:
        r[2] = "error %d" % (e.errno or 0)
    r[1] = time.monotonic()
threads = []
t_end = time.monotonic() + cap
nxt = time.monotonic()
while len(out) < n and time.monotonic() < t_end:
    r = [None, None, None]
    out.append(r)
    th = threading.Thread(target=get, args=(r,), daemon=True)
    th.start()
    threads.append(th)
    nxt += period
    time.sleep(max(0.0, nxt - time.monotonic()))
for th in threads:
    th.join(timeout=3.0)
print(json.dumps([r for r in out if r[1] is not None]))
'''


def in_host(args, host, netns=None):
    """argv prefix running a command on a lab host, in the network namespace
    netns (a PID or a bind-mounted path) if given."""
    c = [args.lab, "--dir", args.dir, "exec", host]
    if isinstance(netns, int):
        c += ["nsenter", "-t", str(netns), "-n", "--"]
    elif netns:
        c += ["nsenter", "--net=" + netns, "--"]
    return c


def wrk_dur(s):
    """wrk's '1.23ms' / '456.00us' / '1.02s' -> seconds."""
    for unit, f in (("us", 1e-6), ("ms", 1e-3), ("s", 1.0)):
        if s.endswith(unit):
            return float(s[:-len(unit)]) * f
    raise ValueError("wrk duration %r" % s)


def wrk(args, prefix, url):
    """One wrk run; returns dict rps, p50, p99 (s), requests, errors (socket
    errors + non-2xx/3xx)."""
    out = subprocess.run(prefix + ["timeout", "-k", "2", "20", "wrk"] + WRK_ARGS + [url],
                         capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise BenchError("wrk %s: exit %d: %s %s" % (url, out.returncode, out.stdout[-300:], out.stderr[-300:]))
    r = {"errors": 0, "raw": out.stdout}
    for line in out.stdout.splitlines():
        f = line.split()
        if line.startswith("Requests/sec:"):
            r["rps"] = float(f[1])
        elif len(f) == 2 and f[0] in ("50%", "99%"):
            r["p" + f[0][:-1]] = wrk_dur(f[1])
        elif len(f) > 2 and f[1] == "requests" and f[2] == "in":
            r["requests"] = int(f[0])
        elif line.strip().startswith("Socket errors:"):
            r["errors"] += sum(int(x.strip(",")) for x in f[3::2])
        elif line.strip().startswith("Non-2xx or 3xx responses:"):
            r["errors"] += int(f[-1])
    if "rps" not in r or "p99" not in r:
        raise BenchError("wrk %s: unparsed output: %s" % (url, out.stdout[-500:]))
    return r


def connect_times(args, prefix, url):
    """CONNECT_N sequential connections by one curl (Connection: close, so
    each transfer opens its own); returns (time_connect samples in s,
    failures)."""
    argv = ["timeout", "-k", "2", str(int(CONNECT_CAP)), "curl", "-s", "-m", "2", "-H", "Connection: close",
            "-w", "%{time_connect} %{num_connects} %{http_code}\\n"]
    for _ in range(CONNECT_N):
        argv += ["-o", "/dev/null", url]
    out = subprocess.run(prefix + argv, capture_output=True, text=True, timeout=CONNECT_CAP + 10)
    xs, bad = [], 0
    for line in out.stdout.splitlines():
        t, nc, code = line.split()
        if nc == "1" and code == "200":
            xs.append(float(t))
        else:
            bad += 1
    return xs, bad + max(0, CONNECT_N - len(out.stdout.splitlines()))


def rx_packets(args, host, pid, addr):
    """Packets received by the interface of task pid holding addr."""
    out = subprocess.run(in_host(args, host, pid) + ["ip", "-j", "-s", "addr"], capture_output=True, text=True,
                         timeout=15)
    if out.returncode != 0:
        raise BenchError("ip addr in task %d on %s: %s" % (pid, host, out.stderr.strip()))
    for link in json.loads(out.stdout):
        if any(a.get("local") == addr for a in link.get("addr_info", [])):
            return link["stats64"]["rx"]["packets"]
    raise BenchError("no interface with %s in task %d on %s" % (addr, pid, host))


def kill_round(args, mgr, q, known, victim, client, mesh_url):
    """SIGKILL of victim's nginx (its container's PID 1) while client runs
    KILL_LOOP against the mesh; the kill's time is taken inside the lab
    host right before kill(2). Meanwhile polls the manager for the task
    leaving running and a replacement (a task ID not in known, added to it)
    running."""
    loop = subprocess.Popen(in_host(args, client) + ["timeout", "-k", "2", str(int(KILL_CAP) + 10), "python3", "-c",
                                                     KILL_LOOP, mesh_url.split("/")[2].split(":")[0],
                                                     str(MESH_PORT), str(KILL_PERIOD_S), str(KILL_N),
                                                     str(KILL_CAP)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(KILL_PRE_S)
        t_cmd0 = time.monotonic()
        t_kill = float(lab_run(args, "exec", victim["host"], "python3", "-c",
                               "import os, sys, time; t = time.monotonic(); os.kill(int(sys.argv[1]), 9); "
                               "print(repr(t))", str(victim["pid"])).strip())
        t_cmd1 = time.monotonic()
        t_down = t_repl = None
        t_stop = t_kill + KILL_CAP
        while time.monotonic() < t_stop and (t_down is None or t_repl is None):
            ts = mgr.json("GET", q)
            now = time.monotonic()
            for t in ts:
                if t["ID"] == victim["id"] and t["Status"]["State"] != "running" and t_down is None:
                    t_down = now
                if t["ID"] not in known and t["Status"]["State"] == "running" and t_repl is None:
                    t_repl = now
                    known.add(t["ID"])
            time.sleep(0.05)
        out, err = loop.communicate(timeout=KILL_CAP + 15)
    finally:
        if loop.poll() is None:
            loop.kill()
            loop.wait(timeout=5)
    if loop.returncode != 0:
        raise BenchError("request loop on %s: exit %d: %s" % (client, loop.returncode, err[-300:]))
    reqs = json.loads(out.strip().splitlines()[-1])
    return {"victim": victim, "t_kill": t_kill, "t_down": t_down, "t_repl": t_repl, "reqs": reqs,
            "t_cmd": (t_cmd0, t_cmd1)}


def report_death(w, d, client, mesh_url):
    v, t_kill, reqs = d["victim"], d["t_kill"], d["reqs"]

    def ok(x):
        return x[2] == "200"
    before = [x for x in reqs if x[0] < t_kill]
    after = [x for x in reqs if x[0] >= t_kill]
    fails = [x for x in after if not ok(x)]
    starts = [x[0] for x in reqs]
    gap = statistics.fmean(b - a for a, b in zip(starts, starts[1:])) if len(starts) > 1 else float("nan")
    print("task death: SIGKILL of the replica on %s (nginx pid %d); %s sends GET %s,"
          % (v["host"], v["pid"], client, mesh_url))
    print("1 s to connect and 1 s to answer, one started every %.0f ms wanted (%s ms on average), "
          "not waiting for the earlier ones" % (KILL_PERIOD_S * 1000, ms(gap)))
    print("%-*s %s" % (w, "requests before the kill", "%d, %d failed" % (len(before), sum(not ok(x) for x in before))))
    kinds = sorted({x[2] for x in fails})
    print("%-*s %s" % (w, "requests after the kill", "%d over %.1f s, %d failed%s"
                       % (len(after), (after[-1][1] - t_kill) if after else 0.0, len(fails),
                          " (%s)" % ", ".join("%s x%d" % (k, sum(1 for x in fails if x[2] == k)) for k in kinds)
                          if fails else "")))
    every_fail = [x for x in reqs if not ok(x)]
    if every_fail:
        print("%-*s %s" % (w, "failures: sent at ms from kill (outcome)",
                           " ".join("%+.0f(%s)" % ((x[0] - t_kill) * 1000, x[2]) for x in every_fail[:12]) +
                           (" ..." if len(every_fail) > 12 else "")))
    print("%-*s %s" % (w, "first request sent at ms from kill", "%+.0f" % ((reqs[0][0] - t_kill) * 1000)))
    print("%-*s %s" % (w, "kill command (lab exec) ran at ms from kill", "%+.0f .. %+.0f"
                       % ((d["t_cmd"][0] - t_kill) * 1000, (d["t_cmd"][1] - t_kill) * 1000)))
    if fails:
        last = fails[-1]
        print("%-*s %s" % (w, "kill -> last failed request sent", ms(last[0] - t_kill)))
        print("%-*s %s" % (w, "kill -> last failed request ended", ms(last[1] - t_kill)))
        ok_after = [x for x in after if x[0] > last[1]]
        if not ok_after:
            print("%-*s %s" % (w, "", "STILL FAILING at the end of the %.0f s loop" % KILL_CAP))
        else:
            print("%-*s %s" % (w, "clean after it", "%d requests over %.1f s" %
                               (len(ok_after), ok_after[-1][1] - ok_after[0][0])))
    else:
        print("%-*s %s" % (w, "kill -> last failed request", "none failed"))
    print("%-*s %s" % (w, "kill -> manager lists the task not running", ms(d["t_down"] - t_kill) if d["t_down"]
                       else "not within %.0f s" % KILL_CAP))
    print("%-*s %s" % (w, "kill -> manager lists a replacement running", ms(d["t_repl"] - t_kill) if d["t_repl"]
                       else "not within %.0f s" % KILL_CAP))
    print("%-*s %s" % (w, "", "(manager polled every 50 ms from the end of the kill command)"))
    print()


def main_mesh(args):
    t_start = time.monotonic()
    hosts = [kv.split("=") for kv in args.hosts.split(",")]
    if len(hosts) != 2:
        raise BenchError("--mesh wants 2 hosts (manager first), got %d" % len(hosts))
    (m_host, m_ip), (w_host, w_ip) = hosts
    client = args.client
    sock = {h: os.path.join(args.dir, h, "shoal.sock") for h, _ in hosts}
    mgr = Client(sock[m_host], timeout=60)
    mgr_id = mgr.json("POST", "/swarm/init", {"ListenAddr": "0.0.0.0:2377", "AdvertiseAddr": m_ip})
    wait_for(lambda: node_state(mgr, mgr_id) == "ready", "manager Ready")
    token = mgr.json("GET", "/swarm")["JoinTokens"]["Worker"]
    lab_run(args, "start", w_host)
    wkr = Client(sock[w_host], timeout=60)
    join(wkr, m_ip, w_ip, token)
    wid = worker_node_id(wkr)
    wait_for(lambda: node_state(mgr, wid) == "ready", "worker %s Ready" % w_host, interval=0.02)
    pull(mgr, "nginx")
    pull(wkr, "nginx")
    host_of = {mgr_id: m_host, wid: w_host}
    body = {"Name": "benchweb",
            "TaskTemplate": {"ContainerSpec": {"Image": "nginx", "StopGracePeriod": 100000000}},
            "Mode": {"Replicated": {"Replicas": 2}},
            "EndpointSpec": {"Ports": [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": MESH_PORT}]}}
    sid = mgr.json("POST", "/services/create", body, want=(200, 201))["ID"]
    q = "/tasks?filters=" + urllib.parse.quote(json.dumps({"service": [sid]}))

    def running_tasks():
        return [t for t in mgr.json("GET", q) if t.get("DesiredState") == "running"
                and t["Status"]["State"] == "running"]
    tasks, _ = wait_for(lambda: (lambda ts: ts if len(ts) == 2 else None)(running_tasks()),
                        "benchweb 2/2 running", cap=60.0, interval=0.1)
    reps = []  # dicts: id, host, cid, pid, addr (ingress)
    for t in tasks:
        h = host_of[t["NodeID"]]
        addr = [a["Addresses"][0].split("/")[0] for a in t.get("NetworksAttachments") or []
                if a["Network"]["Spec"]["Name"] == "ingress"]
        if not addr:
            raise BenchError("task %s has no ingress address: %r" % (t["ID"], t.get("NetworksAttachments")))
        cid = t["Status"]["ContainerStatus"]["ContainerID"]
        c = Client(sock[h])
        pid = c.json("GET", "/containers/%s/json" % cid)["State"]["Pid"]
        c.close()
        if not pid:
            raise BenchError("container %s on %s has no State.Pid" % (cid, h))
        reps.append({"id": t["ID"], "host": h, "cid": cid, "pid": pid, "addr": addr[0]})
    # The one on the manager first; both on one node is reported, not fatal.
    reps.sort(key=lambda r: r["host"] != m_host)
    spread_nodes = len({r["host"] for r in reps})
    sbox = os.path.join(args.dir, m_host, "exec", "netns", "ingress_sbox")
    mesh_url = "http://%s:%d/" % (m_ip, MESH_PORT)

    def answers(prefix, url):
        out = subprocess.run(prefix + ["curl", "-s", "-o", "/dev/null", "-m", "1", "-w", "%{http_code}", url],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() == "200"
    wait_for(lambda: answers(in_host(args, client), mesh_url), "the mesh answering %s from %s" % (mesh_url, client),
             cap=30.0, interval=0.1)
    wait_for(lambda: answers(in_host(args, m_host), mesh_url), "the mesh answering on %s itself" % m_host,
             cap=30.0, interval=0.1)
    for r in reps:
        u = "http://%s/" % r["addr"]
        wait_for(lambda: answers(in_host(args, m_host, sbox), u), "%s from %s's ingress sandbox" % (u, m_host),
                 cap=30.0, interval=0.1)

    # The paths: (label, argv prefix, url).
    def rep_label(r):
        return "task on %s (%s)" % (r["host"], "local" if r["host"] == m_host else "VXLAN")
    paths = [("mesh: %s -> %s:%d" % (client, m_host, MESH_PORT), in_host(args, client), mesh_url, True),
             ("mesh: %s -> own address:%d" % (m_host, MESH_PORT), in_host(args, m_host), mesh_url, True)]
    for r in reps:
        paths.append(("direct: %s sandbox -> %s" % (m_host, rep_label(r)), in_host(args, m_host, sbox),
                      "http://%s/" % r["addr"], False))

    # 1. wrk, rounds alternating over the paths; the replicas' packet
    # counters say how the mesh spread the connections.
    wrk_res = {p[0]: [] for p in paths}
    spread = {p[0]: [0] * len(reps) for p in paths if p[3]}
    wrk_capped = False
    t_end = time.monotonic() + WRK_CAP
    for _ in range(WRK_ROUNDS):
        for label, prefix, url, is_mesh in paths:
            if time.monotonic() > t_end:
                wrk_capped = True
                break
            rx0 = [rx_packets(args, r["host"], r["pid"], r["addr"]) for r in reps] if is_mesh else None
            wrk_res[label].append(wrk(args, prefix, url))
            if is_mesh:
                for i, r in enumerate(reps):
                    spread[label][i] += rx_packets(args, r["host"], r["pid"], r["addr"]) - rx0[i]

    # 2. Connection setup, sequential.
    conn = {}
    for label, prefix, url, _ in paths:
        conn[label] = connect_times(args, prefix, url)

    # 3. SIGKILL one replica while the client requests the mesh on the
    # manager's address: first the one on the worker (its connections cross
    # VXLAN), then, once its replacement runs, the one on the manager.
    deaths = []
    known = {r["id"] for r in reps}
    for victim in (reps[-1], reps[0]) if spread_nodes == 2 else (reps[-1],):
        if deaths:
            wait_for(lambda: (lambda ts: ts if len(ts) == 2 else None)(running_tasks()),
                     "benchweb 2/2 running again", cap=30.0, interval=0.1)
            time.sleep(1.0)  # the mesh message follows the task's state
        deaths.append(kill_round(args, mgr, q, known, victim, client, mesh_url))

    mgr.json("DELETE", "/services/" + sid, want=(200, 204))
    mgr.close()
    wkr.close()

    # ---- report ----
    print()
    print("shoal bench: routing mesh  (service of 2 nginx replicas, --publish %d:80; lab: %s, client %s; "
          "times in ms)" % (MESH_PORT, ", ".join("%s=%s" % tuple(h) for h in hosts), client))
    print("replicas: %s" % "; ".join("%s on %s, ingress %s" % (r["id"][:10], r["host"], r["addr"]) for r in reps))
    if spread_nodes != 2:
        print("NOTE: both replicas run on one node (%s): no VXLAN path measured" % reps[0]["host"])
    print()
    w = 52
    print("%-*s %6s %9s %9s %9s %7s   %s" % (w, "HTTP, wrk %s" % " ".join(WRK_ARGS[:3]), "rounds", "req/s",
                                           "p50", "p99", "errors", "note"))
    print("%-*s %6s %9s %9s %9s %7s   %s" % (w, "-" * w, "-" * 6, "-" * 9, "-" * 9, "-" * 9, "-" * 7, "-" * 20))
    for label, _, _, is_mesh in paths:
        xs = wrk_res[label]
        if not xs:
            print("%-*s %6d   (no samples)" % (w, label, 0))
            continue
        note = "req/s per round: " + "/".join("%.0f" % x["rps"] for x in xs)
        if is_mesh:
            tot = sum(spread[label]) or 1
            note += "; rx packets %s" % " / ".join("%s %.0f%%" % (r["host"], 100.0 * n / tot)
                                                   for r, n in zip(reps, spread[label]))
        print("%-*s %6d %9.0f %9s %9s %7d   %s" % (w, label, len(xs), statistics.fmean(x["rps"] for x in xs),
                                               ms(statistics.fmean(x["p50"] for x in xs)),
                                               ms(statistics.fmean(x["p99"] for x in xs)),
                                               sum(x["errors"] for x in xs), note))
    direct = [x["rps"] for p in paths if not p[3] for x in wrk_res[p[0]]]
    if direct:
        d = statistics.fmean(direct)
        for label, _, _, is_mesh in paths:
            if is_mesh and wrk_res[label]:
                print("%-*s %6s %9.2f   %s" % (w, "req/s ratio, mesh from " +
                                               label.split(":")[1].strip().split(" ->")[0] + " / direct", "",
                                               statistics.fmean(x["rps"] for x in wrk_res[label]) / d,
                                               "req/s, mesh mean / mean of both direct rows"))
    if wrk_capped:
        print("%-*s   CAPPED (wrk rounds over %.0fs; %d of each wanted)" % (w, "", WRK_CAP, WRK_ROUNDS))
    print("%-*s   %s" % (w, "", "nginx: 1 worker, access log to stdout (conmon); 2 CPUs shared by wrk, "
                              "nginx, the kernel and any other load"))
    print()
    print("%-*s %6s %9s %9s %9s %7s" % (w, "TCP connect (curl time_connect, sequential)", "n", "p50", "p99",
                                        "max", "failed"))
    print("%-*s %6s %9s %9s %9s %7s" % (w, "-" * w, "-" * 6, "-" * 9, "-" * 9, "-" * 9, "-" * 7))
    for label, _, _, _ in paths:
        xs, bad = conn[label]
        if not xs:
            print("%-*s %6d   (no samples; %d failed)" % (w, label, 0, bad))
            continue
        print("%-*s %6d %9s %9s %9s %7d" % (w, label, len(xs), ms(pct(xs, 50)), ms(pct(xs, 99)), ms(max(xs)),
                                            bad))
    print()
    for d in deaths:
        report_death(w, d, client, mesh_url)
    print("bench: mesh measured in %.1fs" % (time.monotonic() - t_start))


# ---- the cluster simulator (--sim) ----

SIM_JOIN_CAP = 300.0     # all simulated nodes Ready
SIM_RUN_CAP = float(os.environ.get("BENCH_SIM_RUN_CAP", "600"))  # create -> all running (10 min)
SIM_DOWN_CAP = 60.0      # nodes taken down -> shown Down
SIM_RESCHED_CAP = 180.0  # shown Down -> their tasks running elsewhere
SIM_UP_CAP = 60.0        # brought back -> Ready
SIM_IDLE_S = 10.0        # CPU of the leader while idle
SIM_LS_N = 5             # docker service ls / node ls runs (and a 20 s cap)
SIM_POLL_S = 0.25
# API clients creating the services at once (1: one after the other, as
# `docker stack deploy` does).
SIM_CLIENTS = max(1, int(os.environ.get("BENCH_SIM_CLIENTS", "1")))
SIM_RESTART_CAP = 120.0  # a restarted manager back reachable
# BENCH_SIM_PERF=DIR: `perf record` of each manager and the simulator over
# the ramp, into DIR/<host>.data, and of the two managers left over the
# failover (SIGKILL to a second after the first accepted write), into
# DIR/<host>-failover.data; call graphs by BENCH_SIM_PERF_CG (perf's
# --call-graph: fp, the default, or dwarf for libraries built without
# frame pointers) at BENCH_SIM_PERF_HZ samples a second (499 with fp, 97
# with dwarf).
SIM_PERF = os.environ.get("BENCH_SIM_PERF", "")
SIM_PERF_CG = os.environ.get("BENCH_SIM_PERF_CG", "fp")
SIM_PERF_HZ = os.environ.get("BENCH_SIM_PERF_HZ", "499" if SIM_PERF_CG == "fp" else "97")
DOCKER = os.environ.get("SHOAL_TEST_DOCKER", "/usr/local/bin/docker")


def perf_start(pids, suffix=""):
    """`perf record` of each (name, pid) into SIM_PERF/<name><suffix>.data
    when BENCH_SIM_PERF is set; the recorders, for perf_stop."""
    if not SIM_PERF:
        return []
    os.makedirs(SIM_PERF, exist_ok=True)
    perfs = [subprocess.Popen(["perf", "record", "-q", "-F", SIM_PERF_HZ, "--call-graph", SIM_PERF_CG,
                               "-p", str(p), "-o", os.path.join(SIM_PERF, h + suffix + ".data")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for h, p in pids]
    if perfs:
        time.sleep(0.5)  # attached before what they are to see
    return perfs


def perf_stop(perfs):
    for pr in perfs:
        pr.send_signal(signal.SIGINT)
    for pr in perfs:
        try:
            pr.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pr.kill()


def sim_control(path, line, timeout=30.0):
    """One command on shoal-sim's control socket; its JSON answer."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall((line + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise BenchError("shoal-sim closed its control socket on %r" % line)
            buf += chunk
    finally:
        s.close()
    return json.loads(buf)


def main_sim(args):
    t_start = time.monotonic()
    mgrs = [kv.split("=") for kv in args.managers.split(",")]
    sim_host = args.simhost.split("=")[0]
    sock = {h: os.path.join(args.dir, h, "shoal.sock") for h, _ in mgrs}
    ip = dict(mgrs)
    names = [h for h, _ in mgrs]
    n_nodes, n_svc, n_rep = args.sim_nodes, args.sim_services, args.sim_replicas
    total = n_svc * n_rep

    def jsoncall(h, method, path, body=None, timeout=60):
        st, b = once(sock[h], method, path, body, timeout=timeout)
        if st not in (200, 201):
            raise BenchError("%s %s on %s: HTTP %d %r" % (method, path, h, st, b))
        return b

    def all_reachable():
        def ok():
            leader, reach = ha_view(sock[names[0]])
            if leader is None or sorted(reach) != sorted(names) or \
                    any(r != "reachable" for r in reach.values()):
                return None
            return leader
        return wait_for(ok, "managers all reachable", interval=0.05)[0]

    jsoncall(names[0], "POST", "/swarm/init", {"ListenAddr": "0.0.0.0:2377", "AdvertiseAddr": ip[names[0]]})
    tokens = jsoncall(names[0], "GET", "/swarm")["JoinTokens"]
    for h in names[1:]:
        jsoncall(h, "POST", "/swarm/join", {"ListenAddr": "0.0.0.0:2377", "AdvertiseAddr": ip[h],
                                           "RemoteAddrs": ["%s:2377" % ip[names[0]]],
                                           "JoinToken": tokens["Manager"]})
    leader = all_reachable()
    # Every task on a simulated node: the managers run none.
    # (A node update races the dispatcher's status writes: read again.)
    for nid in [n["ID"] for n in jsoncall(leader, "GET", "/nodes")]:
        for _ in range(20):
            n = jsoncall(leader, "GET", "/nodes/" + nid)
            st, _ = once(sock[leader], "POST", "/nodes/%s/update?version=%d" % (nid, n["Version"]["Index"]),
                         dict(n["Spec"], Availability="drain"), timeout=30)
            if st == 200:
                break
            time.sleep(0.1)
        else:
            raise BenchError("could not drain node %s" % nid)
    lpid = lab_pid(args, leader)
    rss_empty = rss_kib(lpid)

    ctl = os.path.join(args.dir, "sim.sock")
    log_path = os.path.join(args.dir, "shoal-sim.log")
    argv = [args.lab, "--dir", args.dir, "exec", sim_host, os.path.join(args.root, "bin", "shoal-sim"),
            "--join-token", tokens["Worker"], "--nodes", str(n_nodes), "--control", ctl,
            "--stats", "10s", "--join-parallel", "32"]
    for h in names:
        argv += ["--manager", ip[h]]
    rows = []
    with open(log_path, "wb") as log:
        sim = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        def sim_status():
            if sim.poll() is not None:
                raise BenchError("shoal-sim exited (%d); see %s" % (sim.returncode, log_path))
            return sim_control(ctl, "status")

        def nodes_or_none():
            # Through any manager; None while there is no leader (an
            # election under load): the waits go on until their caps.
            for h in [leader] + [x for x in names if x != leader]:
                st, b = once(sock[h], "GET", "/nodes", timeout=30)
                if st == 200:
                    return b
            return None

        def ready_count():
            return sum(1 for n in (nodes_or_none() or [])
                       if (n["Description"].get("Engine") or {}).get("Labels", {}).get("sim") == "true"
                       and n["Status"]["State"] == "ready")
        wait_for(lambda: os.path.exists(ctl), "shoal-sim's control socket", interval=0.05)
        # Capped without failing: how many made it, and at what rate.
        t0 = time.monotonic()
        ready = 0  # the most seen at once (a poll during an election sees none)
        while time.monotonic() - t0 < SIM_JOIN_CAP:
            ready = max(ready, ready_count())
            if ready == n_nodes:
                break
            time.sleep(1.0)
        t_join = time.monotonic() - t0
        if ready == n_nodes:
            rows.append(("%d simulated nodes Ready (start -> node ls)" % n_nodes, "%.1f s" % t_join, ""))
        else:
            rows.append(("simulated nodes Ready (start -> node ls)", "CAPPED",
                         "%d of %d after %.0f s (%.1f/s)" % (ready, n_nodes, t_join, ready / t_join)))
        time.sleep(SETTLE_S)
        c0 = cpu_s(lpid)
        time.sleep(SIM_IDLE_S)
        idle_nodes = (cpu_s(lpid) - c0) / SIM_IDLE_S * 100.0
        rss_nodes = rss_kib(lpid)

        # The reference for the creates' answers below: one create (and
        # remove) of a service with no replicas on the idle cluster.
        ref_s = []
        for k in range(3):
            tc = time.monotonic()
            st, b = once(sock[leader], "POST", "/services/create",
                         {"Name": "simref%d" % k, "TaskTemplate": {"ContainerSpec": {"Image": "busybox"}},
                          "Mode": {"Replicated": {"Replicas": 0}}}, timeout=30)
            if st not in (200, 201):
                raise BenchError("service create simref%d: HTTP %d %r" % (k, st, b))
            ref_s.append(time.monotonic() - tc)
            once(sock[leader], "DELETE", "/services/" + b["ID"], timeout=30)

        # N services x R replicas, created back to back on the leader.
        # Where the CPU goes over the ramp: each manager and the simulator.
        cpu_pids = [(h, lab_pid(args, h)) for h in names]
        cpu_pids += [("shoal-sim", p) for p in pids_named("shoal-sim")]
        cpu0 = {h: cpu_s(p) for h, p in cpu_pids}
        sched0 = loop_sched_s(lpid)
        # The leader's loop every 100 ms over the ramp: when it idled.
        loop_trace, trace_stop = [], threading.Event()

        def trace_loop():
            while not trace_stop.is_set():
                loop_trace.append((time.monotonic(),) + loop_sched_s(lpid))
                trace_stop.wait(0.1)
        tracer = threading.Thread(target=trace_loop, daemon=True)
        tracer.start()
        rss0 = {h: rss_kib(p) for h, p in cpu_pids}
        st0 = sim_status()
        msgs0, made0 = st0["Messages"], st0["Reported"]["Updates"]
        perfs = perf_start(cpu_pids)
        t0 = time.monotonic()
        # Each create's answer time: the creates are answered one
        # service's cycle apart (orchestrate, commit, apply, send to the
        # nodes), which is what paces the ramp.
        create_s = []

        def create(i):
            # Restart delay 0 (`--restart-delay 0s`): the rescheduling
            # figure is the managers' work, not Docker's default 5 s wait.
            spec = {"Name": "sim%03d" % i,
                    "TaskTemplate": {"ContainerSpec": {"Image": "busybox", "Args": ["sleep", "1d"]},
                                     "RestartPolicy": {"Delay": 0}},
                    "Mode": {"Replicated": {"Replicas": n_rep}}}
            for _ in range(60):  # a 503 while an election runs: again
                tc = time.monotonic()
                st, b = once(sock[leader], "POST", "/services/create", spec, timeout=120)
                if st in (200, 201) or (st == 409 and "already exists" in str(b)):
                    create_s.append(time.monotonic() - tc)
                    break
                time.sleep(1.0)
            else:
                raise BenchError("service create sim%03d: HTTP %d %r" % (i, st, b))
        with concurrent.futures.ThreadPoolExecutor(SIM_CLIENTS) as pool:
            list(pool.map(create, range(n_svc)))
        t_created = time.monotonic() - t0
        t_sim_all = None
        shape = []  # (running, s since the first create) at each change seen
        last = (0, 0.0)
        t_end = t0 + SIM_RUN_CAP
        while time.monotonic() < t_end:
            r = sim_status()["Tasks"]["Running"]
            if r != last[0]:
                last = (r, time.monotonic() - t0)
                shape.append(last)
            if r >= total:
                t_sim_all = time.monotonic() - t0
                break
            time.sleep(SIM_POLL_S)
        cpu_ramp = {h: cpu_s(p) - cpu0[h] for h, p in cpu_pids}
        sched1, t_sched = loop_sched_s(lpid), time.monotonic() - t0
        trace_stop.set()
        tracer.join()
        perf_stop(perfs)
        grew_mib = sum(max(0, rss_kib(p) - rss0[h]) for h, p in cpu_pids) / 1024
        t_ramp = time.monotonic() - t0
        st1 = sim_status()
        msgs = {k: v - msgs0[k] for k, v in st1["Messages"].items() if k in msgs0}
        made_updates = st1["Reported"]["Updates"] - made0

        def api_running():
            st, b = once(sock[leader], "GET", "/services?status=true", timeout=60)
            return sum((x.get("ServiceStatus") or {}).get("RunningTasks", 0)
                       for x in (b if st == 200 else []))
        t_api_all = None
        if t_sim_all is not None:
            while time.monotonic() < t_end + 30:
                if api_running() >= total:
                    t_api_all = time.monotonic() - t0
                    break
                time.sleep(SIM_POLL_S)
        rows.append(("create %d services x %d replicas (API calls%s)" % (
                         n_svc, n_rep, ", %d clients at once" % SIM_CLIENTS if SIM_CLIENTS > 1 else ""),
                     "%.1f s" % t_created, ""))
        rows.append(("service create answered during the ramp (p50, max)",
                     "%s ms" % ms(statistics.median(create_s)),
                     "max %s ms over %d (idle cluster: %s ms): %s" % (
                         ms(max(create_s)), len(create_s), ms(statistics.median(ref_s)),
                         "a service's cycle on the leader each" if SIM_CLIENTS == 1 else
                         "%d clients: each waits for the passes ahead of it" % SIM_CLIENTS)))
        rows.append(("CPU over the ramp, all processes", "%.1f s" % sum(cpu_ramp.values()),
                     "of %.1f s on %d cores: %s" % (
                         t_ramp * (os.cpu_count() or 1), os.cpu_count() or 1,
                         ", ".join("%s%s %.1f" % (h, " (leader)" if h == leader else "", v)
                                   for h, v in cpu_ramp.items()))))
        # The leader's loop is the ramp's critical path: what it ran, what
        # it waited for a core (the other processes' CPU), the rest idle.
        ran, waited = sched1[0] - sched0[0], sched1[1] - sched0[1]
        rows.append(("the leader's loop thread over the ramp", "ran %.1f s" % ran,
                     "waited %.1f s for a core, idle %.1f s of %.1f s" % (
                         waited, max(0.0, t_sched - ran - waited), t_sched)))
        idle_s = []  # per whole second of the ramp
        for k in range(int(t_sched)):
            a = [x for x in loop_trace if t0 + k <= x[0] <= t0 + k + 1]
            if len(a) >= 2:
                busy = (a[-1][1] - a[0][1]) + (a[-1][2] - a[0][2])
                idle_s.append(max(0.0, (a[-1][0] - a[0][0]) - busy))
        if idle_s:
            rows.append(("  its idle time, each second (s)", "",
                         " ".join("%.1f" % x for x in idle_s)))
        # The same machine's price of new memory, measured now.
        fresh, again = touch_mib_s()
        rows.append(("fresh memory's first touch, this machine", "%.0f MiB/s" % fresh,
                     "%.0f MiB/s touched again right after; the processes grew %.0f MiB over "
                     "the ramp: ~%.1f s of the CPU above at the first rate" % (
                         again, grew_mib, grew_mib / max(fresh, 1e-6))))
        if t_sim_all is not None:
            rows.append(("create -> all %d running (sim reports)" % total, "%.1f s" % t_sim_all,
                         "goal <= 10 s"))
            rows.append(("tasks/s to all running", "%.0f/s" % (total / max(t_sim_all, 1e-3)),
                         "goal >= 10,000/s"))
            # The ramp's shape: when each share of the tasks ran (polled
            # every SIM_POLL_S), so a slow start or a long tail shows.
            marks = []
            for q in (0.01, 0.25, 0.5, 0.75, 0.9, 0.99):
                at = next((t for r, t in shape if r >= q * total), None)
                if at is not None:
                    marks.append("%d%% %.1f" % (round(q * 100), at))
            rows.append(("  running by then (s)", " ".join(marks[:2]), " ".join(marks[2:])))
            rows.append(("create -> all running (service ls counts)",
                         "%.1f s" % t_api_all if t_api_all else "not within 30 s more", ""))
            # What the leader's CPU per task mostly pays for: one write
            # per assignment message, a read and an answer per request.
            rows.append(("messages per task over the ramp",
                         "%.2f" % ((msgs["Assignments"] + msgs["ReportRequests"]) / total),
                         "assignment messages to the nodes %d (%.2f a task), status report "
                         "requests from them %d (%.2f)" % (
                             msgs["Assignments"], msgs["Assignments"] / total,
                             msgs["ReportRequests"], msgs["ReportRequests"] / total)))
            # Each update is a store change every manager applies: the
            # nodes' merging (one request in flight, the latest status of
            # a task wins) decides how many of a task's steps they see.
            rows.append(("status updates sent per task over the ramp",
                         "%.2f" % (msgs["ReportUpdates"] / total),
                         "%d updates in those requests; the simulator made %d (preparing, "
                         "starting, running: 3 a task)" % (msgs["ReportUpdates"], made_updates)))
        else:
            rows.append(("create -> all %d running" % total, "CAPPED at %.0f s" % SIM_RUN_CAP,
                         "%d running after %.1f s: %.0f tasks/s" % (last[0], last[1],
                                                                    last[0] / last[1] if last[1] else 0)))
        time.sleep(SETTLE_S)
        rss_full = rss_kib(lpid)
        c0 = cpu_s(lpid)
        time.sleep(SIM_IDLE_S)
        idle_full = (cpu_s(lpid) - c0) / SIM_IDLE_S * 100.0
        st = sim_status()
        rows.append(("leader RSS: swarm only / %d nodes / all tasks" % n_nodes,
                     "%d MiB" % (rss_full // 1024),
                     "%d / %d / %d MiB; goal <= 1024" % (rss_empty // 1024, rss_nodes // 1024, rss_full // 1024)))
        # The followers keep the same store, applied from the entries'
        # bytes (the leader shares what it proposed): a new leader's start.
        frss = [(h, rss_kib(lab_pid(args, h))) for h in names if h != leader]
        rows.append(("followers' RSS, all tasks", "%d MiB" % (max(v for _, v in frss) // 1024),
                     ", ".join("%s %d MiB" % (h, v // 1024) for h, v in frss)))
        rows.append(("leader CPU idle (heartbeats), all tasks", "%.1f %%" % idle_full,
                     "of a core over %.0f s; %.1f %% with no tasks; goal <= 5 %%" % (SIM_IDLE_S, idle_nodes)))
        rows.append(("shoal-sim RSS", "%d MiB" % (st["RSSKiB"] // 1024),
                     "%.0f KiB a node, tasks included" % (st["RSSKiB"] / n_nodes)))

        # docker service ls / node ls through the stock CLI, on the leader,
        # next to the CLI's own floor (`docker version`: one small call).
        for what, cmd in (("docker version (the CLI's floor)", ["version"]),
                          ("docker service ls", ["service", "ls"]), ("docker node ls", ["node", "ls"])):
            def one():
                t = time.monotonic()
                subprocess.run([DOCKER, "-H", "unix://" + sock[leader]] + cmd, check=True,
                               capture_output=True, timeout=60)
                return time.monotonic() - t
            xs, capped = timed_loop(SIM_LS_N, 20.0, one)
            rows.append((what + " (p50, max)", "%s ms" % ms(pct(xs, 50)),
                         "max %s ms over %d%s; %s" % (ms(max(xs)), len(xs),
                                                       ", CAPPED" if capped else "",
                                                       "the limit for the two below" if cmd == ["version"]
                                                       else "goal <= 200 ms")))

        # The daemon's part of node ls: GET /nodes read whole, no decode.
        nbytes = [0]

        def raw_nodes():
            c = UnixConn(sock[leader], 60)
            try:
                t = time.monotonic()
                c.request("GET", API + "/nodes")
                nbytes[0] = len(c.getresponse().read())
                return time.monotonic() - t
            finally:
                c.close()
        xs, capped = timed_loop(SIM_LS_N, 20.0, raw_nodes)
        rows.append(("GET /nodes, the daemon's part (p50, max)", "%s ms" % ms(pct(xs, 50)),
                     "max %s ms over %d%s; %.1f MiB of JSON" % (ms(max(xs)), len(xs),
                                                               ", CAPPED" if capped else "",
                                                               nbytes[0] / 1048576)))

        # K nodes down: shown Down, then their tasks running elsewhere.
        k = max(1, n_nodes // 10)
        if t_sim_all is not None:
            node_of = {n["Description"]["Hostname"]: n["ID"]
                       for n in wait_for(nodes_or_none, "a node list", cap=60.0, interval=0.5)[0]}
            down = sim_control(ctl, "down %d" % k)["Down"]
            ids = {node_of[h] for h in down}
            t0 = time.monotonic()

            # Their heartbeats stopped at once but expire over a period:
            # when the first and the last of them was shown Down.
            first_down = []

            def all_down():
                ns = nodes_or_none()
                if ns is None:
                    return False
                down = [n["Status"]["State"] == "down" for n in ns if n["ID"] in ids]
                if any(down) and not first_down:
                    first_down.append(time.monotonic())
                return all(down)
            _, t_down = wait_for(all_down, "%d nodes Down" % k, cap=SIM_DOWN_CAP, interval=0.1)
            t_last = time.monotonic()
            _, t_re = wait_for(lambda: sim_status()["Tasks"]["Running"] >= total,
                               "the tasks of %d Down nodes running elsewhere" % k,
                               cap=SIM_RESCHED_CAP, interval=0.1)
            rows.append(("%d nodes down -> shown Down" % k, "%.1f s" % t_down,
                         "3 heartbeats of 5 s at most; the first %.1f s before the last" % (
                             t_last - first_down[0])))
            rows.append(("their tasks running elsewhere after Down", "%.1f s" % t_re,
                         "%d tasks, restart delay 0 s; goal <= 3 s; %.1f s after the first was "
                         "shown Down" % (total * k // n_nodes, t_re + t_last - first_down[0])))
            sim_control(ctl, "up")
            _, t_up = wait_for(lambda: ready_count() == n_nodes, "nodes Ready again", cap=SIM_UP_CAP,
                               interval=0.5)
            rows.append(("%d nodes back -> Ready" % k, "%.1f s" % t_up, ""))

        # Failover with the full store: SIGKILL the leader, first write.
        # The leader of now, as it says itself (an election under load may
        # have moved it, and another manager's view can lag), found just
        # before the kill.
        node_of = {n["Description"]["Hostname"]: n["ID"]
                   for n in wait_for(nodes_or_none, "a node list", cap=60.0, interval=0.5)[0]}

        def self_leader():
            for h in names:
                if ha_view(sock[h])[0] == h:
                    return h
            return None
        now_leader = wait_for(self_leader, "a manager that says it leads", cap=60.0, interval=0.2)[0]
        if now_leader != leader:
            rows.append(("leader at the failover step", now_leader,
                         "was %s: an election during the run" % leader))
            leader = now_leader
            lpid = lab_pid(args, leader)
        rest = [h for h in names if h != leader]
        perfs = perf_start([(h, lab_pid(args, h)) for h in rest], "-failover")
        t0, w0 = time.monotonic(), time.time()
        os.kill(lpid, 9)
        kk = [0]

        def accepted():
            kk[0] += 1
            return try_write(sock[rest[kk[0] % 2]], node_of[rest[0]], "failover.%d" % kk[0])
        _, t_fo = wait_for(accepted, "a write after killing the leader", cap=30.0, interval=0.005)
        if perfs:
            time.sleep(1.0)
            perf_stop(perfs)
        rows.append(("failover with the full store (SIGKILL -> write)", "%.2f s" % t_fo, "goal < 2 s"))
        # Its parts, from the survivors' logs: the election, then the new
        # leader's first commit.
        won = first_log_after(args.dir, rest, "this node is the leader", w0)
        fc = first_log_after(args.dir, rest, "the first entry of term", w0)
        if won:
            rows.append(("  of which: SIGKILL -> a new leader", "%.2f s" % (won[0] - w0),
                         "%s; its first commit %s" % (won[1], "%.2f s later" % (fc[0] - won[0])
                                                       if fc else "not logged")))
        else:
            rows.append(("  of which: SIGKILL -> a new leader", "none logged",
                         "the figure above is not a failover: %s no longer led" % leader))

        # A raft snapshot of the full store: the bench's entries are fewer
        # than the default interval (10,000), so it is lowered to 20 and
        # labels written until the two managers left have logged one.
        def snap_lines(h):
            with open(os.path.join(args.dir, h, "shoald.log"), errors="replace") as f:
                return [ln for ln in f if "raft snapshot:" in ln]
        before = {h: len(snap_lines(h)) for h in rest}

        def lowered():
            # Again while the managers elect (503) after the failover.
            kk[0] += 1
            return subprocess.run([DOCKER, "-H", "unix://" + sock[rest[kk[0] % 2]], "swarm", "update",
                                   "--snapshot-interval", "20"], check=False, capture_output=True,
                                  timeout=60).returncode == 0

        def snapped():
            kk[0] += 1
            try_write(sock[rest[kk[0] % 2]], node_of[rest[0]], "snap.%d" % kk[0])
            return all(len(snap_lines(h)) > before[h] for h in rest)
        try:
            wait_for(lowered, "swarm update --snapshot-interval 20", cap=60.0, interval=0.5)
            wait_for(snapped, "a raft snapshot on both managers", cap=120.0, interval=0.2)
        except Exception as e:  # printed as a figure, not a failed bench
            print("bench: %s" % e)
        for h in rest:
            lines = snap_lines(h)[before[h]:]
            m = re.search(r"raft snapshot: (\d+) bytes, encoded in ([\d.]+) ms", lines[-1]) if lines else None
            if m:
                rows.append(("raft snapshot of the full store (%s)" % h,
                             "%.1f MiB" % (int(m.group(1)) / 1048576.0),
                             "encoded in %s ms%s" % (m.group(2), " on a worker thread, not the loop"
                                                     if "worker thread" in lines[-1] else " on the loop")))
            else:
                rows.append(("raft snapshot of the full store (%s)" % h, "none", "in 120 s of writes"))
        snaps = [p for h in rest
                 for p in glob.glob(os.path.join(args.dir, h, "data", "**", "snapshot-*"), recursive=True)
                 if not p.endswith(".meta")]
        if snaps:
            newest = max(snaps, key=os.path.getmtime)
            rows.append(("raft snapshot file on disk (sealed)", "%.1f MiB" % (os.path.getsize(newest) / 1048576.0),
                         os.path.basename(newest)))
        # A restart with the full store: the killed leader comes back
        # first (for the majority), then a manager that has a snapshot is
        # killed and started: back reachable, its RSS (the snapshot is
        # restored before it serves), and the restore's time from its log.
        # (Its API forwards to the leader: an answer says nothing of its
        # own store.)
        def restarted(h, pid, what):
            wait_for(lambda: not os.path.exists("/proc/%d" % pid), "killed shoald %d reaped" % pid,
                     interval=0.01)
            w0, tr = time.time(), time.monotonic()
            try:
                lab_run(args, "start", h)
                wait_for(lambda: any(ha_view(sock[o])[1].get(h) == "reachable" for o in names if o != h),
                         "%s reachable again" % h, cap=SIM_RESTART_CAP, interval=0.2)
            except Exception as e:  # printed as a figure, not a failed bench
                rows.append((what, "FAILED", str(e)))
                return False
            t_back = time.monotonic() - tr
            if what:
                with open(os.path.join(args.dir, h, "shoald.log"), errors="replace") as f:
                    lines = [ln for ln in f if "restored in" in ln and (log_time(ln) or 0) >= w0]
                m = re.search(r"snapshot of (\d+) bytes restored in ([\d.]+) ms", lines[-1]) if lines else None
                rows.append((what, "%.1f s" % t_back,
                             "%s; RSS %d MiB; %s" % (h, rss_kib(lab_pid(args, h)) // 1024,
                                                    "its snapshot (%.1f MiB) restored in %s ms" %
                                                    (int(m.group(1)) / 1048576.0, m.group(2)) if m else
                                                    "no snapshot restored")))
            return True
        if restarted(leader, lpid, None):
            now = wait_for(self_leader, "a manager that says it leads", cap=60.0, interval=0.2)[0]
            victim = [h for h in rest if h != now][0]
            vpid = lab_pid(args, victim)
            os.kill(vpid, 9)
            restarted(victim, vpid, "a manager restarted (its snapshot) -> reachable")
        st = sim_status()
    except BaseException:
        print("bench: simulator: what was measured before the failure:")
        for f, v, note in rows:
            print("  %-52s %14s   %s" % (f, v, note))
        raise
    finally:
        sim.terminate()
        try:
            sim.wait(timeout=20)
        except subprocess.TimeoutExpired:
            sim.kill()
            sim.wait(timeout=10)

    print()
    print("shoal bench: cluster simulator, %d simulated nodes, %d services x %d replicas, "
          "3 managers  (lab: %s, simulator on %s)" % (n_nodes, n_svc, n_rep,
                                                     ", ".join("%s=%s" % tuple(m) for m in mgrs), args.simhost))
    print()
    w = 52
    print("%-*s %14s   %s" % (w, "figure", "value", "note"))
    print("%-*s %14s   %s" % (w, "-" * w, "-" * 14, "-" * 30))
    for f, v, note in rows:
        print("%-*s %14s   %s" % (w, f, v, note))
    print("%-*s %14s   %s" % (w, "status updates reported by the simulated nodes",
                              str(st["Reported"]["Updates"]),
                              "running %d, failed %d, shutdown %d" % (st["Reported"]["Running"],
                                                                      st["Reported"]["Failed"],
                                                                      st["Reported"]["Shutdown"])))
    print()
    print("bench: simulator measured in %.1fs" % (time.monotonic() - t_start))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lab", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--ha", action="store_true", help="the HA figures on 5 hosts (--managers)")
    ap.add_argument("--managers", help="H1=IP1,...,H5=IP5 (with --ha)")
    ap.add_argument("--services", action="store_true", help="the service figures on 3 hosts (--hosts)")
    ap.add_argument("--hosts", help="M=IP,W1=IP,W2=IP (with --services; manager first), "
                    "M=IP,W=IP (with --networks)")
    ap.add_argument("--networks", action="store_true", help="the network figures on 2 hosts (--hosts)")
    ap.add_argument("--images", help="the test images (with --networks; busybox for bare crun)")
    ap.add_argument("--mesh", action="store_true", help="the routing mesh figures on 2 hosts (--hosts, --client)")
    ap.add_argument("--client", help="the lab host outside the swarm running the client (with --mesh)")
    ap.add_argument("--manager", help="HOST=IP")
    ap.add_argument("--worker", help="HOST=IP")
    ap.add_argument("--root")
    ap.add_argument("--sim", action="store_true", help="the simulator figures (--managers, --simhost, --root)")
    ap.add_argument("--simhost", help="HOST=IP running shoal-sim (with --sim)")
    ap.add_argument("--sim-nodes", type=int, default=1000)
    ap.add_argument("--sim-services", type=int, default=100)
    ap.add_argument("--sim-replicas", type=int, default=1000)
    args = ap.parse_args()
    if args.sim:
        if not (args.managers and args.simhost and args.root):
            ap.error("--sim needs --managers, --simhost and --root")
        return main_sim(args)
    if args.ha:
        if not args.managers:
            ap.error("--ha needs --managers")
        return main_ha(args)
    if args.services:
        if not args.hosts:
            ap.error("--services needs --hosts")
        return main_services(args)
    if args.networks:
        if not (args.hosts and args.images):
            ap.error("--networks needs --hosts and --images")
        return main_networks(args)
    if args.mesh:
        if not (args.hosts and args.client):
            ap.error("--mesh needs --hosts and --client")
        return main_mesh(args)
    if not (args.manager and args.worker and args.root):
        ap.error("--manager, --worker and --root are required")
    mgr_host, mgr_ip = args.manager.split("=")
    wkr_host, wkr_ip = args.worker.split("=")
    t_start = time.monotonic()

    mgr = Client(os.path.join(args.dir, mgr_host, "shoal.sock"))
    worker = Client(os.path.join(args.dir, wkr_host, "shoal.sock"), timeout=60)

    # The manager before /swarm/init: a plain daemon.
    time.sleep(SETTLE_S)
    plain = mem_kib(lab_pid(args, mgr_host))

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
    rows.append(("idle RSS / PSS, plain shoald", "%d / %d KiB" % plain,
                 "no swarm, %.0fs after start; goal RSS <= %d KiB" % (SETTLE_S, RSS_GOAL_KIB)))
    # Both past the trim that closes what the swarm's setup loaded (the
    # ingress network's rules: libnftables), as an idle daemon is.
    t_joined = time.monotonic()
    for pid in (mgr_pid, wkr_pid):
        wait_settled(pid)
    for what, pid in (("manager", mgr_pid), ("worker", wkr_pid)):
        r, p = mem_kib(pid)
        rows.append(("idle RSS / PSS, %s shoald" % what, "%d / %d KiB" % (r, p),
                     "%.0f s after the join, libraries closed; goal RSS <= %d KiB"
                     % (time.monotonic() - t_joined + SETTLE_S, RSS_GOAL_KIB)))

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
    except (BenchError, OSError, http.client.HTTPException, KeyError, ValueError,
            subprocess.SubprocessError) as e:
        print("bench: FAILED: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)
