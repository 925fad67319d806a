"""Issue 12, docker update and docker commit with the stock docker CLI on
one node's shoald: resources changed on a running standalone container
(read back from its cgroup v1 files and docker inspect), kept for the
next start and across a shoald restart, restart policies updated,
Docker's errors; a commit of a container with added, changed and deleted
files (and a directory emptied and refilled) run as a new image, its
--change, --message and --author seen in inspect and history."""

import json

from lib import SEED, ServiceLab, timeout, wait_until


def one_host():
    return ServiceLab({"swarma": SEED["swarma"]})


def inspect(lab, ref, fmt):
    return lab.docker("swarma", "inspect", "--format", fmt, ref)[1].strip()


def cgroup_file(lab, pid, controller, name):
    """A v1 controller's file of the cgroup process pid is in."""
    lines = lab.exec("swarma", "cat", "/proc/%d/cgroup" % pid)[1].splitlines()
    for line in lines:
        _, ctrls, path = line.split(":", 2)
        if controller in ctrls.split(","):
            d = "/sys/fs/cgroup/%s%s" % (ctrls, path)
            return lab.exec("swarma", "cat", "%s/%s" % (d, name))[1].strip()
    raise AssertionError("no %s cgroup for %d: %s" % (controller, pid, lines))


def alive(lab):
    st, _ = lab.api("swarma", "GET", "/_ping")
    assert st == 200, st


