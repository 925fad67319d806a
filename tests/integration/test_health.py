"""Healthchecks as a Swarm user sees them with the stock docker CLI: a
task with a healthcheck is Starting until a probe passes, then Running and
`docker ps` says (healthy); `docker inspect` has State.Health with the
probes' log; a task whose check fails is shut down and replaced, its
error swarmkit's; an image's HEALTHCHECK is honoured and --no-healthcheck
turns it off."""

import hashlib
import json
import os
import re
import shutil
import tempfile

from lib import IMAGES_DIR, REGISTRY_ADDR, REGISTRY_HOST, SEED, ServiceLab, timeout, wait_until

S = 1000000000


def containers(lab, prefix):
    """docker ps rows (NAMES, STATUS, ID) of the service's tasks on swarma."""
    out = lab.docker("swarma", "ps", "-a", "--no-trunc", "--format",
                     "{{.ID}}\t{{.Names}}\t{{.Status}}")[1]
    rows = [l.split("\t") for l in out.splitlines() if l.strip()]
    return [{"ID": r[0], "NAMES": r[1], "STATUS": r[2]} for r in rows
            if r[1].startswith(prefix + ".")]


def inspect(lab, cid):
    return json.loads(lab.docker("swarma", "inspect", cid)[1])[0]


def tasks(lab, svc):
    return lab.service_ps(svc, "swarma", "--no-trunc")


