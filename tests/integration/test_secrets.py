"""Secrets and configs with the stock docker CLI on a 2-node lab cluster:
create (stdin, file), ls, inspect without the data, rm (refused while a
service uses it), services with --secret / --config and their files in
the task (content, owner, mode, on a tmpfs), nothing of the value on any
node's disk or on a node without such a task, --secret-add/--secret-rm
rolling the task, and a task keeping its secrets across a shoald restart.

The task never prints a secret: it prints its md5 sum, so the value
itself must appear nowhere on disk (container logs included)."""

import base64
import hashlib
import json
import os
import re
import subprocess

from lib import SEED, ServiceLab, timeout, wait_until

HOSTS = {"swarma": SEED["swarma"], "swarmb": SEED["swarmb"]}
PRE = "Error response from daemon: "
VALUE1 = "s3cr3t-one-7f2c9a0e"
VALUE2 = "s3cr3t-two-c41b77d2"
CONFIG = "listen 8080;\nworkers 4;\n"


def md5(s):
    return hashlib.md5(s.encode()).hexdigest()


def docker_in(lab, host, *args, input=None, check=True):
    """The docker CLI with stdin (secret create NAME -)."""
    p = subprocess.run(["/usr/local/bin/docker", "-H", "unix://" + lab.sock(host)] + list(args),
                       input=input, capture_output=True, text=True, timeout=60)
    if check:
        assert p.returncode == 0, (args, p.stdout, p.stderr)
    return p.returncode, p.stdout, p.stderr


def logs_until(lab, svc, *words, secs=90):
    def ok():
        _, out, err = lab.service("swarma", "logs", "--raw", svc, check=False)
        out += err
        return out if all(w in out for w in words) else None
    return wait_until(ok, secs, interval=0.5, what="%s in the logs of %s" % (words, svc))


def task_pid(lab, host, svc):
    """PID of the running container of svc on host (docker ps there)."""
    def one():
        rows = [r for r in lab.ps(host) if r["NAMES"].startswith(svc + ".")]
        return rows[0]["NAMES"] if len(rows) == 1 else None
    name = wait_until(one, 60, what="one container of %s on %s" % (svc, host))
    return name, lab.container_pid(host, name)


def grep_tree(path, needle):
    """Files under path (seen from outside the hosts' mount namespaces, so
    only what is on disk) that contain needle."""
    p = subprocess.run(["grep", "-rlaF", "-D", "skip", needle, path], capture_output=True, text=True)
    return p.stdout.split()


def host_secret_mounts(lab, host):
    _, out, _ = lab.exec(host, "cat", "/proc/self/mounts")
    return [l for l in out.splitlines() if "/exec/secrets/" in l]


