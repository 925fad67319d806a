"""Sections 2.3 and 2.5 of the seed, and what surrounds them, as a user
checks them with the stock docker CLI on the seed's three hosts (swarma
manager, swarmb and moby workers): services run as real containers pulled
from a registry inside the lab (lib.ServiceLab). There is no routing mesh
yet, so a replica's page is fetched from inside its own network namespace,
never through a published port. Expected texts are the docker CLI 28.x's and
dockerd/swarmkit's."""

import json
import re
import subprocess
import time
import urllib.parse

from lib import SEED, ServiceLab, timeout, wait_until

WELCOME = "Welcome to nginx!"
TASK_ID = r"[0-9a-z]{25}"
WORKERS = ("swarmb", "moby")
HOSTS = ("swarma",) + WORKERS


# ---- helpers (all through the stock docker CLI unless said) ----

def seed_cluster(lab):
    """swarma manager, swarmb and moby workers, all Ready; {host: node ID}."""
    ids = lab.cluster(WORKERS)
    wait_until(lambda: sum(r["STATUS"] == "Ready" for r in lab.node_ls("swarma")) == 3, 30,
               what="3 Ready nodes")
    return ids


def pretty(out):
    """inspect --pretty lines with runs of blanks folded, for exact matching."""
    return [re.sub(r"\s+", " ", l.strip()) for l in out.splitlines() if l.strip()]


def current(rows):
    """The current (non-history) rows of service ps."""
    return [r for r in rows if not r["NAME"].startswith("\\_")]


def running(lab, svc):
    """service ps --no-trunc rows of svc that are desired and actually Running."""
    return [r for r in current(lab.service_ps(svc, "swarma", "--no-trunc"))
            if r["DESIRED STATE"] == "Running" and r["CURRENT STATE"].startswith("Running ")]


def wait_running(lab, svc, n, secs=60):
    def ok():
        rows = running(lab, svc)
        return rows if len(rows) == n else None
    return wait_until(ok, secs, interval=0.5, what="%d running tasks of %s" % (n, svc))


def ls_row(lab, name):
    rows = [r for r in lab.service_ls("swarma") if r["NAME"] == name]
    assert len(rows) == 1, "service ls has %d rows named %s: %r" % (len(rows), name, rows)
    return rows[0]


def task_containers(lab, host, svc, all_=False):
    """docker ps rows on host whose NAMES belong to service svc."""
    rows = lab.ps(host, "-a") if all_ else lab.ps(host)
    return [r for r in rows if r["NAMES"].startswith(svc + ".")]


def container_of(lab, task_row):
    """(host, container name) of a service ps --no-trunc row: the container
    must be listed by docker ps on the task's node as NAME.TASKID."""
    host = task_row["NODE"]
    name = "%s.%s" % (task_row["NAME"], task_row["ID"])
    names = [r["NAMES"] for r in lab.ps(host)]
    assert name in names, "docker ps on %s does not list %s (task %s); it lists %r" % (
        host, name, task_row["ID"], names)
    return host, name


def check_pages(lab, svc):
    """Every running replica of svc serves nginx's page inside its network
    namespace, entered from the node that runs it."""
    rows = running(lab, svc)
    assert rows, "no running tasks of " + svc
    for r in rows:
        host, name = container_of(lab, r)
        pid = lab.container_pid(host, name)
        page = lab.fetch_in_container(host, pid)
        assert WELCOME in page, "replica %s on %s (pid %d) answered %r" % (name, host, pid, page[:200])
    return rows


def task_objects(lab, svc):
    """GET /tasks?filters={"service":[svc]} on the manager (raw API)."""
    st, body = lab.api("swarma", "GET", "/tasks?filters=" + urllib.parse.quote(json.dumps({"service": [svc]})))
    assert st == 200, (st, body)
    return body


def ts(s):
    """An API timestamp (RFC 3339, up to nanoseconds) as comparable ints."""
    m = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?Z", s)
    assert m, "bad timestamp %r" % s
    return tuple(int(x) for x in m.groups()[:6]) + (int((m.group(7) or "0").ljust(9, "0")),)


def update_status(lab, svc):
    out = lab.service("swarma", "inspect", "--format", "{{json .UpdateStatus}}", svc)[1].strip()
    return json.loads(out) if out and out != "null" else None


# ---- the seed ----

