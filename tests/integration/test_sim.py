"""The cluster simulator (bin/shoal-sim) against a real manager, through
the stock docker CLI: ten simulated nodes join with the worker token and
show Ready, marked by the engine label sim=true; a service of 1,000
replicas reaches 1000/1000 on them (no container anywhere: the manager is
drained); two nodes taken down go Down and their tasks run elsewhere;
brought back, they are Ready again. The manager puts at most 50 status
reports in a raft entry here (2,000 by default), so the reports of the
ramp go over many entries (the manager says so in its log) and each
node's request is answered once all of its reports are in. The manager's
JSON moves to mimalloc's heap at 500 tasks and nodes here (2,000 by
default), so the ramp, the rescheduling and the return run with the store
on both heaps. Nothing here claims real containers."""

import json
import os
import re
import socket
import subprocess
import threading
import time

from lib import LAB, ROOT, Lab, timeout, wait_until

SIM = os.path.join(ROOT, "bin", "shoal-sim")
HOSTS = {"simm1": "192.168.33.10", "simhost": "192.168.33.20"}
NODES = 10
REPLICAS = 1000
SPREAD_REPLICAS = 999


def control(path, line, timeout_s=10):
    """One command on the simulator's control socket; its JSON answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        s.connect(path)
        s.sendall((line + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            assert chunk, "control socket closed before answering %r" % line
            buf += chunk
    return json.loads(buf)


def sim_rows(lab):
    """{hostname: status} of the nodes `docker node ls` shows with the
    engine label sim=true."""
    _, out, _ = lab.docker("simm1", "node", "ls", "--filter", "label=sim=true",
                           "--format", "{{.Hostname}} {{.Status}}")
    return dict(line.split() for line in out.splitlines() if line.strip())


def replicas(lab, name):
    _, out, _ = lab.docker("simm1", "service", "ls", "--filter", "name=" + name,
                           "--format", "{{.Name}} {{.Replicas}}")
    rows = dict(line.split(None, 1) for line in out.splitlines() if line.strip())
    return rows.get(name)


def running_by_node(lab, name):
    """{hostname: tasks desired and currently running} from service ps."""
    _, out, _ = lab.docker("simm1", "service", "ps", name, "--filter", "desired-state=running",
                           "--format", "{{.Node}}|{{.CurrentState}}", timeout=60)
    res = {}
    for line in out.splitlines():
        node, state = line.split("|", 1)
        if state.startswith("Running"):
            res[node] = res.get(node, 0) + 1
    return res


def start_sim(lab):
    """shoal-sim with NODES nodes on simhost, joined to simm1, once they
    show Ready: (its process, its control socket, its log's path, the
    nodes' hostnames)."""
    ctl = os.path.join(lab.dir, "sim.sock")
    log_path = os.path.join(lab.dir, "shoal-sim.log")
    with open(log_path, "wb") as log:
        sim = subprocess.Popen(
            [LAB, "--dir", lab.dir, "exec", "simhost", SIM, "--join-token", lab.token("simm1"),
             "--manager", lab.ip("simm1"), "--nodes", str(NODES), "--start-delay", "50ms",
             "--control", ctl, "--stats", "2s", "--data", os.path.join(lab.dir, "sim-data")],
            stdout=log, stderr=subprocess.STDOUT)
    hosts = ["sim-%04d" % (i + 1) for i in range(NODES)]
    try:
        wait_until(lambda: sim_rows(lab) == {h: "Ready" for h in hosts}, 30,
                   what="10 simulated nodes Ready")
    except BaseException:
        stop_sim(sim, log_path, True)
        raise
    return sim, ctl, log_path, hosts


def stop_sim(sim, log_path, failed):
    """Ends shoal-sim (SIGTERM, then SIGKILL after 10 s); after a failure
    prints the end of its log first."""
    if failed:
        with open(log_path, errors="replace") as f:
            tail = f.readlines()[-40:]
        print("    --- shoal-sim log (last %d lines) ---" % len(tail))
        for l in tail:
            print("    | " + l.rstrip("\n"))
    sim.terminate()
    for _ in range(2):  # SIGTERM, then SIGKILL
        try:
            sim.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            sim.kill()


@timeout(150)
def test_simulated_nodes_take_tasks_go_down_and_come_back():
    assert os.access(SIM, os.X_OK), "bin/shoal-sim missing (make)"
    # Small report entries and one assignment message a loop turn: the
    # paths a large cluster takes (entries in parts, flushes in slices).
    with Lab(HOSTS, start=["simm1"], shoald_env={"SHOAL_REPORTS_PER_ENTRY": "50",
                                                "SHOAL_FLUSH_SLICE_US": "0",
                                                "SHOAL_JSON_HEAP_AT": "500"}) as lab:
        mgr_id = lab.init("simm1")
        # Down within 3 heartbeats: 1 s keeps the test short.
        # Raft snapshots during the ramp: the restart below restores one.
        lab.docker("simm1", "swarm", "update", "--dispatcher-heartbeat", "1s",
                   "--snapshot-interval", "50")
        # Nothing for the real node: every task goes to simulated ones.
        lab.docker("simm1", "node", "update", "--availability", "drain", mgr_id)
        sim, ctl, log_path, hosts = start_sim(lab)
        try:
            # Marked as simulated wherever a node is shown.
            _, out, _ = lab.docker("simm1", "node", "inspect", "sim-0001", "--format",
                                   "{{json .Description.Engine.Labels}} "
                                   "{{.Description.Engine.EngineVersion}}")
            labels, version = out.split()
            assert json.loads(labels) == {"sim": "true"}, out
            assert version.endswith("-sim"), out
            _, out, _ = lab.docker("simm1", "node", "ls")
            assert len(re.findall(r"\bsim-\d{4}\b", out)) == NODES, out
            # A simulated node cannot become a manager: its agent does not
            # say it applies the raft entries the managers write.
            rc, _, err = lab.docker("simm1", "node", "promote", "sim-0001", check=False)
            assert rc != 0 and "cannot read the raft log" in err, (rc, err)
            # Each has its own certificate from the swarm's CA: ten node IDs.
            _, out, _ = lab.docker("simm1", "node", "ls", "-q", "--filter", "label=sim=true")
            assert len(set(out.split())) == NODES, out

            # Eleven nodes and no task: the manager has not mapped mimalloc.
            with open("/proc/%d/maps" % lab.pid("simm1")) as f:
                assert "libmimalloc" not in f.read()
            t0 = time.monotonic()
            lab.docker("simm1", "service", "create", "-d", "--no-resolve-image", "--name", "big",
                       "--replicas", str(REPLICAS), "busybox", "sleep", "1d")
            want = "%d/%d" % (REPLICAS, REPLICAS)
            wait_until(lambda: replicas(lab, "big") == want, 60, interval=0.5,
                       what="service big %s" % want)
            print("    1000 replicas running on 10 simulated nodes %.1fs after create"
                  % (time.monotonic() - t0))
            spread = running_by_node(lab, "big")
            assert set(spread) == set(hosts) and sum(spread.values()) == REPLICAS, spread
            st = control(ctl, "status")
            assert st["Tasks"]["Running"] == REPLICAS
            # Its message counts: every node had a message with its tasks;
            # the reports (3 updates a task at least) went in fewer
            # requests, several updates each.
            msgs = st["Messages"]
            assert msgs["Assignments"] >= NODES, msgs
            assert NODES <= msgs["ReportRequests"] < st["Reported"]["Updates"], (msgs, st["Reported"])
            # Every task's last status went out at least (running), none
            # more often than made.
            assert REPLICAS <= msgs["ReportUpdates"] <= st["Reported"]["Updates"], (msgs, st["Reported"])
            assert st["Reported"]["Updates"] >= 3 * REPLICAS, st["Reported"]
            # The ramp's reports went over entries of 50 at most.
            split = re.findall(r"task status: (\d+) reports waiting, proposed in entries "
                               r"of at most 50", lab.logs("simm1"))
            assert split and max(int(n) for n in split) > 50, split
            # Past the mark the manager's loop made its JSON on mimalloc,
            # loaded then (not before: the first ten nodes did not need it).
            moved = re.findall(r"the store holds (\d+) tasks and nodes: its JSON is made on "
                               r"mimalloc's heap \(huge pages\)", lab.logs("simm1"))
            assert len(moved) == 1 and 500 <= int(moved[0]) <= NODES + 1 + REPLICAS, moved
            with open("/proc/%d/maps" % lab.pid("simm1")) as f:
                assert "libmimalloc" in f.read()
            # mimalloc asked for huge pages for the store: some mapping is
            # advised MADV_HUGEPAGE ("hg") or from a hugetlbfs pool ("ht").
            # Whether the kernel then gave them is its own choice.
            with open("/proc/%d/smaps" % lab.pid("simm1")) as f:
                flags = re.findall(r"^VmFlags:(.*)$", f.read(), re.M)
            assert any({"hg", "ht"} & set(v.split()) for v in flags), flags[:3]

            down = control(ctl, "down 2")["Down"]
            assert down == ["sim-0010", "sim-0009"], down
            wait_until(lambda: all(sim_rows(lab).get(h) == "Down" for h in down), 20,
                       what="%s Down" % down)
            t0 = time.monotonic()

            def moved():
                spread = running_by_node(lab, "big")
                return (sum(spread.values()) == REPLICAS and not set(down) & set(spread)
                        and replicas(lab, "big") == want)
            wait_until(moved, 60, interval=0.5, what="the tasks of %s running elsewhere" % down)
            print("    tasks of 2 Down nodes running elsewhere %.1fs later" % (time.monotonic() - t0))

            assert control(ctl, "up")["Up"] == ["sim-0009", "sim-0010"]
            wait_until(lambda: sim_rows(lab) == {h: "Ready" for h in hosts}, 20,
                       what="all 10 simulated nodes Ready again")
            # Back with the same identity: still ten nodes, no new ones.
            _, out, _ = lab.docker("simm1", "node", "ls", "-q", "--filter", "label=sim=true")
            assert len(out.split()) == NODES, out
            assert replicas(lab, "big") == want

            # A manager restarted from a snapshot past the mark decodes it
            # on mimalloc's heap already (its size says how many objects).
            lab.restart("simm1")
            restored = re.findall(r"a snapshot of about (\d+) tasks and nodes: its JSON is "
                                  r"made on mimalloc's heap \(huge pages\)", lab.logs("simm1"))
            assert len(restored) == 1 and int(restored[0]) >= 500, restored
            with open("/proc/%d/maps" % lab.pid("simm1")) as f:
                assert "libmimalloc" in f.read()
            wait_until(lambda: sim_rows(lab) == {h: "Ready" for h in hosts}, 30,
                       what="the simulated nodes Ready with the restarted manager")
            wait_until(lambda: replicas(lab, "big") == want, 30, interval=0.5,
                       what="service big %s after the restart" % want)
            assert sim.poll() is None, "shoal-sim exited"
        except BaseException:
            stop_sim(sim, log_path, True)
            raise
        stop_sim(sim, log_path, False)


@timeout(150)
def test_services_created_at_once_spread_evenly():
    """Eight services of 999 replicas created at once by eight clients:
    more than one orchestrator pass takes (4,000 task changes), so the
    leader makes the rest in a pass that runs while the first one's
    entries commit, and that pass places its tasks around those still in
    flight. Each service has 99 tasks on every node and 9 more on nine
    of them; the ten nodes end with 799 or 800 in all (with the loads of
    the store alone, the second pass put its extras where the first had:
    798 on some)."""
    assert os.access(SIM, os.X_OK), "bin/shoal-sim missing (make)"
    with Lab(HOSTS, start=["simm1"]) as lab:
        mgr_id = lab.init("simm1")
        lab.docker("simm1", "node", "update", "--availability", "drain", mgr_id)
        sim, ctl, log_path, hosts = start_sim(lab)
        try:
            names = ["at%d" % i for i in range(8)]
            threads = [threading.Thread(target=lab.docker, args=(
                "simm1", "service", "create", "-d", "--no-resolve-image", "--name", n,
                "--replicas", str(SPREAD_REPLICAS), "busybox", "sleep", "1d")) for n in names]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            want = "%d/%d" % (SPREAD_REPLICAS, SPREAD_REPLICAS)
            for n in names:
                wait_until(lambda: replicas(lab, n) == want, 60, interval=0.5,
                           what="service %s %s" % (n, want))
            total = {h: 0 for h in hosts}
            for n in names:
                spread = running_by_node(lab, n)
                assert set(spread) == set(hosts) and set(spread.values()) <= {99, 100}, \
                    (n, spread)
                for h, k in spread.items():
                    total[h] += k
            assert sum(total.values()) == 8 * SPREAD_REPLICAS, total
            assert set(total.values()) <= {799, 800}, total
            assert control(ctl, "status")["Tasks"]["Running"] == 8 * SPREAD_REPLICAS
        except BaseException:
            stop_sim(sim, log_path, True)
            raise
        stop_sim(sim, log_path, False)
