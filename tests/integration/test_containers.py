"""Issue 12, part 1: the node's container commands on a task's container,
with the stock docker CLI against the node's shoald: top, stats, diff,
export, port, rename, pause/unpause, kill, stop, restart, wait, rm. As on
Docker Swarm, stopping, killing or removing a task's container ends the
task (Complete or Failed, as its exit says) and the orchestrator replaces
it. Expected texts are the docker CLI 28.x's and dockerd's."""

import json
import os
import re
import tarfile
import threading
import time

from lib import SEED, ServiceLab, UnixHTTPConnection, timeout, wait_until

# Writes a file, deletes one, and exits 0 on SIGTERM (a clean stop).
SCRIPT = ('mkdir -p /data && echo hi > /data/new && rm /etc/group && '
          'trap "exit 0" TERM; while :; do sleep 1; done')


def one_node():
    return ServiceLab({"swarma": SEED["swarma"]})


def task_rows(lab, svc):
    return lab.service_ps(svc, "swarma", "--no-trunc")


def running_container(lab, svc, not_in=()):
    """The name of svc's one running task container on swarma, not one of
    not_in (a replacement)."""
    def find():
        rows = [r for r in lab.ps("swarma") if r["NAMES"].startswith(svc + ".")
                and r["NAMES"] not in not_in and r["STATUS"].startswith("Up ")]
        return rows[0]["NAMES"] if len(rows) == 1 else None
    return wait_until(find, 60, interval=0.5, what="a running container of %s" % svc)


def ended_task(lab, svc, task_id):
    """service ps row of task_id once it has ended."""
    def find():
        for r in task_rows(lab, svc):
            if r["ID"] == task_id and not r["CURRENT STATE"].startswith("Running "):
                return r
        return None
    return wait_until(find, 30, interval=0.5, what="task %s ended" % task_id)


def task_id_of(name):
    return name.rsplit(".", 1)[1]


def task_of(lab, ref):
    return lab.docker("swarma", "inspect", "--format",
                      '{{index .Config.Labels "com.docker.swarm.task.id"}}', ref)[1].strip()


def cid_of(lab, name):
    return lab.docker("swarma", "inspect", "--format", "{{.Id}}", name)[1].strip()


