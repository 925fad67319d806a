"""Swarm jobs (`--mode replicated-job` and `global-job`), as a user runs
them with the stock docker CLI: tasks run to completion as real
containers, `service ls` shows Docker's "N/M (C/T completed)", `service
ps` shows Complete, `service update --force` runs the job again."""

import re

from lib import ServiceLab, timeout, wait_until

WORKERS = ("swarmb",)
HOSTS = {"swarma": "192.168.33.10", "swarmb": "192.168.33.11"}


def cluster(lab):
    lab.cluster(WORKERS)
    wait_until(lambda: sum(r["STATUS"] == "Ready" for r in lab.node_ls("swarma")) == 2, 30,
               what="2 Ready nodes")


def replicas(lab, name):
    rows = [r for r in lab.service_ls() if r["NAME"] == name]
    assert len(rows) == 1, rows
    return rows[0]["MODE"], rows[0]["REPLICAS"]


def tasks(lab, name):
    return lab.api("swarma", "GET", '/tasks?filters={"service":["%s"]}' % name)[1]


@timeout(300)
def test_replicated_job_runs_to_completion_and_again_on_force():
    with ServiceLab(HOSTS) as lab:
        cluster(lab)
        # Without -d the CLI follows the job to its end, as on Docker.
        rc, out, err = lab.service("swarma", "create", "--name", "batch", "--mode", "replicated-job",
                                   "--replicas", "4", "--max-concurrent", "2", "busybox",
                                   "sh", "-c", "echo batch-done; sleep 1", check=False, timeout=120)
        assert rc == 0, (out, err)
        assert "job complete" in out + err, out + err
        assert replicas(lab, "batch") == ("replicated job", "0/2 (4/4 completed)"), lab.service_ls()
        ts = tasks(lab, "batch")
        assert len(ts) == 4 and all(t["Status"]["State"] == "complete" for t in ts), ts
        assert {t["DesiredState"] for t in ts} == {"complete"}, ts
        assert {t["JobIteration"]["Index"] for t in ts} == {0}, ts
        assert sorted(t["Slot"] for t in ts) == [0, 1, 2, 3], ts
        # Each ran as a container: its output is in the service's logs.
        _, logs, _ = lab.service("swarma", "logs", "--raw", "batch")
        assert logs.count("batch-done") == 4, logs
        rows = lab.service_ps("batch")
        assert len(rows) == 4 and {r["DESIRED STATE"] for r in rows} == {"Complete"}, rows
        assert all(r["CURRENT STATE"].startswith("Complete") for r in rows), rows
        _, svc, _ = lab.docker("swarma", "service", "inspect", "batch")
        assert '"MaxConcurrent": 2' in svc and '"TotalCompletions": 4' in svc, svc
        assert '"JobIteration"' in svc, svc
        # --filter mode= knows jobs.
        _, out, _ = lab.service("swarma", "ls", "--filter", "mode=replicated-job", "-q")
        assert len(out.split()) == 1, out

        # update --force: a new iteration runs the job again; the first
        # run's completions stay as history.
        rc, out, err = lab.service("swarma", "update", "--force", "batch", check=False, timeout=120)
        assert rc == 0, (out, err)
        wait_until(lambda: replicas(lab, "batch")[1] == "0/2 (4/4 completed)", 60,
                   what="second run complete")
        ts = tasks(lab, "batch")
        assert sorted(t["JobIteration"]["Index"] for t in ts).count(1) == 4, ts

        # A job whose task fails is retried in its slot (on-failure for jobs).
        lab.service("swarma", "create", "-d", "--name", "flaky", "--mode", "replicated-job",
                    "--restart-delay", "1s", "--restart-max-attempts", "2", "busybox",
                    "sh", "-c", "exit 3")
        wait_until(lambda: len([t for t in tasks(lab, "flaky") if t["Status"]["State"] == "failed"]) == 3,
                   60, what="three failed attempts")
        ts = tasks(lab, "flaky")
        assert {t["Slot"] for t in ts} == {0}, ts
        assert all("non-zero exit (3)" in t["Status"].get("Err", "") for t in ts), ts
        assert replicas(lab, "flaky")[1] == "0/1 (0/1 completed)", lab.service_ls()


@timeout(300)
def test_global_job_runs_once_on_every_node():
    with ServiceLab(HOSTS) as lab:
        cluster(lab)
        rc, out, err = lab.service("swarma", "create", "--name", "everywhere", "--mode", "global-job",
                                   "busybox", "sh", "-c", "hostname", check=False, timeout=120)
        assert rc == 0, (out, err)
        wait_until(lambda: replicas(lab, "everywhere")[1] == "0/0 (2/2 completed)", 60,
                   what="global job complete on both nodes")
        assert replicas(lab, "everywhere")[0] == "global job"
        ts = tasks(lab, "everywhere")
        assert len({t["NodeID"] for t in ts}) == 2 and len(ts) == 2, ts
        rows = lab.service_ps("everywhere")
        assert all(re.match(r"everywhere\.[0-9a-z]{25}$", r["NAME"]) for r in rows), rows
        # No task containers are left running.
        for host in HOSTS:
            assert not [r for r in lab.ps(host) if r["NAMES"].startswith("everywhere.")], host
