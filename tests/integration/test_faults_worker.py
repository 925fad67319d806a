"""Issue 7, items 1 and 7, as a user sees them with the stock docker CLI:
stops of containers that ignore SIGTERM run side by side (one grace period
for all, the API answering meanwhile), and a worker restarted while no
manager is reachable keeps its containers until a manager says otherwise."""

import json
import threading
import time
import urllib.parse

from lib import SEED, ServiceLab, api_raw, timeout, wait_until

# PID 1 of each task ignores SIGTERM: only the SIGKILL after the grace ends it.
STUBBORN = ["busybox", "sh", "-c", "trap '' TERM; while :; do sleep 1; done"]


def containers(lab, host, svc, all_=True):
    """IDs of the containers of service svc on host (GET /containers/json,
    what docker ps calls)."""
    return [c["Id"] for c in listing(lab, host, svc, all_)]


def listing(lab, host, svc, all_=True):
    f = urllib.parse.quote(json.dumps({"label": ["com.docker.swarm.service.name=" + svc]}))
    st, body = lab.api(host, "GET", "/v1.47/containers/json?all=%d&filters=%s" % (int(all_), f))
    assert st == 200, (st, body)
    return body


class Sampler(threading.Thread):
    """Times GET /_ping and GET /containers/json (what docker ps calls) on a
    host, one after the other, until stopped (at most `limit` seconds)."""

    PATHS = ("/_ping", "/containers/json")

    def __init__(self, sock, limit=120):
        super().__init__(daemon=True)
        self.sock, self.limit = sock, limit
        self.done = threading.Event()
        self.samples = []  # (monotonic time, path, seconds)
        self.errors = []

    def run(self):
        end = time.monotonic() + self.limit
        while not self.done.is_set() and time.monotonic() < end:
            for path in self.PATHS:
                t0 = time.monotonic()
                try:
                    st, _, _ = api_raw(self.sock, "GET", "/v1.47" + path, timeout=30)
                except OSError as e:
                    self.errors.append("%s: %s" % (path, e))
                    continue
                if st != 200:
                    self.errors.append("%s: status %d" % (path, st))
                self.samples.append((t0, path, time.monotonic() - t0))
            time.sleep(0.02)

    def stats(self, path, since, until=float("inf")):
        """(count, median, worst) of path's samples started in [since, until)."""
        v = sorted(took for t, p, took in self.samples if p == path and since <= t < until)
        return (len(v), v[len(v) // 2] if v else 0, v[-1] if v else 0)


@timeout(420)
def test_service_rm_of_100_sigterm_ignoring_tasks_takes_one_grace_period():
    grace = 2.0
    with ServiceLab(hosts={"swarma": SEED["swarma"]}) as lab:
        lab.init("swarma")
        lab.service("swarma", "create", "-d", "--name", "stubborn", "--replicas", "100",
                    "--stop-grace-period", "%ds" % grace, *STUBBORN)
        wait_until(lambda: len(containers(lab, "swarma", "stubborn", all_=False)) == 100, 300,
                   interval=2, what="100 running containers of stubborn")
        # docker ps as a user types it (the CLI's own start-up included).
        c0 = time.monotonic()
        lab.docker("swarma", "ps", "-q")
        cli_before = time.monotonic() - c0

        sampler = Sampler(lab.sock("swarma"))
        sampler.start()
        time.sleep(2)  # what the listing costs with 100 containers, no stops
        t0 = time.monotonic()
        lab.service("swarma", "rm", "stubborn")
        stopped_at = None
        deadline = t0 + 60
        # One listing at a time here, one in the sampler: the API's two read
        # threads are not made to queue by the test itself.
        while time.monotonic() < deadline:
            left = listing(lab, "swarma", "stubborn")
            if stopped_at is None and not [c for c in left if c["State"] == "running"]:
                stopped_at = time.monotonic()
            if not left:
                break
            time.sleep(0.1)
        gone = time.monotonic() - t0
        time.sleep(0.5)
        sampler.done.set()
        sampler.join(35)
        c0 = time.monotonic()
        lab.docker("swarma", "ps", "-q")
        cli_after = time.monotonic() - c0

        stop_took = (stopped_at or time.monotonic()) - t0
        print("    100 tasks ignoring SIGTERM, grace %.0fs: none running after %.2fs, "
              "all removed after %.2fs" % (grace, stop_took, gone))
        for path in Sampler.PATHS:
            b = sampler.stats(path, 0, t0)
            d = sampler.stats(path, t0)
            print("    %s with 100 running: %d samples, median %.0f ms, worst %.0f ms; "
                  "during the rm: %d samples, median %.0f ms, worst %.0f ms" % (
                      path, b[0], b[1] * 1e3, b[2] * 1e3, d[0], d[1] * 1e3, d[2] * 1e3))
        print("    docker ps (the CLI) took %.0f ms before, %.0f ms after" % (
            cli_before * 1e3, cli_after * 1e3))

        assert not containers(lab, "swarma", "stubborn"), "containers of stubborn left after 60 s"
        rows = [r for r in lab.ps("swarma", "-a") if r["NAMES"].startswith("stubborn.")]
        assert not rows, "docker ps -a still lists %d containers of stubborn" % len(rows)
        # Every stop at once: one grace period, then SIGKILL, plus the
        # dispatcher's assignment and the exit reports (well under 1 s
        # idle; 2.9 s seen on a machine at load 14). Stops in turns would
        # take several grace periods.
        assert stopped_at is not None and stop_took < 2 * grace + 1, \
            "containers still running %.1f s after service rm" % stop_took
        # Then the removals: crun delete, unmount and rm -rf cost 60-150 ms
        # of CPU each here (2 cores shared with other builds), so 100 of them
        # add up to 4-8 s whatever the grace. Stops that each held a thread
        # would take 100 * 2 s / 4 threads = 50 s.
        assert gone < 2 * grace + 8, "removing 100 tasks took %.1f s with a %.0f s grace" % (gone, grace)
        assert not sampler.errors, sampler.errors[:5]
        # /_ping is answered on the loop: a stop held there would cost a
        # whole grace period (2 s). 47 ms worst seen here, 123 ms on a
        # busier machine while 100 crun deletes shared its two cores.
        n, median, worst = sampler.stats("/_ping", t0)
        assert n >= 10 and median < 0.02 and worst < 0.5, \
            "/_ping during the stops: median %.0f ms, worst %.0f ms" % (median * 1e3, worst * 1e3)
        # The listing itself reads 100 containers' files: tens of ms of CPU,
        # more when the box is loaded. Queued behind a stop it would take a
        # whole grace period (2 s) or more.
        n, median, worst = sampler.stats("/containers/json", t0)
        assert n >= 10 and median < 0.1 and worst < 1.0, \
            "GET /containers/json during the stops: median %.0f ms, worst %.0f ms" % (
                median * 1e3, worst * 1e3)


def started_at(lab, host, ids):
    out = lab.docker(host, "inspect", "--format", "{{.Id}} {{.State.Running}} {{.State.StartedAt}}",
                     *ids)[1]
    return {l.split()[0]: tuple(l.split()[1:]) for l in out.splitlines() if l.strip()}


@timeout(300)
def test_worker_restarted_without_a_manager_keeps_its_containers():
    with ServiceLab(hosts={"swarma": SEED["swarma"], "swarmb": SEED["swarmb"]}) as lab:
        lab.cluster(("swarmb",))
        wait_until(lambda: sum(r["STATUS"] == "Ready" for r in lab.node_ls("swarma")) == 2, 30,
                   what="2 Ready nodes")
        # Containers that stop at once on SIGTERM: any stop would show.
        lab.service("swarma", "create", "-d", "--name", "keep", "--replicas", "3",
                    "--constraint", "node.role==worker", "busybox", "sh", "-c",
                    "trap 'exit 0' TERM; while :; do sleep 1; done")

        def tasks():
            rows = lab.service_ps("keep", "swarma", "--no-trunc")
            return sorted((r["ID"], r["NODE"], r["DESIRED STATE"], r["CURRENT STATE"].split()[0])
                          for r in rows)
        wait_until(lambda: [t[3] for t in tasks()] == ["Running"] * 3, 90, interval=1,
                   what="3 running tasks of keep")
        before_tasks = tasks()
        ids = containers(lab, "swarmb", "keep", all_=False)
        assert len(ids) == 3, ids
        before = started_at(lab, "swarmb", ids)
        assert all(v[0] == "true" for v in before.values()), before
        names = sorted(r["NAMES"] for r in lab.ps("swarmb"))

        lab.stop("swarma")      # no manager, no leader
        lab.restart("swarmb")   # SIGTERM shoald, start it again
        # Six heartbeat periods (5 s) with no manager to report to.
        end = time.monotonic() + 30
        samples = 0
        while time.monotonic() < end:
            now = started_at(lab, "swarmb", ids)
            assert now == before, "30 s without a manager: containers changed to %r, were %r" % (now, before)
            assert sorted(r["NAMES"] for r in lab.ps("swarmb")) == names
            samples += 1
            time.sleep(3)
        assert samples >= 8
        log = lab.logs("swarmb")
        assert "adopted container" in log and "stopping container" not in log, log[-2000:]

        lab.start("swarma")
        wait_until(lambda: tasks() == before_tasks, 60, interval=1,
                   what="the same 3 tasks running again")
        time.sleep(6)  # past a heartbeat and a dispatcher grace period
        assert tasks() == before_tasks, (tasks(), before_tasks)
        assert len(lab.service_ps("keep", "swarma")) == 3, "replacement tasks appeared"
        assert started_at(lab, "swarmb", ids) == before
        assert sorted(containers(lab, "swarmb", "keep")) == sorted(ids)
