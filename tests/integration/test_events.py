"""`docker events` against shoald, as a user watches a swarm: swarm events
(services, nodes, networks) on managers, container events of each node's
own task containers, filters, --since/--until replay; with the stock
docker CLI."""

import json
import os
import subprocess
import time

from lib import LAB, ServiceLab, dockerode, run, timeout, wait_until


# dockerode's getEvents, as a Node.js program drives the Engine API: prints
# READY once the stream is open, then what the daemon sends, until a
# service's remove event or N seconds.
DOCKERODE_EVENTS = r"""
const Docker = require('dockerode');
const d = new Docker({socketPath: process.argv[1]});
d.getEvents({filters: {type: ['service']}}, (err, stream) => {
  if (err) { console.error('ERR ' + err.message); process.exit(2); }
  console.log('READY');
  const end = () => { stream.destroy(); process.exit(0); };
  stream.on('data', (b) => {
    process.stdout.write(b.toString());
    if (b.toString().includes('"Action":"remove"')) end();
  });
  setTimeout(end, parseInt(process.argv[2]) * 1000);
});
"""


HOSTS = {"swarma": "192.168.33.10", "swarmb": "192.168.33.11"}


def replay(lab, host, since, *flags):
    """`docker events --since T --until now` (ends by itself), parsed."""
    until = "%.9f" % time.time()
    _, out, _ = lab.docker(host, "events", "--since", "%.9f" % since, "--until", until,
                           "--format", "{{json .}}", *flags, timeout=30)
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def kinds(evs):
    return [(e["Type"], e["Action"]) for e in evs]


@timeout(300)
def test_swarm_and_container_events_with_filters_and_replay():
    with ServiceLab(HOSTS) as lab:
        lab.cluster(("swarmb",))
        t0 = time.time()
        # A live stream, as a user leaves `docker events` running.
        live = subprocess.Popen([LAB, "--dir", lab.dir, "exec", "swarma", "docker", "-H",
                                 "unix://" + lab.sock("swarma"), "events", "--format",
                                 "{{json .}}", "--filter", "type=service"],
                                stdout=subprocess.PIPE, text=True)
        try:
            time.sleep(1)
            lab.service("swarma", "create", "-d", "--name", "web", "--replicas", "2", "nginx")
            wait_until(lambda: lab.service_ls()[0]["REPLICAS"] == "2/2", 60, what="2/2")
            lab.service("swarma", "scale", "-d", "web=3")
            wait_until(lambda: lab.service_ls()[0]["REPLICAS"] == "3/3", 60, what="3/3")
            lab.docker("swarma", "node", "update", "--availability", "pause", "swarmb")
            lab.service("swarma", "rm", "web")
            wait_until(lambda: not lab.ps("swarma", "-a") and not lab.ps("swarmb", "-a"), 60,
                       what="task containers gone")
            time.sleep(1)
        finally:
            live.terminate()
            out, _ = live.communicate(timeout=10)
        evs = [json.loads(l) for l in out.splitlines() if l.strip()]
        assert evs and {e["Type"] for e in evs} == {"service"}, evs
        assert kinds(evs)[0] == ("service", "create"), kinds(evs)
        assert evs[0]["Actor"]["Attributes"]["name"] == "web" and evs[0]["scope"] == "swarm", evs[0]
        scaled = [e for e in evs if e["Actor"]["Attributes"].get("replicas.new") == "3"]
        assert scaled and scaled[0]["Actor"]["Attributes"]["replicas.old"] == "2", evs
        assert kinds(evs)[-1] == ("service", "remove"), kinds(evs)

        # Replay: the manager saw the node update; containers are local.
        mgr = replay(lab, "swarma", t0)
        node = [e for e in mgr if e["Type"] == "node" and
                e["Actor"]["Attributes"].get("availability.new") == "pause"]
        assert node and node[0]["Actor"]["Attributes"]["availability.old"] == "active", kinds(mgr)
        for host in HOSTS:
            evs = replay(lab, host, t0, "--filter", "type=container")
            acts = [e["Action"] for e in evs]
            assert {"create", "start", "die", "stop", "destroy"} <= set(acts), (host, acts)
            started = [e for e in evs if e["Action"] == "start"]
            a = started[0]["Actor"]["Attributes"]
            assert a["com.docker.swarm.service.name"] == "web" and a["image"].startswith("nginx"), a
            assert a["name"].startswith("web.") and started[0]["id"] == started[0]["Actor"]["ID"], a
            # Containers are this node's own: their IDs are in its events only.
        # A worker has no swarm events (dockerd: managers only).
        assert not [e for e in replay(lab, "swarmb", t0) if e["scope"] == "swarm"]
        # Filters: event, and a name prefix for the kind.
        evs = replay(lab, "swarma", t0, "--filter", "event=create")
        assert evs and {e["Action"] for e in evs} == {"create"}, kinds(evs)
        evs = replay(lab, "swarma", t0, "--filter", "service=we")
        assert evs and {e["Type"] for e in evs} == {"service"}, kinds(evs)
        rc, _, err = lab.docker("swarma", "events", "--filter", "bogus=1", "--until", "1",
                                check=False)
        assert rc != 0 and "invalid filter 'bogus'" in err, err