@timeout(420)
def test_secrets_and_configs():
    with ServiceLab(HOSTS) as lab:
        lab.cluster(("swarmb",))
        wait_until(lambda: sum(r["STATUS"] == "Ready" for r in lab.node_ls("swarma")) == 2, 30,
                   what="2 Ready nodes")

        # ---- create, ls, inspect, duplicates, bad input ----
        _, out, _ = docker_in(lab, "swarma", "secret", "create", "--label", "team=a", "s1", "-",
                              input=VALUE1)
        s1 = out.strip()
        assert re.fullmatch(r"[0-9a-z]{25}", s1), out
        path = os.path.join(lab.dir, "value2")
        with open(path, "w") as f:
            f.write(VALUE2)
        _, out, _ = lab.docker("swarma", "secret", "create", "s2", path)
        os.unlink(path)
        s2 = out.strip()
        rc, _, err = docker_in(lab, "swarma", "secret", "create", "s1", "-", input="x",
                               check=False)
        assert rc == 1 and err.strip() == PRE + "rpc error: code = AlreadyExists desc = " \
            "secret s1 already exists", err
        rc, _, err = docker_in(lab, "swarma", "secret", "create", "bad@name", "-", input="x",
                               check=False)
        assert rc != 0 and "invalid name, only 64 [a-zA-Z0-9-_.] characters allowed" in err, err
        st, r = lab.api("swarma", "POST", "/v1.47/secrets/create",
                        {"Name": "big", "Data": base64.b64encode(b"A" * 512000).decode()})
        assert (st, r["message"]) == (400, "rpc error: code = InvalidArgument desc = secret "
                                      "data must be larger than 0 and less than 512000 "
                                      "bytes"), (st, r)
        st, r = lab.api("swarma", "POST", "/v1.47/secrets/create",
                        {"Name": "drv", "Data": "eA==", "Driver": {"Name": "vault"}})
        assert st == 501 and "Driver" in r["message"], (st, r)

        _, out, _ = lab.docker("swarma", "secret", "ls", "--format", "{{.Name}} {{.ID}}")
        assert sorted(out.split("\n")[:-1]) == sorted(["s1 " + s1, "s2 " + s2]), out
        _, out, _ = lab.docker("swarma", "secret", "ls", "--filter", "label=team=a",
                               "--format", "{{.Name}}")
        assert out.split() == ["s1"], out
        _, out, _ = lab.docker("swarma", "secret", "inspect", "s1")
        obj = json.loads(out)[0]
        assert obj["ID"] == s1 and obj["Spec"] == {"Name": "s1", "Labels": {"team": "a"}}, obj
        assert VALUE1 not in out, out
        # by ID prefix, through the worker: refused as on any non-manager
        _, out, _ = lab.docker("swarma", "secret", "inspect", "--format", "{{.Spec.Name}}",
                               s2[:6])
        assert out.strip() == "s2", out
        rc, _, err = lab.docker("swarmb", "secret", "ls", check=False)
        assert rc == 1 and "This node is not a swarm manager" in err, err
        # only labels may change
        version = obj["Version"]["Index"]
        st, r = lab.api("swarma", "POST", "/v1.47/secrets/%s/update?version=%d" % (s1, version),
                        {"Name": "s1-renamed", "Labels": {}})
        assert (st, r["message"]) == (400, "rpc error: code = InvalidArgument desc = only "
                                      "updates to Labels are allowed"), (st, r)
        st, _ = lab.api("swarma", "POST", "/v1.47/secrets/%s/update?version=%d" % (s1, version),
                        {"Name": "s1", "Labels": {"team": "b"}})
        assert st == 200, st

        # ---- configs ----
        path = os.path.join(lab.dir, "app.conf")
        with open(path, "w") as f:
            f.write(CONFIG)
        lab.docker("swarma", "config", "create", "appconf", path)
        _, out, _ = lab.docker("swarma", "config", "inspect", "--pretty", "appconf")
        assert "Name:\t\t\tappconf" in out or re.search(r"^Name:\s+appconf$", out, re.M), out
        assert "Data:\n" + CONFIG in out, out

        # ---- a service using them, on swarma only ----
        lab.service("swarma", "create", "-d", "--name", "app",
                    "--constraint", "node.hostname==swarma",
                    "--secret", "s1",
                    "--secret", "source=s2,target=custom,uid=1000,gid=1001,mode=0400",
                    "--config", "source=appconf,target=/etc/app.conf,mode=0440",
                    "busybox", "sh", "-c",
                    "md5sum /run/secrets/s1 /run/secrets/custom; "
                    "stat -c 'mode %n %u:%g %a' /run/secrets/s1 /run/secrets/custom "
                    "/etc/app.conf; cat /etc/app.conf; "
                    "grep -E ' /run/secrets/| /etc/[a-z]+.conf' /proc/mounts; sleep 3600")
        out = logs_until(lab, "app", md5(VALUE1), md5(VALUE2), "workers 4", "/etc/app.conf tmpfs")
        assert re.search(r"^mode /run/secrets/s1 0:0 444$", out, re.M), out
        assert re.search(r"^mode /run/secrets/custom 1000:1001 400$", out, re.M), out
        assert re.search(r"^mode /etc/app.conf 0:0 440$", out, re.M), out
        for p in ("/run/secrets/s1", "/run/secrets/custom"):
            assert re.search(r"^\S+ %s tmpfs ro[,\s]" % re.escape(p), out, re.M), out

        # in use: refused with swarmkit's message
        rc, _, err = lab.docker("swarma", "secret", "rm", "s1", check=False)
        assert rc == 1 and err.strip() == PRE + "rpc error: code = InvalidArgument desc = " \
            "secret 's1' is in use by the following service: app", err
        rc, _, err = lab.docker("swarma", "config", "rm", "appconf", check=False)
        assert rc == 1 and "config 'appconf' is in use by the following service: app" in err, err
        # unknown secret and conflicting targets: refused at create
        st, r = lab.api("swarma", "POST", "/v1.47/services/create", {
            "Name": "bad", "TaskTemplate": {"ContainerSpec": {
                "Image": "busybox", "Secrets": [{"SecretID": "nosuchid", "SecretName": "nope",
                                                 "File": {"Name": "nope"}}]}}})
        assert (st, r["message"]) == (400, "rpc error: code = InvalidArgument desc = secret "
                                      "not found: nope"), (st, r)
        rc, _, err = lab.service("swarma", "create", "-d", "--name", "bad", "--secret",
                                 "source=s1,target=x", "--secret", "source=s2,target=x",
                                 "busybox", "true", check=False)
        assert rc == 1 and "duplicate secret target for s2 not allowed" in err, err  # the CLI's
        st, r = lab.api("swarma", "POST", "/v1.47/services/create", {
            "Name": "bad", "TaskTemplate": {"ContainerSpec": {
                "Image": "busybox", "Secrets": [
                    {"SecretID": s1, "SecretName": "s1", "File": {"Name": "x"}},
                    {"SecretID": s2, "SecretName": "s2", "File": {"Name": "x"}}]}}})
        assert (st, r["message"]) == (400, "rpc error: code = InvalidArgument desc = secret "
                                      "references 's1' and 's2' have a conflicting target: "
                                      "'x'"), (st, r)

        # Neither inspect of the container nor of the task shows a value.
        name, pid = task_pid(lab, "swarma", "app")
        _, out, _ = lab.docker("swarma", "inspect", name)
        assert VALUE1 not in out and VALUE2 not in out, out
        _, out, _ = lab.docker("swarma", "inspect", "--format",
                               "{{json .Mounts}} {{json .HostConfig.Mounts}}", name)
        assert "/run/secrets" not in out and "app.conf" not in out, out  # as dockerd
        _, out, _ = lab.service("swarma", "inspect", "app")
        assert VALUE1 not in out and VALUE2 not in out, out
        # On the node: a tmpfs of its own; the worker without the task has none.
        assert len(host_secret_mounts(lab, "swarma")) == 1, host_secret_mounts(lab, "swarma")
        assert host_secret_mounts(lab, "swarmb") == [], host_secret_mounts(lab, "swarmb")
        # Nothing of the values on any node's disk: data roots (raft log and
        # snapshots, container logs and layers), exec roots, daemon logs.
        for v in (VALUE1, VALUE2):
            assert grep_tree(lab.dir, v) == [], grep_tree(lab.dir, v)

        # ---- --secret-rm / --secret-add roll the task ----
        lab.service("swarma", "update", "-d", "--secret-rm", "s2", "app")
        out = logs_until(lab, "app", "No such file or directory")
        lab.service("swarma", "update", "-d", "--secret-add", "source=s2,target=again", "app")

        def rolled():
            _, o, e = lab.service("swarma", "logs", "--raw", "app", check=False)
            return "/run/secrets/again" in o + e or None
        wait_until(rolled, 90, what="the task with /run/secrets/again")
        _, out, _ = lab.service("swarma", "inspect", "--format",
                                "{{json .Spec.TaskTemplate.ContainerSpec.Secrets}}", "app")
        refs = json.loads(out)
        assert sorted(r["SecretName"] for r in refs) == ["s1", "s2"], refs
        assert [r["File"]["Name"] for r in refs if r["SecretName"] == "s2"] == ["again"], refs
        # --config-rm / --config-add, in one update
        lab.service("swarma", "update", "-d", "--config-rm", "appconf", "--config-add",
                    "source=appconf,target=/etc/other.conf", "app")

        def rolled_config():
            _, o, e = lab.service("swarma", "logs", "--raw", "app", check=False)
            return " /etc/other.conf tmpfs ro" in o + e or None
        wait_until(rolled_config, 90, what="the task with /etc/other.conf")
        _, out, _ = lab.service("swarma", "inspect", "--format",
                                "{{json .Spec.TaskTemplate.ContainerSpec.Configs}}", "app")
        assert [r["File"]["Name"] for r in json.loads(out)] == ["/etc/other.conf"], out
        # The replaced tasks' containers stay, exited, while their tasks
        # are in history (as on Docker: `docker ps -a`), but their secret
        # files went with their exit: one tmpfs, the running task's.
        def one_each():
            ctrs = [r for r in lab.ps("swarma") if r["NAMES"].startswith("app.")]
            exited = [r for r in lab.ps("swarma", "-a") if r["NAMES"].startswith("app.")
                      and r["STATUS"].startswith("Exited")]
            mounts = host_secret_mounts(lab, "swarma")
            return (len(ctrs), len(mounts)) == (1, 1) and len(exited) >= 2 or None
        wait_until(one_each, 60, what="one running container and one secret tmpfs of app")

        # ---- a restart: the running task keeps its secrets ----
        name, pid = task_pid(lab, "swarma", "app")
        lab.restart("swarma")
        wait_until(lambda: lab.docker("swarma", "node", "ls", check=False)[0] == 0, 30,
                   what="the manager back")
        _, out, _ = lab.exec("swarma", "cat", "/proc/%d/mounts" % pid)
        assert " /run/secrets/s1 tmpfs " in out, out
        _, out, _ = lab.exec("swarma", "nsenter", "-t", str(pid), "-m", "md5sum",
                             "/run/secrets/s1")
        assert md5(VALUE1) in out, out

        # ---- rm: the service, then its secrets; nothing stays mounted ----
        lab.service("swarma", "rm", "app")
        wait_until(lambda: host_secret_mounts(lab, "swarma") == [] or None, 60,
                   what="the secret tmpfs unmounted")
        lab.docker("swarma", "secret", "rm", "s1", "s2")
        lab.docker("swarma", "config", "rm", "appconf")
        _, out, _ = lab.docker("swarma", "secret", "ls", "-q")
        assert out.strip() == "", out