def _put_blob(layout, data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return "sha256:" + d, len(data)


def _blob(layout, digest):
    with open(os.path.join(layout, "blobs", "sha256", digest.split(":", 1)[1]), "rb") as f:
        return json.loads(f.read())


def push_image_with_healthcheck(lab, name, healthcheck):
    """The test busybox layout with a Docker HEALTHCHECK in its config (what
    `docker build` writes for one), pushed to the lab registry as
    library/NAME:latest."""
    tmp = tempfile.mkdtemp(dir=lab.dir)
    layout = os.path.join(tmp, "layout")
    shutil.copytree(os.path.join(IMAGES_DIR, "busybox"), layout)
    index = json.load(open(os.path.join(layout, "index.json")))
    mdesc = index["manifests"][0]
    manifest = _blob(layout, mdesc["digest"])
    config = _blob(layout, manifest["config"]["digest"])
    config.setdefault("config", {})["Healthcheck"] = healthcheck
    digest, size = _put_blob(layout, json.dumps(config).encode())
    manifest["config"]["digest"], manifest["config"]["size"] = digest, size
    mdesc["digest"], mdesc["size"] = _put_blob(layout, json.dumps(manifest).encode())
    json.dump(index, open(os.path.join(layout, "index.json"), "w"))
    lab.exec(REGISTRY_HOST, "skopeo", "--insecure-policy", "copy", "-q",
             "--dest-tls-verify=false", "--format", "v2s2", "oci:%s:latest" % layout,
             "docker://%s/library/%s:latest" % (REGISTRY_ADDR, name), timeout=120)


@timeout(300)
def test_healthcheck_gates_running_and_replaces_unhealthy_tasks():
    with ServiceLab({"swarma": SEED["swarma"]}) as lab:
        lab.init("swarma")
        # Passing check: Running, (healthy), State.Health with its log.
        lab.service("swarma", "create", "-d", "--name", "ok", "--health-cmd",
                    "echo probe-ran; true", "--health-interval", "1s", "--health-retries", "2",
                    "busybox", "sleep", "3600")
        # A check that cannot pass for a minute: the task stays Starting
        # and docker ps says so.
        lab.service("swarma", "create", "-d", "--name", "slow", "--health-cmd", "false",
                    "--health-interval", "30s", "--health-start-period", "5m",
                    "busybox", "sleep", "3600")
        # A failing check: shut down, failed with swarmkit's error, replaced.
        lab.service("swarma", "create", "-d", "--name", "bad", "--health-cmd", "exit 1",
                    "--health-interval", "1s", "--health-retries", "2",
                    "--stop-grace-period", "1s", "busybox", "sleep", "3600")

        def ok_healthy():
            rows = containers(lab, "ok")
            t = tasks(lab, "ok")
            return rows if rows and "(healthy)" in rows[0]["STATUS"] and \
                t[0]["CURRENT STATE"].startswith("Running") else None
        rows = wait_until(ok_healthy, 60, interval=0.5, what="ok healthy and Running")
        assert re.fullmatch(r"Up .* \(healthy\)", rows[0]["STATUS"]), rows
        info = inspect(lab, rows[0]["ID"])
        health = info["State"]["Health"]
        assert health["Status"] == "healthy" and health["FailingStreak"] == 0, health
        assert 1 <= len(health["Log"]) <= 5, health
        last = health["Log"][-1]
        assert last["ExitCode"] == 0 and last["Output"] == "probe-ran\n", last
        assert last["Start"] <= last["End"], last
        assert info["Config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "echo probe-ran; true"], \
            info["Config"]["Healthcheck"]
        # Only the last 5 probes are kept.
        wait_until(lambda: len(inspect(lab, rows[0]["ID"])["State"]["Health"]["Log"]) == 5, 30,
                   interval=1, what="5 log entries")

        slow = containers(lab, "slow")
        assert slow and re.fullmatch(r"Up .* \(health: starting\)", slow[0]["STATUS"]), slow
        t = tasks(lab, "slow")
        assert len(t) == 1 and t[0]["CURRENT STATE"].startswith("Starting"), t

        def bad_replaced():
            t = tasks(lab, "bad")
            failed = [r for r in t if r["CURRENT STATE"].startswith("Failed")]
            return t if failed and len(t) >= 2 else None
        t = wait_until(bad_replaced, 90, interval=1, what="bad's task failed and replaced")
        failed = [r for r in t if r["CURRENT STATE"].startswith("Failed")][0]
        # (--no-trunc quotes it)
        assert re.fullmatch(r'"?task: non-zero exit \(\d+\): dockerexec: unhealthy container"?',
                            failed["ERROR"]), failed
        assert failed["DESIRED STATE"] == "Shutdown", failed
        assert t[0]["DESIRED STATE"] in ("Running", "Ready"), t  # restart delay
        gone = [c for c in containers(lab, "bad") if c["STATUS"].startswith("Exited")]
        if gone:
            assert inspect(lab, gone[0]["ID"])["State"]["Health"]["Status"] == "unhealthy"

        # A restart of shoald: the container is adopted, its health kept
        # and probing goes on; the task stays the same, Running.
        before = inspect(lab, rows[0]["ID"])["State"]["Health"]["Log"][-1]["End"]
        task = tasks(lab, "ok")[0]["ID"]
        lab.restart("swarma")

        def probed_again():
            try:
                h = inspect(lab, rows[0]["ID"])["State"]["Health"]
            except Exception:
                return None
            return h if h["Log"][-1]["Start"] > before else None
        h = wait_until(probed_again, 60, interval=1, what="ok probed after the restart")
        assert h["Status"] == "healthy" and len(h["Log"]) == 5, h
        t = tasks(lab, "ok")
        assert t[0]["ID"] == task and t[0]["CURRENT STATE"].startswith("Running"), t
        assert "(healthy)" in containers(lab, "ok")[0]["STATUS"]
        slow = tasks(lab, "slow")
        assert slow[0]["CURRENT STATE"].startswith("Starting"), slow


@timeout(300)
def test_image_healthcheck_and_no_healthcheck():
    with ServiceLab({"swarma": SEED["swarma"]}) as lab:
        lab.init("swarma")
        hc = {"Test": ["CMD-SHELL", "test -f /etc/hostname && echo image-check"],
              "Interval": 1 * S, "Retries": 2}
        push_image_with_healthcheck(lab, "bbhc", hc)
        lab.service("swarma", "create", "-d", "--name", "img", "bbhc", "sleep", "3600")
        lab.service("swarma", "create", "-d", "--name", "off", "--no-healthcheck", "bbhc",
                    "sleep", "3600")
        # The service's own settings win over the image's, field by field.
        lab.service("swarma", "create", "-d", "--name", "mix", "--health-retries", "7",
                    "bbhc", "sleep", "3600")

        def healthy(svc):
            def f():
                rows = containers(lab, svc)
                return rows if rows and "(healthy)" in rows[0]["STATUS"] else None
            return f
        rows = wait_until(healthy("img"), 60, interval=0.5, what="img healthy")
        info = inspect(lab, rows[0]["ID"])
        assert info["Config"]["Healthcheck"]["Test"] == hc["Test"], info["Config"]
        assert info["State"]["Health"]["Log"][-1]["Output"] == "image-check\n", info["State"]
        rows = wait_until(healthy("mix"), 60, interval=0.5, what="mix healthy")
        mix = inspect(lab, rows[0]["ID"])["Config"]["Healthcheck"]
        assert mix["Retries"] == 7 and mix["Test"] == hc["Test"] and mix["Interval"] == S, mix

        def off_running():
            t = tasks(lab, "off")
            return t if t and t[0]["CURRENT STATE"].startswith("Running") else None
        wait_until(off_running, 60, interval=0.5, what="off Running")
        off = containers(lab, "off")
        assert off and re.fullmatch(r"Up [^()]*", off[0]["STATUS"]), off
        info = inspect(lab, off[0]["ID"])
        assert "Health" not in info["State"], info["State"]

        # Bad healthcheck values are refused with swarmkit's message.
        rc, _, err = lab.service("swarma", "create", "-d", "--name", "neg", "--health-retries",
                                 "-1", "--health-cmd", "true", "busybox", check=False)
        assert rc != 0 and "Retries in HealthConfig cannot be negative" in err, err


@timeout(240)
def test_rolling_update_waits_for_health():
    """A rolling update (parallelism 1) replaces the next task only once the
    new one is healthy: with a start period the slot stays Starting and the
    old task of the other slot keeps running meanwhile."""
    with ServiceLab({"swarma": SEED["swarma"]}) as lab:
        lab.init("swarma")
        lab.service("swarma", "create", "-d", "--name", "roll", "--replicas", "2",
                    "--health-cmd", "test -f /tmp/ok", "--health-interval", "1s",
                    "--health-retries", "30", "--update-parallelism", "1",
                    "--update-delay", "0s", "busybox", "sh", "-c",
                    "sleep 3; touch /tmp/ok; while :; do sleep 1; done")
        wait_until(lambda: lab.service_ls()[0]["REPLICAS"] == "2/2", 60, what="2/2 healthy")
        lab.service("swarma", "update", "-d", "--env-add", "V=2", "roll")
        # While the first new task waits for its first healthy probe (about
        # 3 s), one old task still runs and no second new task started.
        def one_new_starting():
            rows = [r for r in tasks(lab, "roll") if not r["NAME"].startswith("\\_")]
            starting = [r for r in rows if r["CURRENT STATE"].startswith("Starting")]
            return rows if starting else None
        rows = wait_until(one_new_starting, 30, interval=0.2, what="a new task Starting")
        env = [lab.api("swarma", "GET", "/tasks/" + r["ID"])[1]["Spec"]["ContainerSpec"].get("Env", [])
               for r in rows]
        assert sum("V=2" in e for e in env) == 1, (rows, env)
        # Then both move on, each after its health.
        wait_until(lambda: all("V=2" in json.dumps(lab.api("swarma", "GET", "/tasks/" + r["ID"])[1])
                               for r in tasks(lab, "roll") if not r["NAME"].startswith("\\_")
                               and r["CURRENT STATE"].startswith("Running")) and
                   lab.service_ls()[0]["REPLICAS"] == "2/2" and
                   len([r for r in tasks(lab, "roll") if r["NAME"].startswith("\\_")]) == 2,
                   90, what="both slots updated and healthy")