@timeout(180)
def test_seed_2_3_and_2_5_my_web_create_scale_drain_rm():
    with ServiceLab() as lab:
        seed_cluster(lab)

        # 2.3: create, non-detached: the CLI's convergence display.
        _, out, err = lab.service("swarma", "create", "--name", "my-web", "--publish", "8080:80",
                                  "--replicas", "2", "nginx")
        sid = out.splitlines()[0]
        assert re.fullmatch(TASK_ID, sid), "create printed %r first" % out[:200]
        assert "overall progress: 2 out of 2 tasks" in out, out
        assert re.search(r"^verify: Service %s converged$" % sid, out, re.M), out
        # The CLI pinned nginx's digest through /distribution (the mirror).
        assert "could not be accessed on a registry" not in err, err

        r = ls_row(lab, "my-web")
        assert (r["ID"], r["MODE"], r["REPLICAS"], r["IMAGE"], r["PORTS"]) == \
            (sid[:12], "replicated", "2/2", "nginx:latest", "*:8080->80/tcp"), r

        rows = lab.service_ps(sid[:12])  # by ID, as the seed does
        assert sorted(x["NAME"] for x in rows) == ["my-web.1", "my-web.2"], rows
        for x in rows:
            assert (x["IMAGE"], x["DESIRED STATE"], x["ERROR"]) == ("nginx:latest", "Running", ""), x
            assert re.fullmatch(r"Running .* ago", x["CURRENT STATE"]), x
            assert x["NODE"] in HOSTS, x
        assert len({x["NODE"] for x in rows}) == 2, "2 replicas not spread over 2 nodes: %r" % rows

        # docker ps on each node: exactly the task containers it runs.
        tasks = running(lab, "my-web")
        for h in HOSTS:
            want = sorted("%s.%s" % (t["NAME"], t["ID"]) for t in tasks if t["NODE"] == h)
            got = task_containers(lab, h, "my-web")
            assert sorted(c["NAMES"] for c in got) == want, "docker ps on %s: %r, want %r" % (h, got, want)
            for c in got:
                assert c["IMAGE"] == "nginx:latest", c
                assert c["COMMAND"] == "\"nginx -g 'daemon of…\"", c
                assert c["STATUS"].startswith("Up "), c

        _, out, _ = lab.service("swarma", "inspect", "--pretty", "my-web")
        lines = pretty(out)
        for want in ("ID: " + sid, "Name: my-web", "Service Mode: Replicated", "Replicas: 2",
                     "Parallelism: 1", "On failure: pause", "PublishedPort = 8080",
                     "Protocol = tcp", "TargetPort = 80"):
            assert want in lines, "inspect --pretty lacks %r:\n%s" % (want, out)
        assert any(re.fullmatch(r"Image: nginx:latest(@sha256:[0-9a-f]{64})?", l) for l in lines), out
        assert "Ports:" in lines and "Placement:" in lines and "Resources:" in lines, out
        _, out, _ = lab.service("swarma", "inspect", "--format", "{{json .Spec.EndpointSpec.Ports}}",
                                "my-web")
        ports = json.loads(out)
        assert len(ports) == 1 and {k: ports[0].get(k) for k in ("Protocol", "TargetPort", "PublishedPort")} \
            == {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080}, ports

        check_pages(lab, "my-web")
        before = {t["NAME"]: t["ID"] for t in tasks}

        # Scale 2 -> 4, detached so this walk goes on whatever the progress
        # display does (test_scale_without_detach_converges checks that).
        _, out, _ = lab.service("swarma", "scale", "--detach", "my-web=4")
        assert out == "my-web scaled to 4\n", out
        wait_until(lambda: ls_row(lab, "my-web")["REPLICAS"] == "4/4", 60, what="my-web 4/4")
        lines = pretty(lab.service("swarma", "inspect", "--pretty", "my-web")[1])
        assert "Replicas: 4" in lines and "PublishedPort = 8080" in lines, lines
        assert ls_row(lab, "my-web")["REPLICAS"] == "4/4"
        tasks = wait_running(lab, "my-web", 4)
        assert sorted(t["NAME"] for t in tasks) == ["my-web.%d" % i for i in range(1, 5)], tasks
        for t in tasks:
            if t["NAME"] in before:
                assert before[t["NAME"]] == t["ID"], "scaling up replaced %s" % t["NAME"]
        per_node = {h: sum(t["NODE"] == h for t in tasks) for h in HOSTS}
        assert sorted(per_node.values()) == [1, 1, 2], "4 replicas not spread: %r" % per_node
        for h in HOSTS:
            want = sorted("%s.%s" % (t["NAME"], t["ID"]) for t in tasks if t["NODE"] == h)
            assert sorted(c["NAMES"] for c in task_containers(lab, h, "my-web")) == want, h
        check_pages(lab, "my-web")

        # Drain the manager: its tasks go Shutdown and are replaced elsewhere.
        on_a = {t["NAME"]: t["ID"] for t in tasks if t["NODE"] == "swarma"}
        _, out, _ = lab.docker("swarma", "node", "update", "--availability", "drain", "swarma")
        assert out == "swarma\n", out
        a = [r for r in lab.node_ls("swarma") if r["HOSTNAME"] == "swarma"][0]
        assert (a["STATUS"], a["AVAILABILITY"], a["MANAGER STATUS"]) == ("Ready", "Drain", "Leader"), a

        def drained():
            rows = lab.service_ps("my-web", "swarma", "--no-trunc")
            cur = [r for r in current(rows) if r["CURRENT STATE"].startswith("Running ")]
            if len(cur) != 4 or any(r["NODE"] == "swarma" for r in cur):
                return None
            for name, tid in on_a.items():
                hist = [r for r in rows if r["ID"] == tid]
                if not hist or hist[0]["NAME"] != "\\_ " + name:
                    return None
                h = hist[0]
                if (h["NODE"], h["DESIRED STATE"]) != ("swarma", "Shutdown") or \
                        not h["CURRENT STATE"].startswith("Shutdown "):
                    return None
                # The history row follows its slot's current row.
                i = rows.index(h)
                if not any(rows[j]["NAME"] == name for j in range(i)):
                    return None
            return rows
        wait_until(drained, 60, interval=0.5, what="swarma's tasks shut down and replaced")
        assert ls_row(lab, "my-web")["REPLICAS"] == "4/4"
        wait_until(lambda: not task_containers(lab, "swarma", "my-web"), 30,
                   what="no my-web container running on drained swarma")
        check_pages(lab, "my-web")

        # 2.5: undeploy.
        _, out, _ = lab.service("swarma", "rm", "my-web")
        assert out == "my-web\n", out
        assert lab.service_ls("swarma") == [], "service ls after rm"
        for h in HOSTS:
            wait_until(lambda: not task_containers(lab, h, "my-web", all_=True), 40,
                       what="my-web containers gone (docker ps -a) on " + h)


