"""Cluster faults (issue 7) as a user sees them with the stock docker CLI on
a lab of 3 managers and 2 workers running busybox tasks: a whole-cluster
restart keeps every container (same ID, same start time), and leader
SIGKILLs with managers and workers that joined one by one leave every node
following the new leader, with each desired slot running exactly once once
the cluster settles."""

import json
import random
import threading
import time
import urllib.parse

from lib import HALab, ServiceLab, ha_hosts, timeout, wait_until

MANAGERS = ["m1", "m2", "m3"]
WORKERS = ["w1", "w2"]
HOSTS = MANAGERS + WORKERS
HEARTBEAT = 2  # seconds: --dispatcher-heartbeat, so the test waits less


class FaultLab(ServiceLab, HALab):
    """Managers and workers (HALab) pulling from the lab's registry
    (ServiceLab)."""


def one_by_one(lab):
    """init m1, then joins interleaved so that early nodes learn of later
    managers only through membership updates: m1, w1, m2, w2, m3.
    Returns {host: node ID}."""
    ids = {"m1": lab.init("m1", "--dispatcher-heartbeat", "%ds" % HEARTBEAT)}
    mtok, wtok = lab.token("m1", "manager"), lab.token("m1", "worker")
    for host, tok, via in (("w1", wtok, "m1"), ("m2", mtok, "m1"), ("w2", wtok, "m2"),
                           ("m3", mtok, "m2")):
        lab.join(host, tok, via)
        ids[host] = lab.node_id(host)
    wait_ready(lab, "m1", HOSTS, 30)
    return ids


def node_states(lab, manager):
    """{hostname: (state, availability)} from GET /nodes on manager."""
    return {n["Description"]["Hostname"]: n["Status"]["State"] for n in lab.nodes(manager, 5)}


def wait_ready(lab, manager, hosts, limit):
    def ready():
        try:
            st = node_states(lab, manager)
        except (AssertionError, OSError):
            return False
        return all(st.get(h) == "ready" for h in hosts)
    wait_until(ready, limit, interval=0.2, what="%s Ready on %s" % (hosts, manager))


def containers(lab, host, service=None):
    """{container ID: StartedAt} of the running task containers on host."""
    flt = ["--filter", "label=com.docker.swarm.service.name=" + service] if service else []
    ids = lab.docker(host, "ps", "-q", "--no-trunc", *flt)[1].split()
    if not ids:
        return {}
    out = lab.docker(host, "inspect", "--format", "{{.Id}} {{.State.StartedAt}}", *ids,
                     check=False)[1]
    return dict(l.split(" ", 1) for l in out.splitlines() if " " in l)


def all_containers(lab, hosts, service=None):
    return {h: containers(lab, h, service) for h in hosts}


def task_ids(lab, hosts, service):
    """Task IDs of the running containers of service on hosts, as a sorted
    list (a task twice means a slot running twice)."""
    out = []
    for h in hosts:
        out += lab.docker(h, "ps", "--filter", "label=com.docker.swarm.service.name=" + service,
                          "--format", '{{.Label "com.docker.swarm.task.id"}}')[1].split()
    return sorted(out)


def desired_running(lab, manager, service):
    """IDs of the service's tasks the leader wants running, sorted."""
    flt = urllib.parse.quote(json.dumps({"service": [service], "desired-state": ["running"]}))
    st, body = lab.api(manager, "GET", "/tasks?filters=" + flt, timeout=10)
    assert st == 200, (st, body)
    return sorted(t["ID"] for t in body)


def replicas(lab, manager, service):
    st, body = lab.api(manager, "GET", "/services/" + service, timeout=10)
    assert st == 200, (st, body)
    return body["Spec"]["Mode"]["Replicated"]["Replicas"]


