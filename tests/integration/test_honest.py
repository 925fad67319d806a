"""Honest state: `docker info` counts what the node really has, volumes are
the node's real ones (the same for `docker volume create` and a task's
--mount), and a node without a container runtime says so instead of
swallowing tasks."""

import json
import os
import re

from lib import SEED, ServiceLab, timeout, wait_until

ONE = {"swarma": SEED["swarma"]}


def info(lab, host="swarma"):
    return json.loads(lab.docker(host, "info", "--format", "{{json .}}")[1])


def task_rows(lab, svc, host="swarma"):
    return [r for r in lab.service_ps(svc, host, "--no-trunc") if not r["NAME"].startswith("\\_")]


@timeout(90)
def test_info_counts_equal_ps_and_images():
    with ServiceLab(ONE) as lab:
        lab.init("swarma")
        lab.service("swarma", "create", "-d", "--name", "up", "--replicas", "2",
                    "busybox", "sleep", "600")
        wait_until(lambda: len(lab.ps("swarma")) == 2, 45, interval=0.5,
                   what="2 running containers")
        # One more container that has exited: a task killed from outside
        # (its replacement runs; shoal removes the old container only once
        # the leader no longer assigns its task).
        pid = lab.container_pid("swarma", lab.ps("swarma")[0]["NAMES"])
        lab.exec("swarma", "kill", "-9", str(pid))

        def agree():
            rows = lab.ps("swarma", "-a")
            up = [r for r in rows if r["STATUS"].startswith("Up ")]
            i = info(lab)
            got = (i["Containers"], i["ContainersRunning"], i["ContainersPaused"],
                   i["ContainersStopped"])
            want = (len(rows), len(up), 0, len(rows) - len(up))
            return (i, want) if got == want and lab.ps("swarma", "-a") == rows else None
        i, (total, running, _, stopped) = wait_until(agree, 20, interval=0.5,
                                                     what="docker info counts equal docker ps -a")
        assert total >= 2 and running >= 1, (total, running, stopped)
        images = lab.docker("swarma", "images", "-q")[1].split()
        assert i["Images"] == len(images) >= 1, (i["Images"], images)
        # Only what exists: the local volume driver, the networks shoal has,
        # the log format conmon writes (LoggingDriver says the same).
        assert i["Plugins"]["Volume"] == ["local"], i["Plugins"]
        assert sorted(i["Plugins"]["Network"]) == ["bridge", "host", "null", "overlay"], i["Plugins"]
        assert i["Plugins"]["Log"] == [i["LoggingDriver"]], i["Plugins"]
        out = lab.docker("swarma", "info")[1]
        assert re.search(r"Containers: \d+\n\s+Running: \d+\n\s+Paused: 0\n\s+Stopped: \d+", out), out