@timeout(90)
def test_task_container_in_docker_ps_inspect_logs():
    """One node: docker ps shows a task container as the seed does
    (PORTS 80/tcp: the image's exposed port), inspect and logs work."""
    with ServiceLab({"swarma": SEED["swarma"]}) as lab:
        lab.init("swarma")
        lab.service("swarma", "create", "-d", "--name", "my-web", "--publish", "8080:80", "nginx")
        t = wait_running(lab, "my-web", 1)[0]
        _, name = container_of(lab, t)
        assert re.fullmatch(r"my-web\.1\.%s" % TASK_ID, name), name
        pid = lab.container_pid("swarma", name)
        assert WELCOME in lab.fetch_in_container("swarma", pid)

        _, out, _ = lab.docker("swarma", "inspect", "--format",
                               "{{.Name}}|{{.State.Status}}|{{.State.Running}}|"
                               "{{index .Config.Labels \"com.docker.swarm.service.name\"}}|"
                               "{{index .Config.Labels \"com.docker.swarm.task.id\"}}", name)
        assert out.strip() == "/%s|running|true|my-web|%s" % (name, t["ID"]), out
        # nginx's access log goes to stdout: the fetch above is in docker logs.
        wait_until(lambda: '"GET / HTTP/1.1" 200' in lab.docker("swarma", "logs", name)[1], 10,
                   what="the GET in docker logs")

        c = lab.ps("swarma")
        assert len(c) == 1, c
        c = c[0]
        assert (c["IMAGE"], c["COMMAND"], c["NAMES"]) == ("nginx:latest", "\"nginx -g 'daemon of…\"", name), c
        assert re.fullmatch(r"[0-9a-f]{12}", c["CONTAINER ID"]), c
        assert c["CREATED"].endswith(" ago") and c["STATUS"].startswith("Up "), c
        # dockerd lists exposed, unpublished ports of the container: the seed shows 80/tcp.
        assert c["PORTS"] == "80/tcp", "docker ps PORTS of the task container: %r, want '80/tcp'" % c["PORTS"]

        # The task's pull unpacked nginx's layers in child processes: the
        # daemon never mapped libarchive nor the libstdc++ under it (which
        # could not be unmapped again).
        with open("/proc/%d/maps" % lab.pid("swarma")) as f:
            maps = f.read()
        for lib in ("libarchive", "libstdc++"):
            assert lib not in maps, "%s mapped in shoald after a task's pull" % lib