@timeout(300)
def test_update_resources_and_restart_policy():
    with one_host() as lab:
        lab.docker("swarma", "pull", "busybox", timeout=120)
        lab.docker("swarma", "run", "-d", "--name", "u1", "--memory", "32m",
                   "busybox", "sleep", "1000")
        pid = lab.container_pid("swarma", "u1")
        assert cgroup_file(lab, pid, "memory", "memory.limit_in_bytes") == "33554432"
        rc, out, err = lab.docker("swarma", "update", "--memory", "48m", "--cpus", "0.5",
                                  "--pids-limit", "50", "--cpu-shares", "512",
                                  "--memory-reservation", "16m", "--cpuset-cpus", "0",
                                  "u1", check=False)
        assert rc == 0 and out.strip() == "u1", (rc, out, err)
        # the running container has them now, from its cgroup's files
        assert cgroup_file(lab, pid, "memory", "memory.limit_in_bytes") == "50331648"
        assert cgroup_file(lab, pid, "memory", "memory.soft_limit_in_bytes") == "16777216"
        assert cgroup_file(lab, pid, "cpu", "cpu.cfs_quota_us") == "50000"
        assert cgroup_file(lab, pid, "cpu", "cpu.cfs_period_us") == "100000"
        assert cgroup_file(lab, pid, "cpu", "cpu.shares") == "512"
        assert cgroup_file(lab, pid, "pids", "pids.max") == "50"
        assert cgroup_file(lab, pid, "cpuset", "cpuset.cpus") == "0"
        hc = json.loads(inspect(lab, "u1", "{{json .HostConfig}}"))
        assert (hc["Memory"], hc["NanoCpus"], hc["PidsLimit"], hc["CpuShares"],
                hc["MemoryReservation"], hc["CpusetCpus"]) == \
            (50331648, 500000000, 50, 512, 16777216, "0"), hc
        # dockerd's rules: memory over the swap limit set needs the swap too
        rc, out, err = lab.docker("swarma", "update", "--memory", "128m", "u1",
                                  check=False)
        assert rc != 0 and ("Memory limit should be smaller than already set memoryswap "
                            "limit, update the memoryswap at the same time") in err, err
        lab.docker("swarma", "update", "--memory", "128m", "--memory-swap", "256m", "u1")
        assert cgroup_file(lab, pid, "memory", "memory.limit_in_bytes") == "134217728"
        assert cgroup_file(lab, pid, "memory", "memory.memsw.limit_in_bytes") == "268435456"
        # bad values: Docker's messages, nothing changed
        rc, _, err = lab.docker("swarma", "update", "--cpus", "64", "u1", check=False)
        assert rc != 0 and "Range of CPUs is from 0.01 to" in err, err
        rc, _, err = lab.docker("swarma", "update", "--memory", "1m", "u1", check=False)
        assert rc != 0 and "Minimum memory limit allowed is 6MB" in err, err
        rc, _, err = lab.docker("swarma", "update", "--cpu-quota", "20000", "u1",
                                check=False)
        assert rc != 0 and ("Conflicting options: CPU Quota cannot be updated as NanoCPUs "
                            "has already been set") in err, err
        rc, _, err = lab.docker("swarma", "update", "--cpuset-cpus", "0-99", "u1",
                                check=False)
        assert rc != 0 and "Requested CPUs are not available - requested 0-99" in err, err
        assert inspect(lab, "u1", "{{.HostConfig.Memory}}") == "134217728"
        st, body = lab.api("swarma", "POST", "/containers/u1/update",
                           {"KernelMemory": 10485760})
        assert st == 501 and "--kernel-memory (Resources.KernelMemory)" in body["message"], \
            (st, body)
        # a weight the cgroup cannot take: dockerd's warning, the rest applied
        st, body = lab.api("swarma", "POST", "/containers/u1/update",
                           {"BlkioWeight": 300, "PidsLimit": 60})
        assert st == 200, (st, body)
        weight = lab.exec("swarma", "sh", "-c", "ls /sys/fs/cgroup/blkio/blkio.weight",
                          check=False)[0] == 0
        if weight:
            assert body["Warnings"] is None, body
            assert cgroup_file(lab, pid, "blkio", "blkio.weight") == "300"
        else:
            assert body["Warnings"] == [
                "Your kernel does not support Block I/O weight or the cgroup is not "
                "mounted. Weight discarded."], body
            assert inspect(lab, "u1", "{{.HostConfig.BlkioWeight}}") == "0"
        assert cgroup_file(lab, pid, "pids", "pids.max") == "60"
        rc, _, err = lab.docker("swarma", "update", "--memory", "64m", "nosuch",
                                check=False)
        assert rc != 0 and "No such container: nosuch" in err, err

        # kept for the next run (a new cgroup from the bundle) and across a
        # shoald restart
        lab.restart("swarma")
        assert inspect(lab, "u1", "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}") == \
            "134217728 500000000"
        lab.docker("swarma", "restart", "-t", "1", "u1")
        pid = lab.container_pid("swarma", "u1")
        assert cgroup_file(lab, pid, "memory", "memory.limit_in_bytes") == "134217728"
        assert cgroup_file(lab, pid, "cpu", "cpu.cfs_quota_us") == "50000"
        assert cgroup_file(lab, pid, "pids", "pids.max") == "60"
        # a stopped container: recorded, applied at its start
        lab.docker("swarma", "stop", "-t", "1", "u1")
        lab.docker("swarma", "update", "--cpus", "0.25", "u1")
        lab.docker("swarma", "start", "u1")
        pid = lab.container_pid("swarma", "u1")
        assert cgroup_file(lab, pid, "cpu", "cpu.cfs_quota_us") == "25000"

        # restart policy: none, then always: a killed process comes back
        lab.docker("swarma", "run", "-d", "--name", "u2", "busybox", "sleep", "1000")
        lab.docker("swarma", "update", "--restart", "always", "u2")
        assert inspect(lab, "u2", "{{.HostConfig.RestartPolicy.Name}}") == "always"
        pid2 = lab.container_pid("swarma", "u2")
        lab.exec("swarma", "kill", "-9", str(pid2))
        wait_until(lambda: inspect(lab, "u2", "{{.State.Status}} {{.RestartCount}}")
                   == "running 1", 30, what="u2 restarted by its updated policy")
        rc, _, err = lab.docker("swarma", "update", "--restart", "sometimes", "u2",
                                check=False)
        assert rc != 0 and "invalid restart policy" in err, err
        # --rm: dockerd's conflict
        cid = lab.docker("swarma", "run", "-d", "--rm", "--name", "u3", "busybox",
                         "sleep", "1000")[1].strip()
        rc, _, err = lab.docker("swarma", "update", "--restart", "always", "u3",
                                check=False)
        assert rc != 0 and ("Cannot update container %s: Restart policy cannot be "
                            "updated because AutoRemove is enabled for the "
                            "container" % cid) in err, err
        lab.docker("swarma", "rm", "-f", "u1", "u2", "u3")
        # a task's container: resources as on dockerd, not a restart policy
        lab.init("swarma")
        lab.service("swarma", "create", "--detach", "--name", "svc", "busybox",
                    "sleep", "1000")
        def task_ctr():
            return lab.docker("swarma", "ps", "-q", "--filter",
                              "label=com.docker.swarm.service.name=svc")[1].strip()
        tid = wait_until(task_ctr, 60, what="svc's task container")
        wait_until(lambda: inspect(lab, tid, "{{.State.Status}}") == "running", 30,
                   what="svc's task running")
        lab.docker("swarma", "update", "--cpus", "0.5", tid)
        tpid = lab.container_pid("swarma", tid)
        assert cgroup_file(lab, tpid, "cpu", "cpu.cfs_quota_us") == "50000"
        rc, _, err = lab.docker("swarma", "update", "--restart", "always", tid,
                                check=False)
        assert rc != 0 and "the restart policy of a swarm task's container is its " \
            "service's" in err, err
        alive(lab)


