"""`--with-registry-auth` as a Swarm user runs it with the stock docker CLI:
a private image on a registry that wants a login (htpasswd basic auth) is
refused to a service created without credentials, runs on a worker once the
service is created after `docker login` with the flag, the credentials never
show in inspect output, events or logs, and a later `service update --image`
without the flag still pulls with the credentials kept in the service;
`stack deploy --with-registry-auth` likewise."""

import json
import os
import re
import subprocess
import tempfile
import time

from lib import (DOCKER, IMAGES_DIR, REGISTRY_HOST, REGISTRY_IP, REGISTRY_SH, ServiceLab, run,
                 timeout, wait_until)

HOSTS = {"swarma": "192.168.33.10", "swarmb": "192.168.33.11"}
PRIVATE = REGISTRY_IP + ":5001"
USER, PASSWORD = "alice", "Pw-9f3c1e77-not-in-any-output"


def htpasswd(path):
    import crypt  # bcrypt through libxcrypt: what distribution's htpasswd wants
    with open(path, "w") as f:
        f.write("%s:%s\n" % (USER, crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH))))


def push_private(lab, tag):
    lab.exec(REGISTRY_HOST, "skopeo", "--insecure-policy", "copy", "-q", "--dest-tls-verify=false",
             "--dest-creds", "%s:%s" % (USER, PASSWORD), "--format", "v2s2",
             "oci:%s/busybox:latest" % IMAGES_DIR, "docker://%s/private/busybox:%s" % (PRIVATE, tag),
             timeout=120)


def task_rows(lab, name):
    _, out, _ = lab.service("swarma", "ps", "--no-trunc", "--format",
                            "{{.Node}}|{{.Image}}|{{.DesiredState}}|{{.CurrentState}}|{{.Error}}",
                            name)
    return [l.split("|") for l in out.splitlines() if l]


@timeout(420)
def test_with_registry_auth():
    with ServiceLab(HOSTS, shoald_args="--insecure-registry " + PRIVATE) as lab:
        regdir = os.path.join(lab.dir, REGISTRY_HOST, "private-registry")
        os.makedirs(regdir)
        htpasswd(os.path.join(regdir, "htpasswd"))
        lab.exec(REGISTRY_HOST, REGISTRY_SH, "start", os.path.join(regdir, "reg"), PRIVATE,
                 os.path.join(regdir, "htpasswd"), timeout=30)
        try:
            push_private(lab, "v1")
            push_private(lab, "v2")
            push_private(lab, "v3")
            run_test(lab)
        finally:
            subprocess.run([REGISTRY_SH, "stop", os.path.join(regdir, "reg")], capture_output=True)