@timeout(180)
def test_task_start_pulls_a_moved_tag_and_falls_back_to_the_local_image():
    """As on dockerd: a task of a tag-only image (`--no-resolve-image`)
    pulls the tag again when it starts, so a tag moved on the registry
    runs what it names now; an image the registry does not have runs as
    the node has it; DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 in the daemon's
    environment runs what the node has without asking."""
    def image_id(ref):
        return lab.docker("swarma", "image", "inspect", "-f", "{{.Id}}", ref)[1].strip()

    def task_image(svc):
        t = wait_running(lab, svc, 1)[0]
        _, name = container_of(lab, t)
        return lab.docker("swarma", "inspect", "-f", "{{.Image}}", name)[1].strip()

    with ServiceLab({"swarma": SEED["swarma"]}) as lab:
        lab.init("swarma")
        lab.docker("swarma", "pull", "-q", "busybox", timeout=120)
        # Another image with busybox's tools: a container's commit.
        lab.docker("swarma", "run", "-d", "--name", "mk", "busybox", "sh", "-c",
                   "echo other > /other; sleep 1d")
        wait_until(lambda: lab.docker("swarma", "exec", "mk", "cat", "/other",
                                      check=False)[1].strip() == "other", 20, what="/other in mk")
        lab.docker("swarma", "commit", "mk", "other:v1")
        lab.docker("swarma", "rm", "-f", "mk")
        busybox, other = image_id("busybox"), image_id("other:v1")
        assert busybox != other
        # This node's busybox:latest names the other image; the registry's
        # still names busybox.
        lab.docker("swarma", "tag", "other:v1", "busybox:latest")
        assert image_id("busybox") == other
        lab.service("swarma", "create", "-d", "--no-resolve-image", "--name", "moved",
                    "busybox", "sleep", "1d")
        assert task_image("moved") == busybox
        assert image_id("busybox") == busybox  # the pull moved the tag back

        # Only here: the pull fails (the mirror has no such repository),
        # and the task runs the local image; the log says why.
        lab.docker("swarma", "tag", "other:v1", "onlyhere:v1")
        lab.service("swarma", "create", "-d", "--no-resolve-image", "--name", "local",
                    "onlyhere:v1", "sleep", "1d")
        assert task_image("local") == other
        assert re.search(r"pulling image onlyhere:v1 failed, the task runs the image this "
                         r"node has \(sha256:[0-9a-f]{12}\)", lab.logs("swarma")), lab.logs("swarma")

        # dockerd's switch: no pull when the node has the image.
        lab.shoald_env = dict(lab.shoald_env, DOCKER_SERVICE_PREFER_OFFLINE_IMAGE="1")
        lab.restart("swarma")
        lab.docker("swarma", "tag", "other:v1", "busybox:latest")
        lab.service("swarma", "update", "-d", "--force", "--no-resolve-image", "moved")
        wait_until(lambda: task_image("moved") == other, 60, interval=0.5,
                   what="the moved service's new task on the local busybox:latest")
        assert image_id("busybox") == other


@timeout(120)
def test_killed_container_is_replaced():
    with ServiceLab() as lab:
        seed_cluster(lab)
        lab.service("swarma", "create", "-d", "--name", "web", "--replicas", "3", "nginx")
        tasks = wait_running(lab, "web", 3)
        victim = [t for t in tasks if t["NODE"] == "swarmb"] or tasks
        victim = victim[0]
        host, name = container_of(lab, victim)
        pid = lab.container_pid(host, name)
        lab.exec(host, "kill", "-9", str(pid))

        def replaced():
            rows = lab.service_ps("web", "swarma", "--no-trunc")
            new = [r for r in current(rows) if r["NAME"] == victim["NAME"]]
            old = [r for r in rows if r["ID"] == victim["ID"]]
            if len(new) != 1 or new[0]["ID"] == victim["ID"] or not new[0]["CURRENT STATE"].startswith("Running "):
                return None
            if not old or old[0]["NAME"] != "\\_ " + victim["NAME"]:
                return None
            return new[0], old[0]
        new, old = wait_until(replaced, 45, interval=0.5, what="slot %s replaced" % victim["NAME"])
        assert old["DESIRED STATE"] == "Shutdown" and old["CURRENT STATE"].startswith("Failed "), old
        assert old["ERROR"] == '"task: non-zero exit (137)"', old
        assert len(running(lab, "web")) == 3
        assert ls_row(lab, "web")["REPLICAS"] == "3/3"
        check_pages(lab, "web")
        assert name not in [c["NAMES"] for c in lab.ps(host)], "killed container still listed as up"