@timeout(300)
def test_commit_files_changes_and_history():
    with one_host() as lab:
        lab.docker("swarma", "pull", "busybox", timeout=120)
        lab.docker("swarma", "run", "-d", "--name", "c1", "busybox", "sh", "-c",
                   "echo added > /added; echo 'x:x:1234:1234::/:/bin/sh' >> /etc/passwd; "
                   "rm /bin/vi; rm -rf /var; mkdir /var; echo only > /var/only; "
                   "touch /ready; sleep 1000")
        wait_until(lambda: lab.docker("swarma", "exec", "c1", "test", "-f", "/ready",
                                      check=False)[0] == 0, 20, what="c1's changes")
        rc, out, err = lab.docker("swarma", "commit", "-a", "Ann <ann@example.com>",
                                  "-m", "my change", "-c", 'CMD ["cat", "/added"]',
                                  "-c", "ENV FOO=bar", "-c", "LABEL team=blue",
                                  "-c", "EXPOSE 8080", "-c", "WORKDIR /tmp",
                                  "c1", "mine:v1", check=False, timeout=120)
        assert rc == 0 and out.strip().startswith("sha256:"), (rc, out, err)
        image_id = out.strip()
        # paused during the commit, running again after it
        assert inspect(lab, "c1", "{{.State.Status}}") == "running"
        # the new image's files: added, changed, deleted, the opaque dir
        out = lab.docker("swarma", "run", "--rm", "mine:v1")[1]
        assert out == "added\n", repr(out)
        out = lab.docker("swarma", "run", "--rm", "mine:v1", "sh", "-c",
                         "grep -c x:x:1234 /etc/passwd; ls /bin/vi 2>/dev/null; "
                         "echo vi=$?; ls /var; echo $FOO; pwd; ls /ready")[1]
        assert out.split() == ["1", "vi=1", "only", "bar", "/tmp", "/ready"], out
        img = json.loads(lab.docker("swarma", "image", "inspect", "mine:v1")[1])[0]
        assert img["Id"] == image_id, img["Id"]
        cfg = img["Config"]
        assert cfg["Cmd"] == ["cat", "/added"], cfg
        assert "FOO=bar" in cfg["Env"] and cfg["Labels"]["team"] == "blue", cfg
        assert "8080/tcp" in cfg["ExposedPorts"] and cfg["WorkingDir"] == "/tmp", cfg
        assert img["Author"] == "Ann <ann@example.com>", img
        base = json.loads(lab.docker("swarma", "image", "inspect", "busybox")[1])[0]
        assert len(img["RootFS"]["Layers"]) == len(base["RootFS"]["Layers"]) + 1
        rows = lab.docker("swarma", "history", "--no-trunc", "--format",
                          "{{.CreatedBy}}|{{.Comment}}|{{.Size}}", "mine:v1")[1].splitlines()
        assert len(rows) >= 2, rows
        by, comment, size = rows[0].split("|")
        assert by.startswith("sh -c echo added > /added") and comment == "my change", rows
        assert size != "0B", rows
        # nothing changed: an empty step, 0B
        lab.docker("swarma", "create", "--name", "c2", "busybox", "true")
        out = lab.docker("swarma", "commit", "--pause=false", "c2", "empty")[1]
        assert out.strip().startswith("sha256:")
        size = lab.docker("swarma", "history", "--format", "{{.Size}}", "empty")[1].split()[0]
        assert size == "0B", size
        # bad input: dockerd's messages, the daemon stays up
        rc, _, err = lab.docker("swarma", "commit", "-c", "RUN echo hi", "c1", "bad",
                                check=False)
        assert rc != 0 and "run is not a valid change command" in err, err
        rc, _, err = lab.docker("swarma", "commit", "nosuch", "x", check=False)
        assert rc != 0 and "No such container: nosuch" in err, err
        rc, _, err = lab.docker("swarma", "commit", "c1", "Bad:Name", check=False)
        assert rc != 0, err
        lab.docker("swarma", "rm", "-f", "c1", "c2")
        # the committed image outlives its container
        assert lab.docker("swarma", "run", "--rm", "mine:v1")[1] == "added\n"
        alive(lab)