@timeout(420)
def test_whole_cluster_restart_keeps_every_container():
    with FaultLab(ha_hosts(3, 2)) as lab:
        one_by_one(lab)
        lab.service("m1", "create", "--detach", "--name", "keep", "--replicas", "15",
                    "--stop-grace-period", "1s", "busybox", "sleep", "3600")
        wait_until(lambda: sum(len(c) for c in all_containers(lab, HOSTS, "keep").values()) == 15,
                   120, interval=1, what="15 running containers of keep")
        before = all_containers(lab, HOSTS, "keep")

        order = HOSTS[:]
        random.shuffle(order)
        for h in order:
            lab.stop(h)
        random.shuffle(order)
        print("    restart order: %s" % " ".join(order))
        for h in order:
            lab.start(h)
        leader = lab.wait_leader(MANAGERS, 30)
        wait_ready(lab, leader, HOSTS, 30)

        # The first review saw deletions 12 s after the start: watch longer,
        # and every sample must show the very same containers.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = all_containers(lab, HOSTS, "keep")
            assert now == before, "containers changed after the restart:\nbefore %s\nnow    %s" % (
                json.dumps(before, indent=1), json.dumps(now, indent=1))
            time.sleep(1)
        rows = {r["NAME"]: r for r in lab.service_ls(leader)}
        assert rows["keep"]["REPLICAS"] == "15/15", rows


def scale_in_flight(lab, hosts, service, n, results):
    """docker service scale through the first host that answers (a write
    racing the failover); records (n, rc, stderr)."""
    for h in hosts:
        rc, _, err = lab.service(h, "scale", "--detach", "%s=%d" % (service, n), check=False,
                                 timeout=30)
        results.append((n, rc, err.strip()))
        if rc == 0:
            return


@timeout(600)
def test_leader_sigkill_rounds_nodes_follow_and_slots_run_once():
    with FaultLab(ha_hosts(3, 2)) as lab:
        one_by_one(lab)
        lab.service("m1", "create", "--detach", "--name", "web", "--replicas", "6",
                    "--stop-grace-period", "1s", "busybox", "sleep", "3600")
        wait_until(lambda: sum(len(c) for c in all_containers(lab, HOSTS, "web").values()) == 6,
                   120, interval=1, what="6 running containers of web")
        services = ["web"]
        for rnd, n in enumerate((9, 4, 7)):
            leader = lab.wait_leader(MANAGERS, 30)
            rest = [m for m in MANAGERS if m != leader]
            results = []
            scaler = threading.Thread(target=scale_in_flight, args=(lab, rest, "web", n, results))
            scaler.start()
            t0 = lab.kill(leader)
            new = lab.wait_leader(rest, 30)
            elected = time.monotonic() - t0
            # A node that did not find the new leader goes Down at the end
            # of the new leader's grace (3 heartbeats): look after it.
            time.sleep(3 * HEARTBEAT + 2)
            survivors = [h for h in HOSTS if h != leader]
            st = node_states(lab, new)
            assert all(st[h] == "ready" for h in survivors), \
                "round %d: after %s was killed, %s leads; nodes: %s" % (rnd, leader, new, st)
            scaler.join(60)
            extra = "extra%d" % rnd
            lab.service(new, "create", "--detach", "--name", extra, "--replicas", "2",
                        "--stop-grace-period", "1s", "busybox", "sleep", "3600")
            services.append(extra)
            lab.start(leader)
            wait_ready(lab, new, HOSTS, 30)
            print("    round %d: killed %s, %s leads after %.2fs; scale %s"
                  % (rnd, leader, new, elected, results))

            # Settled: each service runs exactly the tasks the leader wants
            # running, one container each, as many as its replicas (a count
            # alone can match while an old container is still on its way
            # out and its replacement not yet up).
            def settled():
                for s in services:
                    want = desired_running(lab, new, s)
                    if len(want) != replicas(lab, new, s) or task_ids(lab, HOSTS, s) != want:
                        return None
                return True
            wait_until(settled, 90, interval=1,
                       what="round %d: each service's running containers == its replicas" % rnd)
        # Every task, as the leader of now (once a follower that applied
        # the entries from their bytes) keeps it, has its service's template
        # (new tasks' entries name it rather than carry it).
        st, tasks = lab.api(lab.wait_leader(MANAGERS, 30), "GET", "/tasks", timeout=30)
        assert st == 200, tasks
        bad = [(t["ID"], t.get("Spec")) for t in tasks
               if not (t.get("Spec") or {}).get("ContainerSpec", {}).get("Image", "").startswith(
                   "busybox") or t["Spec"]["ContainerSpec"].get("Args") != ["sleep", "3600"]]
        assert tasks and not bad, bad[:3]
        # Settled means settled: nothing more starts or stops.
        snap = {s: all_containers(lab, HOSTS, s) for s in services}
        time.sleep(3 * HEARTBEAT)
        assert snap == {s: all_containers(lab, HOSTS, s) for s in services}