@timeout(150)
def test_killed_node_goes_down_and_its_tasks_are_rescheduled():
    with ServiceLab() as lab:
        ids = seed_cluster(lab)
        lab.service("swarma", "create", "-d", "--name", "web", "--replicas", "3", "nginx")
        tasks = wait_running(lab, "web", 3)
        assert sorted(t["NODE"] for t in tasks) == sorted(HOSTS), tasks
        lost = [t for t in tasks if t["NODE"] == "moby"][0]
        lab.stop("moby", "KILL")
        t0 = time.monotonic()
        wait_until(lambda: lab.node_status("swarma", ids["moby"])[0] == "down", 60, interval=0.5,
                   what="moby Down")
        down_after = time.monotonic() - t0

        def rescheduled():
            rows = lab.service_ps("web", "swarma", "--no-trunc")
            cur = [r for r in current(rows) if r["CURRENT STATE"].startswith("Running ")]
            old = [r for r in rows if r["ID"] == lost["ID"]]
            if len(cur) != 3 or any(r["NODE"] == "moby" for r in cur) or not old:
                return None
            return old[0]
        old = wait_until(rescheduled, 60, interval=0.5, what="moby's task rescheduled")
        assert old["NAME"] == "\\_ " + lost["NAME"] and old["NODE"] == "moby", old
        assert old["DESIRED STATE"] == "Shutdown", old
        assert ls_row(lab, "web")["REPLICAS"] == "3/3"
        check_pages(lab, "web")
        print("    (moby seen Down %.1f s after its shoald was killed)" % down_after)


@timeout(120)
def test_global_service_one_task_per_node():
    with ServiceLab() as lab:
        ids = seed_cluster(lab)
        _, out, _ = lab.service("swarma", "create", "--name", "agent", "--mode", "global",
                                "--stop-grace-period", "1s", "busybox", "sleep", "3600")
        assert re.search(r"^verify: Service %s converged$" % TASK_ID, out, re.M), out
        r = ls_row(lab, "agent")
        assert (r["MODE"], r["REPLICAS"], r["IMAGE"]) == ("global", "3/3", "busybox:latest"), r
        tasks = wait_running(lab, "agent", 3)
        assert sorted(t["NODE"] for t in tasks) == sorted(HOSTS), tasks
        for t in tasks:
            assert t["NAME"] == "agent." + ids[t["NODE"]], t
            host, name = container_of(lab, t)
            assert [c["NAMES"] for c in task_containers(lab, host, "agent")] == [name], host
        # A drained node loses its task; nothing replaces it elsewhere.
        lab.docker("swarma", "node", "update", "--availability", "drain", "moby")
        wait_until(lambda: ls_row(lab, "agent")["REPLICAS"] == "2/2", 40, what="agent 2/2 after drain")
        wait_until(lambda: not task_containers(lab, "moby", "agent"), 30, what="agent gone from moby")
        assert sorted(t["NODE"] for t in running(lab, "agent")) == ["swarma", "swarmb"]


@timeout(150)
def test_rolling_update_env_one_at_a_time():
    with ServiceLab() as lab:
        seed_cluster(lab)
        lab.service("swarma", "create", "-d", "--name", "bb", "--replicas", "3", "--stop-grace-period", "1s",
                    "--update-parallelism", "1", "--update-delay", "1s", "busybox", "sleep", "3600")
        old = {t["NAME"]: t["ID"] for t in wait_running(lab, "bb", 3)}
        _, out, err = lab.service("swarma", "update", "--env-add", "GREETING=hello", "bb")
        assert re.search(r"^verify: Service bb converged$", out, re.M), out + err
        st = wait_until(lambda: (update_status(lab, "bb") or {}).get("State") == "completed"
                        and update_status(lab, "bb"), 30, what="UpdateStatus completed")
        assert st["Message"] == "update completed", st
        lines = pretty(lab.service("swarma", "inspect", "--pretty", "bb")[1])
        assert "UpdateStatus:" in lines and "State: completed" in lines, lines
        assert "Message: update completed" in lines, lines

        rows = lab.service_ps("bb", "swarma", "--no-trunc")
        cur = running(lab, "bb")
        assert len(cur) == 3, rows
        for t in cur:
            assert t["ID"] != old[t["NAME"]], "slot %s not updated" % t["NAME"]
            h = [r for r in rows if r["ID"] == old[t["NAME"]]]
            assert h and h[0]["NAME"] == "\\_ " + t["NAME"] and h[0]["DESIRED STATE"] == "Shutdown", h
            host, name = container_of(lab, t)
            env = json.loads(lab.docker(host, "inspect", "--format", "{{json .Config.Env}}", name)[1])
            assert "GREETING=hello" in env, (host, name, env)

        # Parallelism 1: each new task was created only after the previous
        # new one ran (plus the 1 s delay).
        new_ids = {t["ID"] for t in cur}
        new = sorted((o for o in task_objects(lab, "bb") if o["ID"] in new_ids), key=lambda o: ts(o["CreatedAt"]))
        assert len(new) == 3, new
        for a, b in zip(new, new[1:]):
            assert ts(b["CreatedAt"]) >= ts(a["Status"]["Timestamp"]), \
                "task %s created at %s before %s ran (%s): more than one at a time" % (
                    b["ID"], b["CreatedAt"], a["ID"], a["Status"]["Timestamp"])


