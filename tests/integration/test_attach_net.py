"""Issue 12, standalone containers on attachable overlays: `docker run
--network OVERLAY` on a manager and on a worker reaches a service by name
(VIP and embedded DNS), a non-attachable overlay is refused with Docker's
words, a task reaches the container by its name, and the container keeps
its address across a shoald restart; its address goes with it."""

import json
import time

from lib import SEED, ServiceLab, timeout, wait_until
from test_overlay import two_nodes
from test_services import wait_running

TWO = {"swarma": SEED["swarma"], "swarmb": SEED["swarmb"]}


def task_container(lab, svc, host):
    """The name of svc's running task container on host."""
    out = lab.docker(host, "ps", "--filter", "label=com.docker.swarm.service.name=" + svc,
                     "--format", "{{.Names}}")[1].split()
    assert out, "no task of %s on %s" % (svc, host)
    return out[0]


def net_of(lab, host, ctr, net):
    out = lab.docker(host, "inspect", "--format",
                     "{{json .NetworkSettings.Networks}}", ctr)[1]
    return json.loads(out)[net]


@timeout(420)
def test_run_on_attachable_overlay_from_manager_and_worker():
    with ServiceLab(TWO) as lab:
        two_nodes(lab)
        t0 = time.time() - 1
        lab.docker("swarma", "network", "create", "-d", "overlay", "--attachable", "ovl")
        lab.docker("swarma", "network", "create", "-d", "overlay", "closed")
        lab.service("swarma", "create", "--detach", "--name", "web", "--replicas", "2",
                    "--network", "ovl", "nginx")
        lab.service("swarma", "create", "--detach", "--name", "pinger", "--mode", "global",
                    "--network", "ovl", "busybox", "sleep", "3600")
        wait_running(lab, "web", 2, 90)
        wait_running(lab, "pinger", 2, 90)

        # One-off containers on a worker and on the manager reach the
        # service by its name (its VIP through the embedded DNS).
        for host in ("swarmb", "swarma"):
            rc, out, err = lab.docker(host, "run", "--rm", "--network", "ovl", "busybox",
                                      "wget", "-q", "-O", "-", "http://web/",
                                      check=False, timeout=120)
            assert rc == 0 and "Welcome to nginx!" in out, (host, rc, out, err)
        # --rm: nothing left on the node
        assert lab.docker("swarmb", "ps", "-aq", "--filter", "ancestor=busybox",
                          "--filter", "status=exited")[1].strip() == ""

        # A network not made --attachable: swarmkit's refusal, as dockerd
        # words it.
        rc, out, err = lab.docker("swarmb", "run", "--rm", "--network", "closed", "busybox",
                                  "true", check=False, timeout=60)
        assert rc == 125, (rc, out, err)
        assert ("Could not attach to network closed: rpc error: code = PermissionDenied "
                "desc = network closed not manually attachable") in err, err
        rc, out, err = lab.docker("swarmb", "run", "--rm", "--network", "nosuch", "busybox",
                                  "true", check=False, timeout=60)
        assert rc == 125 and "network nosuch not found" in err, (rc, out, err)

        # A long-running one on the worker: an address of the overlay's
        # subnet in inspect, and the tasks on both nodes reach it by its
        # container name (swarm DNS for attachments).
        lab.docker("swarmb", "run", "-d", "--name", "peer", "--network", "ovl", "busybox",
                   "sleep", "3600", timeout=60)
        ep = net_of(lab, "swarmb", "peer", "ovl")
        addr = ep["IPAddress"]
        assert addr.startswith("10.0.") and ep["NetworkID"], ep
        assert "peer" in ep["DNSNames"], ep
        for host in ("swarma", "swarmb"):
            task = task_container(lab, "pinger", host)

            def reaches():
                rc, out, _ = lab.docker(host, "exec", task, "ping", "-c", "1", "-W", "2",
                                        "peer", check=False, timeout=20)
                return rc == 0 and addr in out
            wait_until(reaches, 30, what="%s's task pings peer" % host)

        # An attachable overlay no task of the worker is on: once a
        # container of the worker is attached, its `network inspect` answers
        # as dockerd's on a worker (Scope swarm, the local containers).
        lab.docker("swarma", "network", "create", "-d", "overlay", "--attachable", "solo")
        lab.docker("swarmb", "run", "-d", "--name", "lonely", "--network", "solo", "busybox",
                   "sleep", "3600", timeout=60)
        lonely = lab.docker("swarmb", "inspect", "--format", "{{.Id}}", "lonely")[1].strip()
        net = json.loads(lab.docker("swarmb", "network", "inspect", "solo")[1])[0]
        assert net["Name"] == "solo" and net["Scope"] == "swarm", net
        assert net["Driver"] == "overlay" and net["Attachable"] is True, net
        assert list(net["Containers"]) == [lonely], net
        assert net["Containers"][lonely]["Name"] == "lonely", net
        lab.docker("swarmb", "rm", "-f", "lonely")

        # `docker events --filter type=network` on the node: the container's
        # connect (dockerd's: the network is the actor, the container an
        # attribute), and the one-off containers' disconnect.
        until = "%.9f" % time.time()
        out = lab.docker("swarmb", "events", "--since", "%.9f" % t0, "--until", until,
                         "--filter", "type=network", "--format", "{{json .}}",
                         timeout=30)[1]
        evs = [json.loads(l) for l in out.splitlines() if l.strip()]
        peer_id = lab.docker("swarmb", "inspect", "--format", "{{.Id}}", "peer")[1].strip()
        mine = [(e["Action"], e["Actor"]["Attributes"].get("name"))
                for e in evs if e["Actor"]["Attributes"].get("container") == peer_id]
        assert mine == [("connect", "ovl")], evs
        assert ("disconnect", "ovl") in [(e["Action"], e["Actor"]["Attributes"].get("name"))
                                         for e in evs], evs
        assert all(e["Actor"]["ID"] == ep["NetworkID"] for e in evs
                   if e["Actor"]["Attributes"].get("name") == "ovl"), evs

        # Across a shoald restart the container keeps its address, and the
        # path works again.
        lab.restart("swarmb")
        wait_until(lambda: lab.docker("swarmb", "info", "--format",
                                      "{{.Swarm.LocalNodeState}}", check=False)[1].strip()
                   == "active", 60, what="swarmb back in the swarm")
        assert net_of(lab, "swarmb", "peer", "ovl")["IPAddress"] == addr
        task = task_container(lab, "pinger", "swarma")
        wait_until(lambda: lab.docker("swarma", "exec", task, "ping", "-c", "1", "-W", "2",
                                      addr, check=False, timeout=20)[0] == 0,
                   60, what="peer reachable after the restart")
        rc, out, err = lab.docker("swarmb", "exec", "peer", "wget", "-q", "-O", "-",
                                  "http://web/", check=False, timeout=30)
        assert rc == 0 and "Welcome to nginx!" in out, (rc, out, err)

        # Removed: its name leaves the network's DNS.
        lab.docker("swarmb", "rm", "-f", "peer")
        wait_until(lambda: lab.docker("swarma", "exec", task, "nslookup", "peer",
                                      check=False, timeout=20)[0] != 0,
                   30, what="peer gone from the DNS")
        # `network inspect bridge` lists the node's standalone containers on
        # it, as dockerd's Containers field.
        cid = lab.docker("swarma", "run", "-d", "--name", "onbridge", "busybox",
                         "sleep", "300")[1].strip()
        got = json.loads(lab.docker("swarma", "network", "inspect", "--format",
                                    "{{json .Containers}}", "bridge")[1])
        assert got[cid]["Name"] == "onbridge" and got[cid]["IPv4Address"].startswith("172."), got
        # the tasks API lists container tasks only (no attachments)
        st, tasks = lab.api("swarma", "GET", "/tasks")
        assert st == 200 and all(t.get("ServiceID") for t in tasks), tasks