@timeout(240)
def test_events_through_dockerode():
    mods = dockerode()
    with ServiceLab({"swarma": HOSTS["swarma"]}) as lab:
        lab.init("swarma")
        env = dict(os.environ, NODE_PATH=mods)
        p = subprocess.Popen(["node", "-e", DOCKERODE_EVENTS, lab.sock("swarma"), "25"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            assert p.stdout.readline().strip() == "READY", p.stderr.read()
            lab.service("swarma", "create", "-d", "--name", "dn", "busybox", "sleep", "600")
            lab.service("swarma", "scale", "-d", "dn=2")
            lab.service("swarma", "rm", "dn")
            out, err = p.communicate(timeout=40)
        finally:
            if p.poll() is None:
                p.kill()
        evs = [json.loads(l) for l in out.splitlines() if l.strip()]
        acts = [(e["Action"], e["Actor"]["Attributes"].get("replicas.new")) for e in evs]
        assert acts[0] == ("create", None) and ("update", "2") in acts and acts[-1][0] == "remove", (acts, err)
        assert all(e["Type"] == "service" and e["Actor"]["Attributes"]["name"] == "dn" for e in evs), evs


@timeout(180)
def test_volume_events():
    """dockerd's volume events: create and destroy (docker volume create/rm,
    docker run -v, a task's mount), mount and unmount with their attributes."""
    with ServiceLab({"swarma": HOSTS["swarma"]}) as lab:
        lab.init("swarma")
        docker = lambda *a: lab.docker("swarma", *a)
        t0 = time.time()
        docker("volume", "create", "v1")
        docker("volume", "create", "v1")  # exists: no second create
        _, cid, _ = docker("run", "-d", "-v", "v2:/x:ro", "busybox", "sleep", "300")
        cid = cid.strip()
        lab.service("swarma", "create", "-d", "--name", "withvol", "--mount",
                    "type=volume,source=v3,target=/data", "busybox", "sleep", "300")
        wait_until(lambda: [e for e in replay(lab, "swarma", t0, "--filter", "type=volume")
                            if e["Action"] == "mount" and e["Actor"]["ID"] == "v3"] or None,
                   60, interval=0.5, what="the task's mount event")
        docker("rm", "-f", cid)
        docker("volume", "rm", "v1", "v2")
        evs = replay(lab, "swarma", t0, "--filter", "type=volume")
        assert {e["Type"] for e in evs} == {"volume"}, kinds(evs)
        seen = [(e["Action"], e["Actor"]["ID"]) for e in evs]
        for want in [("create", "v1"), ("create", "v2"), ("mount", "v2"), ("unmount", "v2"),
                     ("destroy", "v1"), ("destroy", "v2"), ("create", "v3"), ("mount", "v3")]:
            assert want in seen, (want, seen)
        assert seen.count(("create", "v1")) == 1, seen
        assert seen.index(("create", "v2")) < seen.index(("mount", "v2")) < \
            seen.index(("unmount", "v2")) < seen.index(("destroy", "v2")), seen
        m = [e for e in evs if e["Action"] == "mount" and e["Actor"]["ID"] == "v2"][0]
        assert m["Actor"]["Attributes"] == {
            "driver": "local", "container": cid, "destination": "/x",
            "read/write": "false", "propagation": ""}, m
        assert m["scope"] == "local"
        u = [e for e in evs if e["Action"] == "unmount"][0]
        assert u["Actor"]["Attributes"] == {"driver": "local", "container": cid}, u
        d = [e for e in evs if e["Action"] == "destroy"][0]
        assert d["Actor"]["Attributes"] == {"driver": "local"}, d