@timeout(150)
def test_failing_update_pauses_then_rollback():
    with ServiceLab() as lab:
        seed_cluster(lab)
        lab.service("swarma", "create", "-d", "--name", "bb", "--replicas", "3", "--stop-grace-period", "1s",
                    "busybox", "sleep", "3600")
        old = {t["NAME"]: t["ID"] for t in wait_running(lab, "bb", 3)}
        rc, out, err = lab.service("swarma", "update", "--update-failure-action", "pause",
                                   "--args", "false", "bb", check=False)
        m = re.search(r"service update paused: update paused due to failure or early termination of task (%s)"
                      % TASK_ID, out + err)
        assert rc == 1 and m, "update of a failing command: rc %d\nstdout: %s\nstderr: %s" % (rc, out[-500:], err)
        failed = m.group(1)
        st = update_status(lab, "bb")
        assert st["State"] == "paused", st
        assert st["Message"] == "update paused due to failure or early termination of task " + failed, st
        lines = pretty(lab.service("swarma", "inspect", "--pretty", "bb")[1])
        assert "State: paused" in lines and \
            "Message: update paused due to failure or early termination of task " + failed in lines, lines
        rows = lab.service_ps("bb", "swarma", "--no-trunc")
        f = [r for r in rows if r["ID"] == failed]
        assert f and f[0]["CURRENT STATE"].startswith("Failed ") and \
            f[0]["ERROR"] == '"task: non-zero exit (1)"', f or rows
        # Paused: no further slot is updated (swarmkit may have started the
        # next slot before it saw the failure, so one or two are touched).
        untouched = {t["NAME"]: t["ID"] for t in running(lab, "bb") if t["ID"] in old.values()}
        time.sleep(4)
        later = {t["NAME"]: t["ID"] for t in running(lab, "bb") if t["ID"] in old.values()}
        assert untouched and later == untouched, \
            "paused update went on: old tasks running at pause %r, 4 s later %r" % (untouched, later)
        assert update_status(lab, "bb")["State"] == "paused"

        rc, out, err = lab.service("swarma", "rollback", "bb", check=False)
        assert rc == 0, (rc, out, err)
        assert "rollback: manually requested rollback" in out, out
        assert re.search(r"^verify: Service bb converged$", out, re.M), out
        st = wait_until(lambda: (update_status(lab, "bb") or {}).get("State") == "rollback_completed"
                        and update_status(lab, "bb"), 30, what="UpdateStatus rollback_completed")
        assert st["Message"] == "rollback completed", st
        args = json.loads(lab.service("swarma", "inspect", "--format",
                                      "{{json .Spec.TaskTemplate.ContainerSpec.Args}}", "bb")[1])
        assert args == ["sleep", "3600"], args
        cur = wait_running(lab, "bb", 3)
        for t in cur:
            if t["NAME"] in untouched:
                assert t["ID"] == untouched[t["NAME"]], "rollback replaced a task already on the old spec"
            host, name = container_of(lab, t)
            path = lab.docker(host, "inspect", "--format", "{{.Path}} {{json .Args}}", name)[1].strip()
            assert path == 'sleep ["3600"]', (host, name, path)


@timeout(120)
def test_shoald_restart_on_worker_keeps_containers():
    with ServiceLab() as lab:
        ids = seed_cluster(lab)
        lab.service("swarma", "create", "-d", "--name", "web", "--replicas", "3", "nginx")
        tasks = wait_running(lab, "web", 3)
        mine = [t for t in tasks if t["NODE"] == "swarmb"]
        assert len(mine) == 1, tasks
        before = lab.docker("swarmb", "ps", "-q", "--no-trunc")[1].split()
        _, name = container_of(lab, mine[0])
        pid = lab.container_pid("swarmb", name)

        lab.restart("swarmb")
        after = lab.docker("swarmb", "ps", "-q", "--no-trunc")[1].split()
        assert sorted(after) == sorted(before) and before, "docker ps before %r, after %r" % (before, after)
        c = [r for r in lab.ps("swarmb") if r["NAMES"] == name]
        assert c and c[0]["STATUS"].startswith("Up "), lab.ps("swarmb")
        assert lab.container_pid("swarmb", name) == pid, "a different process after the restart"
        assert WELCOME in lab.fetch_in_container("swarmb", pid)
        wait_until(lambda: lab.node_status("swarma", ids["swarmb"])[0] == "ready", 30, what="swarmb ready")
        time.sleep(6)  # past a heartbeat: nothing is rescheduled
        rows = lab.service_ps("web", "swarma", "--no-trunc")
        assert sorted((r["ID"], r["NODE"]) for r in rows) == sorted((t["ID"], t["NODE"]) for t in tasks), \
            "service ps changed across the worker's restart:\n%r\nwas\n%r" % (rows, tasks)
        assert all(r["CURRENT STATE"].startswith("Running ") for r in rows), rows