def run_test(lab):
    lab.cluster(("swarmb",))
    wait_until(lambda: sum(r["STATUS"] == "Ready" for r in lab.node_ls("swarma")) == 2, 30,
               what="2 Ready nodes")
    image = "%s/private/busybox:v1" % PRIVATE

    # No credentials: the node's pull gets the registry's 401, the task fails
    # with it (service ps --no-trunc shows it), nothing runs.
    lab.service("swarma", "create", "-d", "--name", "noauth", "--constraint", "node.role==worker",
                image, "sleep", "1000")

    def refused():
        rows = task_rows(lab, "noauth")
        assert any("unauthorized: authentication required" in r[4] for r in rows), rows
        assert not any(r[3].startswith("Running") for r in rows), rows
        return rows
    rows = wait_until(refused, 90, what="the noauth task refused with the registry's 401")
    assert all(r[0] == "swarmb" for r in rows), rows
    lab.service("swarma", "rm", "noauth")

    # docker login goes through the daemon's POST /auth (a CLI config of its
    # own: the credentials land in its config.json).
    cfg = tempfile.mkdtemp(prefix="shoal-it-regauth-")
    env = {"DOCKER_CONFIG": cfg}

    def docker(*args, check=True, input=None):
        return run([DOCKER, "-H", "unix://" + lab.sock("swarma")] + list(args), check=check,
                   env=env, input=input, timeout=120)
    rc, out, err = docker("login", "-u", USER, "--password-stdin", PRIVATE, check=False,
                          input="wrong-password\n")
    assert rc != 0, (out, err)
    assert ("login attempt to http://%s/v2/ failed with status: 401 Unauthorized" % PRIVATE) in err, err
    _, out, err = docker("login", "-u", USER, "--password-stdin", PRIVATE, input=PASSWORD + "\n")
    assert "Login Succeeded" in out + err, (out, err)
    with open(os.path.join(cfg, "config.json")) as f:
        assert PRIVATE in json.load(f).get("auths", {}), "no login stored"

    # With the flag: the CLI sends X-Registry-Auth (and pins the digest with
    # it); the task runs on the worker, which pulled with the credentials.
    _, out, err = docker("service", "create", "-d", "--with-registry-auth", "--name", "priv",
                         "--constraint", "node.role==worker", image, "sleep", "1000")
    assert "could not be accessed on a registry" not in out + err, (out, err)

    def running(name, tag):
        rows = task_rows(lab, name)
        cur = [r for r in rows if r[2] == "Running"]
        assert len(cur) == 1 and cur[0][3].startswith("Running"), rows
        assert cur[0][0] == "swarmb" and (":%s" % tag) in cur[0][1], rows
        return rows
    wait_until(lambda: running("priv", "v1"), 90, what="priv running on the worker")
    # Pinned by digest (the CLI resolved it with the credentials), so the
    # node lists it without a tag, as Docker's do.
    _, imgs, _ = lab.docker("swarmb", "images", "--digests", "--format",
                            "{{.Repository}} {{.Digest}}")
    assert re.search(r"^%s/private/busybox sha256:[0-9a-f]{64}$" % re.escape(PRIVATE), imgs,
                     re.M), imgs

    # Hidden from every view, as on Docker.
    leaks = []
    _, svc, _ = lab.docker("swarma", "service", "inspect", "priv")
    leaks.append(("service inspect", svc))
    _, tasks = lab.api("swarma", "GET", '/tasks?filters={"service":["priv"]}')
    leaks.append(("tasks", json.dumps(tasks)))
    _, svcs = lab.api("swarma", "GET", "/services?status=true")
    leaks.append(("service ls", json.dumps(svcs)))
    cid = lab.docker("swarmb", "ps", "-q", "--filter", "label=com.docker.swarm.service.name=priv")[1].split()
    assert len(cid) == 1, cid
    leaks.append(("container inspect", lab.docker("swarmb", "inspect", cid[0])[1]))

    # Update without the flag (the CLI asks registryAuthFrom=spec): the auth
    # stored with the service is kept, so the worker pulls :v2 with it.
    _, out, err = docker("service", "update", "-d", "--image", "%s/private/busybox:v2" % PRIVATE,
                         "priv")
    wait_until(lambda: running("priv", "v2"), 120, what="priv updated to :v2 on the worker")
    _, imgs, _ = lab.docker("swarmb", "images", "--format", "{{.Repository}}:{{.Tag}}")
    assert "%s/private/busybox:v2" % PRIVATE in imgs.split(), imgs
    _, svc, _ = lab.docker("swarma", "service", "inspect", "priv")
    leaks.append(("service inspect after update", svc))
    # registryAuthFrom is checked as moby does.
    st, body = lab.api("swarma", "GET", "/services/priv")
    spec, ver = body["Spec"], body["Version"]["Index"]
    st, body = lab.api("swarma", "POST", "/services/priv/update?version=%d&registryAuthFrom=bogus" % ver,
                       spec)
    assert st == 400 and body["message"] == "unsupported registryAuthFrom value", (st, body)
    st, body = lab.api("swarma", "POST", "/services/priv/update?version=%d" % ver, spec,
                       headers={"X-Registry-Auth": "%%%not-base64"})
    assert st == 400 and body["message"].startswith("invalid X-Registry-Auth header"), (st, body)

    # stack deploy --with-registry-auth: the same header with each service.
    compose = os.path.join(cfg, "compose.yml")
    with open(compose, "w") as f:
        f.write("version: '3.8'\nservices:\n  app:\n    image: %s/private/busybox:v3\n"
                "    command: sleep 1000\n    deploy:\n      placement:\n"
                "        constraints: [node.role == worker]\n" % PRIVATE)
    docker("stack", "deploy", "--with-registry-auth", "--detach=true", "-c", compose, "st")
    wait_until(lambda: running("st_app", "v3"), 90, what="st_app running on the worker")
    leaks.append(("stack service inspect", lab.docker("swarma", "service", "inspect", "st_app")[1]))

    _, events, _ = lab.docker("swarma", "events", "--since", "10m", "--until",
                              str(int(time.time())))
    leaks.append(("events", events))
    for h in HOSTS:
        leaks.append(("shoald log of " + h, lab.logs(h)))
    for what, text in leaks:
        assert PASSWORD not in text, "the password shows in " + what
        assert not re.search(r"RegistryAuth|PullOptions", text), "registry auth shows in " + what