@timeout(90)
def test_volumes_created_listed_used_and_removed():
    with ServiceLab(ONE) as lab:
        lab.init("swarma")
        _, out, _ = lab.docker("swarma", "volume", "create", "--label", "tier=db", "data")
        assert out.strip() == "data", out
        v = json.loads(lab.docker("swarma", "volume", "inspect", "data")[1])[0]
        root = os.path.join(lab.dir, "swarma", "data")
        assert v["Name"] == "data" and v["Driver"] == "local" and v["Scope"] == "local", v
        assert v["Mountpoint"] == os.path.join(root, "volumes", "data", "_data"), v
        assert v["Labels"] == {"tier": "db"}, v
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", v["CreatedAt"]), v
        # A task's named volume is the same volume.
        lab.service("swarma", "create", "-d", "--name", "vol",
                    "--mount", "type=volume,source=data,target=/d",
                    "busybox", "sh", "-c", "echo hi > /d/f && sleep 600")
        wait_until(lambda: os.path.exists(os.path.join(v["Mountpoint"], "f")), 45,
                   what="the task's file in the volume")
        with open(os.path.join(v["Mountpoint"], "f")) as f:
            assert f.read() == "hi\n"
        cid = lab.docker("swarma", "ps", "-q", "--no-trunc")[1].split()
        assert len(cid) == 1, cid
        # In use: dockerd's 409 and message.
        st, body = lab.api("swarma", "DELETE", "/volumes/data")
        assert (st, body) == (409, {"message": "remove data: volume is in use - [%s]" % cid[0]}), (st, body)
        r = lab.docker("swarma", "volume", "rm", "data", check=False)
        assert r[0] != 0 and "volume is in use" in r[2], r
        # An anonymous-style volume and an unused named one.
        lab.docker("swarma", "volume", "create", "spare")
        st, anon = lab.api("swarma", "POST", "/volumes/create", {})
        assert st == 201 and "com.docker.volume.anonymous" in anon["Labels"], (st, anon)
        names = lambda *f: sorted(lab.docker("swarma", "volume", "ls", "-q", *f)[1].split())
        assert names() == sorted(["data", "spare", anon["Name"]]), names()
        assert names("--filter", "label=tier=db") == ["data"]
        assert names("--filter", "dangling=false") == ["data"]
        assert names("--filter", "dangling=true") == sorted(["spare", anon["Name"]])
        assert names("--filter", "name=spa") == ["spare"]
        assert names("--filter", "driver=local") == names()
        # Prune: unused anonymous volumes only, unless --all.
        out = lab.docker("swarma", "volume", "prune", "-f")[1]
        assert anon["Name"] in out, out
        assert names() == ["data", "spare"], names()
        st, rep = lab.api("swarma", "POST", "/volumes/prune?filters=%7B%22all%22%3A%5B%22true%22%5D%7D")
        assert st == 200 and rep["VolumesDeleted"] == ["spare"], (st, rep)
        st, body = lab.api("swarma", "GET", "/volumes/nope")
        assert (st, body) == (404, {"message": "get nope: no such volume"}), (st, body)
        # Once the task's container is gone, the volume can go.
        lab.service("swarma", "rm", "vol")
        wait_until(lambda: not lab.docker("swarma", "ps", "-aq")[1].strip(), 30,
                   what="the task container removed")
        lab.docker("swarma", "volume", "rm", "data")
        assert names() == [] and not os.path.exists(v["Mountpoint"])


@timeout(120)
def test_node_without_runtime_says_so_and_gets_no_tasks():
    hosts = {"swarma": SEED["swarma"], "swarmb": SEED["swarmb"]}
    with ServiceLab(hosts, start=["swarma"]) as lab:
        # swarmb's crun is not executable in its own mount namespace (the
        # lab's hosts have private mounts): shoald finds no runtime there,
        # the same path as a host without crun.
        lab.exec("swarmb", "mount", "--bind", "/dev/null", "/usr/bin/crun")
        lab.start("swarmb")
        assert "no container runtime" in lab.logs("swarmb"), lab.logs("swarmb")
        lab.init("swarma")
        lab.join("swarmb", lab.token("swarma"))
        nb = lab.node_id("swarmb")

        def message():
            return lab.docker("swarma", "node", "inspect", "--format", "{{.Status.Message}}", nb)[1].strip()
        msg = wait_until(lambda: message() or None, 20, what="swarmb's status message")
        assert msg == "no container runtime: crun not found in PATH (install crun and conmon)", msg
        # The private marker stays out of the API.
        raw = lab.docker("swarma", "node", "inspect", nb)[1]
        assert "_RuntimeError" not in raw, raw
        # Replicas all go where containers can run.
        lab.service("swarma", "create", "-d", "--name", "spread", "--replicas", "2",
                    "busybox", "sleep", "600")
        wait_until(lambda: [r["NODE"] for r in task_rows(lab, "spread")
                            if r["CURRENT STATE"].startswith("Running ")] == ["swarma", "swarma"],
                   45, what="both replicas running on swarma")
        # Pinned to the node without a runtime: pending, with the reason.
        lab.service("swarma", "create", "-d", "--name", "pinned",
                    "--constraint", "node.hostname==swarmb", "busybox", "sleep", "600")

        def pending():
            rows = task_rows(lab, "pinned")
            return rows if rows and rows[0]["CURRENT STATE"].startswith("Pending ") and rows[0]["ERROR"] else None
        rows = wait_until(pending, 20, what="the pinned task pending with an error")
        assert "no suitable node" in rows[0]["ERROR"] and \
            "1 node not available for new tasks" in rows[0]["ERROR"], rows
        assert lab.docker("swarmb", "ps", "-aq")[1].strip() == ""