@timeout(120)
def test_bad_image_name_and_unknown_image_errors():
    with ServiceLab() as lab:
        seed_cluster(lab)
        rc, out, err = lab.service("swarma", "create", "-d", "--name", "bad", "BadName!!", check=False)
        assert rc == 1 and 'Error response from daemon: rpc error: code = InvalidArgument desc = ' \
            'ContainerSpec: "BadName!!" is not a valid repository/tag' in err, (rc, out, err)
        assert [r["NAME"] for r in lab.service_ls("swarma")] == []

        _, out, err = lab.service("swarma", "create", "-d", "--name", "ghost", "nosuchimage")
        assert "image nosuchimage:latest could not be accessed on a registry to record" in err, err
        _, out, err = lab.service("swarma", "create", "-d", "--name", "away", "192.168.33.77:5000/foo")

        def errors(svc):
            rows = lab.service_ps(svc, "swarma", "--no-trunc")
            bad = [r for r in rows if r["CURRENT STATE"].startswith("Rejected ") and r["ERROR"]]
            return bad or None
        bad = wait_until(lambda: errors("ghost"), 60, interval=0.5, what="ghost's task error")
        for r in bad:
            e = r["ERROR"]
            assert "nosuchimage" in e and ("No such image" in e or "not found" in e or "manifest unknown" in e), r
        assert ls_row(lab, "ghost")["REPLICAS"] == "0/1"
        bad = wait_until(lambda: errors("away"), 60, interval=0.5, what="away's task error")
        assert all("192.168.33.77" in r["ERROR"] for r in bad), bad
        for h in HOSTS:
            assert not task_containers(lab, h, "ghost", all_=True), h


@timeout(90)
def test_scale_without_detach_converges():
    """`docker service scale` waits, like create, for the CLI's progress
    display to converge: it lists tasks with the `_up-to-date` filter,
    which must keep the tasks a scale did not change."""
    with ServiceLab({"swarma": SEED["swarma"]}) as lab:
        lab.init("swarma")
        lab.service("swarma", "create", "-d", "--name", "web", "nginx")
        wait_running(lab, "web", 1)
        try:
            rc, out, err = lab.service("swarma", "scale", "web=2", check=False, timeout=45)
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            tail = sorted(set(l for l in out.splitlines() if l.startswith("overall progress")))
            raise AssertionError("`docker service scale web=2` did not return within 45 s; "
                                 "progress lines seen: %r; tasks running: %d" % (tail, len(running(lab, "web"))))
        assert rc == 0, (rc, out, err)
        assert out.startswith("web scaled to 2\n"), out
        assert "overall progress: 2 out of 2 tasks" in out, out
        assert re.search(r"^verify: Service web converged$", out, re.M), out