@timeout(300)
def test_container_commands_on_a_task_container():
    with one_node() as lab:
        lab.init("swarma")
        lab.service("swarma", "create", "-d", "--name", "job", "--limit-memory", "64M",
                    "--stop-grace-period", "5s", "busybox", "sh", "-c", SCRIPT)
        name = running_container(lab, "job")
        cid = cid_of(lab, name)
        docker = lambda *a, check=True: lab.docker("swarma", *a, check=check)

        # top: ps -ef of the container's processes; -o as ps takes it
        out = docker("top", name)[1]
        lines = out.splitlines()
        assert re.split(r"\s+", lines[0].strip())[:3] == ["UID", "PID", "PPID"], out
        assert any("sh -c mkdir -p /data" in l for l in lines[1:]), out
        out = docker("top", name, "-o", "pid,comm")[1].splitlines()
        assert re.split(r"\s+", out[0].strip()) == ["PID", "COMMAND"], out
        assert any(l.split()[-1] == "sh" for l in out[1:]), out
        rc, _, err = docker("top", name, "-o", "pid,comm", "x=PID", check=False)
        assert rc == 1 and 'specifying "x=PID" is not allowed' in err, (rc, err)

        # stats: one row with the limit, processes and I/O from the cgroup
        out = docker("stats", "--no-stream", "--format",
                     "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}|{{.NetIO}}|{{.BlockIO}}",
                     name)[1].strip()
        n, cpu, mem, pids, net, blk = out.split("|")
        assert n == name, out
        assert re.fullmatch(r"\d+\.\d\d%", cpu), out
        used, limit = mem.split(" / ")
        assert limit == "64MiB" and re.fullmatch(r"[\d.]+(B|KiB|MiB)", used) and used != "0B", out
        assert 1 <= int(pids) <= 4, out
        assert re.fullmatch(r"[\d.]+k?B / [\d.]+k?B", net), out
        assert re.fullmatch(r"[\d.]+[kMG]?B / [\d.]+[kMG]?B", blk), out
        # the stream: two frames a second apart, CPU counted between them
        st, body = lab.api("swarma", "GET", "/v1.47/containers/%s/stats?stream=false" % name)
        assert st == 200 and body["id"] == cid and body["precpu_stats"]["cpu_usage"]["total_usage"] > 0, body
        assert body["memory_stats"]["limit"] == 64 * 1024 * 1024, body["memory_stats"]

        # diff and export: the overlay's changes, the rootfs as a tar
        out = docker("diff", name)[1].splitlines()
        for want in ("A /data", "A /data/new", "C /etc", "D /etc/group"):
            assert want in out, out
        assert not [l for l in out if l.endswith(("/etc/hosts", "/etc/resolv.conf"))], out
        path = os.path.join(lab.dir, "export.tar")
        docker("export", "-o", path, name)
        with tarfile.open(path) as t:
            names = t.getnames()
            assert "data/new" in names and "bin/busybox" in names, names[:20]
            assert t.extractfile("data/new").read() == b"hi\n"
            assert "etc/group" not in names and not [x for x in names if x.startswith("./")], names[:20]
        rc, _, err = docker("export", "-o", path, "nosuch", check=False)
        assert rc == 1 and "No such container: nosuch" in err, err
        # logs of an unknown container: the 404 comes before any 200
        st, body = lab.api("swarma", "GET", "/v1.47/containers/nosuch/logs?stdout=1")
        assert st == 404 and body["message"] == "No such container: nosuch", (st, body)
        rc, _, err = docker("logs", "nosuch", check=False)
        assert rc == 1 and "No such container: nosuch" in err, err

        # port: nothing published on the container itself
        rc, out, _ = docker("port", name)
        assert rc == 0 and out.strip() == "", out

        # rename, and Docker's refusals
        since = str(int(time.time()) - 1)
        docker("rename", name, "renamed")
        assert [r for r in lab.ps("swarma") if r["NAMES"] == "renamed"], lab.ps("swarma")
        rc, _, err = docker("rename", "renamed", "bad name!", check=False)
        assert rc == 1 and "Invalid container name (bad name!), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed" in err, err
        rc, _, err = docker("rename", "renamed", "renamed", check=False)
        assert rc == 1 and "Renaming a container with the same name as its current name" in err, err
        name = "renamed"

        # pause / unpause
        assert docker("pause", name)[1].strip() == name
        row = [r for r in lab.ps("swarma") if r["NAMES"] == name][0]
        assert row["STATUS"].endswith("(Paused)"), row
        assert docker("inspect", "--format", "{{.State.Status}} {{.State.Paused}}", name)[1].strip() == "paused true"
        rc, _, err = docker("pause", name, check=False)
        assert rc == 1 and "container %s is already paused" % cid in err, err
        assert docker("unpause", name)[1].strip() == name
        rc, _, err = docker("unpause", name, check=False)
        assert rc == 1 and "Container %s is not paused" % cid in err, err
        assert docker("inspect", "--format", "{{.State.Status}}", name)[1].strip() == "running"

        # refusals that leave it running
        rc, _, err = docker("kill", "-s", "NOPE", name, check=False)
        assert rc == 1 and "Invalid signal: NOPE" in err, err
        rc, _, err = docker("rm", name, check=False)
        assert rc == 1 and ('cannot remove container "%s": container is running: stop the container '
                            'before removing or force remove' % name) in err, err
        rc, _, err = docker("stop", "nosuch", check=False)
        assert rc == 1 and "No such container: nosuch" in err, err

        # stop: the trap exits 0, so the task is Complete; then replaced.
        # Paused, it is thawed first (a frozen process takes no signal).
        docker("pause", name)
        rc, _, err = docker("rm", name, check=False)
        assert rc == 1 and ('cannot remove container "%s": container is paused and must be '
                            'unpaused first' % name) in err, err
        out = docker("events", "--since", since, "--until", str(int(time.time()) + 1),
                     "--filter", "container=" + cid, "--format", "{{.Action}}")[1].split()
        for a in ("rename", "pause", "unpause"):
            assert a in out, out
        # shoald restarts while it is paused: adopted as paused, renamed
        lab.restart("swarma")
        wait_until(lambda: docker("inspect", "--format", "{{.State.Status}}", name,
                                  check=False)[1].strip() == "paused", 30, what="adopted paused")
        since = str(int(time.time()) - 1)
        t0 = time.time()
        assert docker("stop", "-t", "5", name)[1].strip() == name
        assert time.time() - t0 < 5, "the trap exits at once"
        assert docker("wait", name)[1].strip() == "0"
        assert docker("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name)[1].strip() == "exited 0"
        row = ended_task(lab, "job", task_of(lab, cid))
        assert row["CURRENT STATE"].startswith("Complete "), row
        out = docker("events", "--since", since, "--until", str(int(time.time()) + 1),
                     "--filter", "container=" + cid, "--format",
                     "{{.Action}} {{.Actor.Attributes.name}}")[1].splitlines()
        acts = [l.split()[0] for l in out]
        for a in ("kill", "die", "stop"):
            assert a in acts, out
        assert acts.index("kill") < acts.index("die") < acts.index("stop"), out
        assert "die renamed" in out, out
        rc, _, _ = docker("stop", name)  # stopped already: 304, the CLI is content
        assert rc == 0
        old = {name}

        # kill: SIGKILL, the task Failed with 137, replaced; renamed first,
        # its events carry the new name
        name = running_container(lab, "job", old)
        since = str(int(time.time()) - 1)
        docker("rename", name, "victim")
        assert docker("kill", "victim")[1].strip() == "victim"
        assert docker("wait", "victim")[1].strip() == "137"
        out = docker("events", "--since", since, "--until", str(int(time.time()) + 1),
                     "--filter", "event=die", "--format", "{{.Actor.Attributes.name}}")[1].split()
        assert out == ["victim"], out
        docker("rename", "victim", name)
        row = ended_task(lab, "job", task_id_of(name))
        assert row["CURRENT STATE"].startswith("Failed ") and row["ERROR"].strip('"') == "task: non-zero exit (137)", row
        rc, _, err = docker("kill", name, check=False)
        assert rc == 1 and "is not running" in err, err
        old.add(name)

        # rm -f of the running container: gone, its task Failed, replaced
        name = running_container(lab, "job", old)
        cid = cid_of(lab, name)
        rc, out, err = docker("rm", "-f", name)
        assert rc == 0 and out.strip() == name, (out, err)
        assert name not in [r["NAMES"] for r in lab.ps("swarma", "-a")]
        row = ended_task(lab, "job", task_id_of(name))
        assert row["CURRENT STATE"].startswith("Failed ") and "137" in row["ERROR"], row
        rc, _, err = docker("inspect", cid, check=False)
        assert rc == 1 and "No such object: %s" % cid in err, err
        old.add(name)

        # restart: the task ends (Complete: the trap) and is replaced
        name = running_container(lab, "job", old)
        assert docker("restart", "-t", "5", name)[1].strip() == name
        row = ended_task(lab, "job", task_id_of(name))
        assert row["CURRENT STATE"].startswith("Complete "), row
        old.add(name)
        new = running_container(lab, "job", old)
        assert task_id_of(new) != task_id_of(name)

        # an exited container goes without -f, and wait on it returns at once
        stopped = [r["NAMES"] for r in lab.ps("swarma", "-a") if r["STATUS"].startswith("Exited (137)")]
        assert stopped, lab.ps("swarma", "-a")
        assert docker("wait", stopped[0])[1].strip() == "137"
        assert docker("rm", stopped[0])[1].strip() == stopped[0]
        assert stopped[0] not in [r["NAMES"] for r in lab.ps("swarma", "-a")]
        # the daemon is still there
        assert docker("version", "--format", "{{.Server.Version}}")[0] == 0


def api_stream_lines(lab, path, n, timeout=20):
    """The first n lines of a streamed GET, then the connection is closed."""
    c = UnixHTTPConnection(lab.sock("swarma"), timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        assert r.status == 200, (r.status, r.read())
        return [json.loads(r.readline()) for _ in range(n)]
    finally:
        c.close()


def api_in_thread(lab, method, path):
    """Starts an API call on a thread; returns a function that joins it
    and gives (status, body)."""
    out = {}

    def call():
        out["r"] = lab.api("swarma", method, path, timeout=60)
    t = threading.Thread(target=call)
    t.start()

    def join():
        t.join(60)
        assert not t.is_alive(), "%s %s did not return" % (method, path)
        return out["r"]
    return join


@timeout(240)
def test_stats_stream_wait_conditions_and_rm_volumes():
    with one_node() as lab:
        lab.init("swarma")
        lab.service("swarma", "create", "-d", "--name", "vol", "--mount", "type=volume,dst=/vol",
                    "busybox", "sh", "-c", "while :; do echo x > /vol/f; sleep 1; done")
        name = running_container(lab, "vol")
        docker = lambda *a, check=True: lab.docker("swarma", *a, check=check)
        vol = docker("inspect", "--format", "{{range .Mounts}}{{.Name}}{{end}}", name)[1].strip()
        assert vol and vol in docker("volume", "ls", "-q")[1].split(), vol

        # the stream: a frame a second, each with the previous one's CPU
        a, b = api_stream_lines(lab, "/v1.47/containers/%s/stats" % name, 2)
        assert b["precpu_stats"]["cpu_usage"]["total_usage"] == a["cpu_stats"]["cpu_usage"]["total_usage"]
        assert b["preread"] == a["read"] and b["read"] > a["read"], (a["read"], b["read"])
        assert b["pids_stats"]["current"] >= 1 and b["cpu_stats"]["online_cpus"] >= 1, b
        st, body = lab.api("swarma", "GET", "/v1.47/containers/%s/stats?stream=true&one-shot=true" % name)
        assert st == 400 and body["message"] == "cannot have stream=true and one-shot=true", (st, body)
        st, body = lab.api("swarma", "GET", "/v1.47/containers/%s/stats?stream=false&one-shot=true" % name)
        assert st == 200 and body["precpu_stats"]["cpu_usage"]["total_usage"] == 0, body
        assert body["memory_stats"]["usage"] > 0, body

        # wait: bad condition, next-exit, removed
        st, body = lab.api("swarma", "POST", "/v1.47/containers/%s/wait?condition=later" % name)
        assert st == 400 and body["message"] == 'invalid condition: "later"', (st, body)
        st, body = lab.api("swarma", "POST", "/v1.47/containers/nosuch/wait")
        assert st == 404 and body["message"] == "No such container: nosuch", (st, body)
        next_exit = api_in_thread(lab, "POST", "/v1.47/containers/%s/wait?condition=next-exit" % name)
        removed = api_in_thread(lab, "POST", "/v1.47/containers/%s/wait?condition=removed" % name)
        time.sleep(1)
        docker("kill", "-s", "KILL", name)
        assert next_exit() == (200, {"StatusCode": 137})
        time.sleep(1)
        st, body = lab.api("swarma", "GET", "/v1.47/containers/%s/stats?stream=false" % name)
        assert st == 200 and body["id"] and body["cpu_stats"]["cpu_usage"]["total_usage"] == 0, body

        # rm -v of the exited container: its anonymous volume goes too
        assert docker("rm", "-v", name)[1].strip() == name
        assert removed() == (200, {"StatusCode": 137})
        assert vol not in docker("volume", "ls", "-q")[1].split()
        # the replacement has a volume of its own, which stays
        new = running_container(lab, "vol", {name})
        vol2 = docker("inspect", "--format", "{{range .Mounts}}{{.Name}}{{end}}", new)[1].strip()
        assert vol2 and vol2 != vol and vol2 in docker("volume", "ls", "-q")[1].split()