@timeout(420)
def test_shoal_cli_matches_docker_cli_for_service_commands():
    """bin/shoal's service/ps/logs/inspect commands print what the stock
    docker CLI prints against the same cluster: same commands, same
    services, outputs compared after the program name, relative times and
    column padding (which follows the times' widths) are normalized."""
    def norm(text):
        text = text.replace("shoal", "docker")
        text = re.sub(r"(Less than a second|About an? \w+|\d+ \w+) ago", "T ago", text,
                      flags=re.I)
        text = re.sub(r"Up (Less than a second|About an? \w+|\d+ \w+)", "Up T", text)
        return [re.sub(r" {2,}", "  ", l).rstrip() for l in text.splitlines()]

    def both(lab, *args, check=False):
        d = lab.docker("swarma", *args, check=False, timeout=120)
        s = lab.shoal("swarma", *args, check=False, timeout=120)
        return d, s

    def same(lab, *args):
        d, s = both(lab, *args)
        assert d[0] == s[0], "exit codes of %r: docker %d, shoal %d (%r)" % (args, d[0], s[0], s[2])
        assert norm(d[1]) == norm(s[1]), "stdout of %r differs:\ndocker:\n%s\nshoal:\n%s" % (
            args, d[1], s[1])
        assert norm(d[2]) == norm(s[2]), "stderr of %r differs:\ndocker:\n%s\nshoal:\n%s" % (
            args, d[2], s[2])
        return s

    flags = ["--replicas", "2", "--env", "A=1", "--limit-memory", "64M", "--reserve-cpu", "0.1",
             "--constraint", "node.role==manager", "--restart-condition", "on-failure",
             "--update-parallelism", "1", "--update-delay", "2s", "--update-failure-action",
             "pause"]
    with ServiceLab({"swarma": SEED["swarma"]}) as lab:
        lab.init("swarma")
        # the same service created by each CLI: the specs must be equal
        rc, out_d, err = lab.docker("swarma", "service", "create", "-d", "--name", "webd",
                                    "--publish", "8080:80", *flags, "nginx")
        assert rc == 0 and re.fullmatch(TASK_ID + r"\n", out_d), (out_d, err)
        rc, out_s, err = lab.shoal("swarma", "service", "create", "-d", "--name", "webs",
                                   "--publish", "8081:80", *flags, "nginx")
        assert rc == 0 and re.fullmatch(TASK_ID + r"\n", out_s), (out_s, err)
        wait_running(lab, "webd", 2)
        wait_running(lab, "webs", 2)

        def spec(name):
            s = json.loads(lab.docker("swarma", "service", "inspect", name)[1])[0]["Spec"]
            s["Name"] = "N"
            s["EndpointSpec"]["Ports"][0]["PublishedPort"] = 0
            # The docker CLI's --env-add goes through a Go map: its order
            # is arbitrary, so compare the set.
            cs = s["TaskTemplate"]["ContainerSpec"]
            cs["Env"] = sorted(cs.get("Env", []))
            return s
        assert spec("webd") == spec("webs"), (spec("webd"), spec("webs"))

        for svc in ("webd", "webs"):
            same(lab, "service", "ps", svc)
            same(lab, "service", "ps", "--no-trunc", svc)
            same(lab, "service", "ps", "-q", svc)
            same(lab, "service", "inspect", svc)
            same(lab, "service", "inspect", "--pretty", svc)
            same(lab, "service", "inspect", "--format", "{{.Spec.Name}} {{.Spec.Mode.Replicated.Replicas}} {{.ID}}", svc)
        same(lab, "service", "ls")
        same(lab, "service", "ls", "-q")
        same(lab, "ps")
        same(lab, "ps", "-a", "-q")
        cname = container_of(lab, running(lab, "webd")[0])[1]
        same(lab, "inspect", cname)
        same(lab, "logs", cname)
        # service logs: same lines, in whatever order the tasks' logs merge
        d, s = both(lab, "service", "logs", "webd")
        assert d[0] == s[0] == 0, (d, s)
        assert sorted(norm(d[1])) == sorted(norm(s[1])) and sorted(norm(d[2])) == sorted(
            norm(s[2])), (d, s)
        # errors: messages and exit codes
        for args in (("service", "ps", "nope"), ("service", "inspect", "nope"),
                     ("service", "inspect", "--pretty", "nope"), ("service", "rm", "nope"),
                     ("service", "scale", "nope=2"), ("service", "scale", "webd"),
                     ("service", "scale", "webd=x"), ("service", "logs", "nope"),
                     ("service", "update", "--replicas", "2", "nope"), ("service", "create"),
                     ("service", "create", "--limit-memory", "x", "busybox"),
                     ("inspect", "nope"), ("logs", "nope"), ("service", "--help"),
                     ("service", "create", "--help"), ("ps", "--help")):
            same(lab, *args)

        # scale without -d: the CLI's convergence display, off a terminal
        for cli, svc in ((lab.docker, "webd"), (lab.shoal, "webs")):
            rc, out, err = cli("swarma", "service", "scale", svc + "=3", timeout=120)
            assert rc == 0, (rc, out, err)
            lines = out.splitlines()
            assert lines[0] == "%s scaled to 3" % svc, out
            assert lines[1] == "overall progress: 0 out of 3 tasks", out
            assert lines[2:5] == ["1/3:  ", "2/3:  ", "3/3:  "], out
            assert "overall progress: 3 out of 3 tasks" in lines, out
            assert lines[-1] == "verify: Service %s converged" % svc, out
            for l in lines[5:-1]:
                assert re.fullmatch(r"overall progress: \d out of 3 tasks|verify: Waiting \d "
                                    r"seconds to verify that tasks are stable\.\.\.", l), l
        # update: image, replicas, env
        for cli, svc in ((lab.docker, "webd"), (lab.shoal, "webs")):
            rc, out, err = cli("swarma", "service", "update", "-d", "--env-add", "B=2",
                               "--replicas", "2", "--image", "nginx:latest", svc)
            assert (rc, out) == (0, svc + "\n"), (rc, out, err)
        wait_running(lab, "webd", 2)
        wait_running(lab, "webs", 2)
        assert spec("webd") == spec("webs"), (spec("webd"), spec("webs"))
        # rm: names echoed, errors collected
        d = lab.docker("swarma", "service", "rm", "webd", "nope", check=False)
        s = lab.shoal("swarma", "service", "rm", "webs", "nope", check=False)
        assert (d[0], d[1].replace("webd", "X"), d[2]) == (s[0], s[1].replace("webs", "X"), s[2]), (d, s)
