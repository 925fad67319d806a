"""The node's image commands with the stock docker CLI against one node's
shoald, as a Swarm user runs them: rmi (in-use refusals with Docker's
messages while a task runs, untag only the name given), tag, history,
image inspect against the API, images filters, save -> rmi -> load and a
service that runs the loaded image, push and login/logout against a
registry with basic auth (htpasswd), system df, image prune, and the image
events of all that."""

import crypt
import json
import os
import re
import tarfile
import tempfile
import time
import warnings

from lib import (REGISTRY_ADDR, REGISTRY_HOST, REGISTRY_IP, REGISTRY_SH, ServiceLab, run, timeout,
                 wait_until)

AUTH_ADDR = REGISTRY_IP + ":5001"
HOSTS = {"swarma": "192.168.33.10"}


def start_auth_registry(lab, user, password):
    """A second docker-registry on the registry host, port 5001, with
    htpasswd (bcrypt) basic auth. Returns its PID."""
    d = os.path.join(lab.dir, REGISTRY_HOST, "authreg")
    os.makedirs(os.path.join(d, "data"), exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))
    with open(os.path.join(d, "htpasswd"), "w") as f:
        f.write("%s:%s\n" % (user, hashed))
    with open(os.path.join(d, "config.yml"), "w") as f:
        f.write("""version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s/data
  delete:
    enabled: true
auth:
  htpasswd:
    realm: shoal-test
    path: %s/htpasswd
http:
  addr: %s
""" % (d, d, AUTH_ADDR))
    _, out, _ = lab.exec(REGISTRY_HOST, "sh", "-c",
                         "setsid docker-registry serve %s/config.yml >%s/log 2>&1 </dev/null & echo $!"
                         % (d, d))
    pid = int(out.strip())

    def up():
        rc, out, _ = lab.exec(REGISTRY_HOST, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                              "http://%s/v2/" % AUTH_ADDR, check=False)
        return out.strip() == "401"
    wait_until(up, timeout=15, what="the auth registry")
    return pid


def image_events(lab, since):
    until = "%.9f" % time.time()
    _, out, _ = lab.docker("swarma", "events", "--since", "%.9f" % since, "--until", until,
                           "--filter", "type=image", "--format", "{{json .}}", timeout=30)
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def running_container(lab, service):
    def find():
        rows = lab.ps("swarma", "--filter", "label=com.docker.swarm.service.name=" + service)
        return rows[0] if rows and rows[0]["STATUS"].startswith("Up") else None
    return wait_until(find, timeout=90, what="a running task of " + service)


@timeout(600)
def test_image_commands():
    with ServiceLab(HOSTS, shoald_args="--insecure-registry " + AUTH_ADDR) as lab:
        lab.init("swarma")
        t0 = time.time()
        lab.service("swarma", "create", "--detach", "--name", "web", "busybox", "sleep", "3600")
        ctr = running_container(lab, "web")
        cid = ctr["CONTAINER ID"]
        # The task's image is pulled by digest (no tag, as on Docker); a
        # user's pull gives it its name.
        lab.docker("swarma", "pull", "busybox", timeout=120)
        img = lab.docker("swarma", "image", "inspect", "-f", "{{.Id}}", "busybox")[1].strip()
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", img), img
        short = img[7:19]

        # A task's image pinned as a service pins it (name:tag@digest) and
        # on the node already starts with the registry away: found by its
        # digest, nothing pulled (dockerd's executor skips the pull so).
        pinned = lab.service("swarma", "inspect", "-f", "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
                             "web")[1].strip()
        assert re.fullmatch(r"busybox:latest@sha256:[0-9a-f]{64}", pinned), pinned
        assert lab.docker("swarma", "image", "inspect", "-f", "{{.Id}}", pinned)[1].strip() == img
        run([REGISTRY_SH, "stop", lab.registry_dir])
        try:
            lab.service("swarma", "create", "--detach", "--name", "pinned", "--no-resolve-image",
                        pinned, "sleep", "3600")
            running_container(lab, "pinned")
        finally:
            lab.exec(REGISTRY_HOST, REGISTRY_SH, "start", lab.registry_dir, REGISTRY_ADDR, timeout=30)
        lab.service("swarma", "rm", "pinned")
        wait_until(lambda: not lab.ps("swarma", "-a", "--filter", "label=com.docker.swarm.service.name=pinned"),
                   timeout=60, what="the pinned service's container gone")

        # rmi of the only name of a running task's image: Docker's refusal.
        rc, _, err = lab.docker("swarma", "rmi", "busybox", check=False)
        assert rc == 1, (rc, err)
        assert err.strip() == ('Error response from daemon: conflict: unable to remove repository '
                               'reference "busybox" (must force) - container %s is using its '
                               'referenced image %s' % (cid, short)), err
        rc, _, err = lab.docker("swarma", "rmi", "-f", img, check=False)
        assert rc == 1
        assert err.strip() == ("Error response from daemon: conflict: unable to delete %s (cannot be "
                               "forced) - image is being used by running container %s" % (short, cid)), err
        st, body = lab.api("swarma", "DELETE", "/v1.47/images/busybox")
        assert st == 409 and "must force" in body["message"], (st, body)
        # The task is unharmed, no replacement.
        assert running_container(lab, "web")["CONTAINER ID"] == cid
        assert len(lab.service_ps("web")) == 1

        # tag, and rmi of a tag untags only it.
        lab.docker("swarma", "tag", "busybox", "mybox:v1")
        lab.docker("swarma", "tag", img, "mybox:v2")
        tags = lab.docker("swarma", "image", "inspect", "-f", "{{json .RepoTags}}", "busybox")[1]
        assert sorted(json.loads(tags)) == ["busybox:latest", "mybox:v1", "mybox:v2"], tags
        _, out, _ = lab.docker("swarma", "rmi", "mybox:v1")
        assert out.strip() == "Untagged: mybox:v1", out
        rc, _, err = lab.docker("swarma", "tag", "nosuch", "x:1", check=False)
        assert rc == 1 and "No such image: nosuch" in err, err

        # images filters
        _, out, _ = lab.docker("swarma", "images", "--filter", "reference=mybox", "--format",
                               "{{.Repository}}:{{.Tag}}")
        assert out.split() == ["mybox:v2"], out
        _, out, _ = lab.docker("swarma", "images", "--filter", "dangling=true", "-q")
        assert out.strip() == "", out
        _, out, _ = lab.docker("swarma", "images", "--filter", "label=nosuchlabel", "-q")
        assert out.strip() == "", out
        rc, _, err = lab.docker("swarma", "images", "--filter", "bogus=1", check=False)
        assert rc == 1 and "invalid filter 'bogus'" in err, err

        # history from the image config, inspect against the API
        _, out, _ = lab.docker("swarma", "history", "--no-trunc", "--format",
                               "{{.ID}}|{{.CreatedBy}}|{{.Size}}", "busybox")
        rows = [l.split("|") for l in out.splitlines()]
        st, hist = lab.api("swarma", "GET", "/v1.47/images/busybox/history")
        assert st == 200 and len(rows) == len(hist) >= 1, (rows, hist)
        assert rows[0][0] == img and hist[0]["Id"] == img
        assert all(r[0] == "<missing>" for r in rows[1:]), rows
        assert [r[1] for r in rows] == [h["CreatedBy"] for h in hist]
        assert sum(h["Size"] for h in hist) > 0
        st, ins = lab.api("swarma", "GET", "/v1.47/images/busybox/json")
        _, out, _ = lab.docker("swarma", "image", "inspect", "busybox")
        cli = json.loads(out)[0]
        for k in ("Id", "RepoTags", "Size", "Os", "Architecture", "Created"):
            assert cli[k] == ins[k], (k, cli[k], ins[k])
        assert cli["RootFS"]["Layers"] == ins["RootFS"]["Layers"] and len(ins["RootFS"]["Layers"]) >= 1

        # save -> rmi -> load -> a service runs the loaded image
        lab.docker("swarma", "pull", "nginx", timeout=120)
        nginx = lab.docker("swarma", "image", "inspect", "-f", "{{.Id}}", "nginx")[1].strip()
        tmp = tempfile.mkdtemp(prefix="shoal-it-save-")
        tar = os.path.join(tmp, "nginx.tar")
        lab.docker("swarma", "save", "-o", tar, "nginx", timeout=120)
        with tarfile.open(tar) as t:
            names = t.getnames()
            manifest = json.load(t.extractfile("manifest.json"))
            repos = json.load(t.extractfile("repositories"))
        assert manifest[0]["RepoTags"] == ["nginx:latest"], manifest
        assert manifest[0]["Config"] == "blobs/sha256/" + nginx[7:], manifest
        assert all(l in names for l in manifest[0]["Layers"]), (manifest, names)
        assert "latest" in repos["nginx"], repos
        # An independent reader checks the archive: skopeo's docker-archive.
        rc, out, err = run(["skopeo", "inspect", "--config", "docker-archive:" + tar], check=False)
        assert rc == 0, err
        assert json.loads(out)["rootfs"]["diff_ids"] == ins_layers(lab, "nginx"), out
        # By ID: no names, as Docker; an unknown name: 404 before any byte.
        st, _ = lab.api("swarma", "GET", "/v1.47/images/get?names=nosuch")
        assert st == 404, st
        _, out, _ = lab.docker("swarma", "rmi", "nginx")
        assert "Untagged: nginx:latest" in out and "Deleted: " + nginx in out, out
        rc, _, err = lab.docker("swarma", "image", "inspect", "nginx", check=False)
        assert rc == 1 and "No such image: nginx" in err, err
        _, out, _ = lab.docker("swarma", "load", "-i", tar, timeout=120)
        assert out.strip() == "Loaded image: nginx:latest", out
        assert lab.docker("swarma", "image", "inspect", "-f", "{{.Id}}", "nginx")[1].strip() == nginx
        # The loaded image runs (the mirror has nginx too: make sure the
        # service uses the local one, by its ID).
        lab.service("swarma", "create", "--detach", "--name", "web2", "--no-resolve-image", nginx)
        c2 = running_container(lab, "web2")
        pid = lab.container_pid("swarma", c2["CONTAINER ID"])
        assert "Welcome to nginx!" in lab.fetch_in_container("swarma", pid)
        # A second save of the loaded image is byte-for-byte the same
        # content (its layers kept as loaded).
        tar2 = os.path.join(tmp, "again.tar")
        lab.docker("swarma", "save", "-o", tar2, "nginx:latest", timeout=120)
        with tarfile.open(tar2) as t:
            assert json.load(t.extractfile("manifest.json")) == manifest

        # before / since: by the images' Created, as the API lists them
        st, listed = lab.api("swarma", "GET", "/v1.47/images/json")
        created = {i["Id"]: i["Created"] for i in listed}
        for flt, ref, keep in (("before", "nginx", lambda c: c < created[nginx]),
                               ("since", "busybox", lambda c: c > created[img])):
            _, out, _ = lab.docker("swarma", "images", "-q", "--no-trunc", "--filter",
                                   "%s=%s" % (flt, ref))
            want = {i for i, c in created.items() if keep(c)}
            assert set(out.split()) == want, (flt, out, created)

        # login / push / logout against a registry with basic auth
        pid_reg = start_auth_registry(lab, "tester", "s3cret")
        try:
            rc, _, err = lab.docker("swarma", "login", AUTH_ADDR, "-u", "tester", "-p", "wrong",
                                    check=False)
            assert rc == 1, err
            assert ("Error response from daemon: login attempt to http://%s/v2/ failed with "
                    "status: 401 Unauthorized" % AUTH_ADDR) in err, err
            _, out, _ = lab.docker("swarma", "login", AUTH_ADDR, "-u", "tester", "-p", "s3cret")
            assert "Login Succeeded" in out, out
            target = AUTH_ADDR + "/me/box:1"
            lab.docker("swarma", "tag", "busybox", target)
            _, out, _ = lab.docker("swarma", "push", target, timeout=120)
            assert "The push refers to repository [%s/me/box]" % AUTH_ADDR in out, out
            m = re.search(r"^1: digest: (sha256:[0-9a-f]{64}) size: (\d+)$", out, re.M)
            assert m, out
            _, out, _ = lab.exec(REGISTRY_HOST, "skopeo", "inspect", "--tls-verify=false",
                                 "--creds", "tester:s3cret", "--config", "docker://" + target)
            assert "sha256:" + json.loads(out)["rootfs"]["diff_ids"][0][7:] == \
                ins_layers(lab, "busybox")[0], out
            # Pushed again: the registry has every blob.
            _, out, _ = lab.docker("swarma", "push", target, timeout=120)
            assert "Layer already exists" in out, out
            lab.docker("swarma", "logout", AUTH_ADDR)
            rc, out, err = lab.docker("swarma", "push", target, check=False, timeout=120)
            assert rc == 1 and "unauthorized" in (out + err), (out, err)
            rc, _, err = lab.docker("swarma", "push", AUTH_ADDR + "/me/nosuch:1", check=False)
            assert rc == 1 and "An image does not exist locally with the tag: %s/me/nosuch" % AUTH_ADDR in err, err
        finally:
            lab.exec(REGISTRY_HOST, "kill", str(pid_reg), check=False)

        # system df: the image store's and the executor's numbers
        st, df = lab.api("swarma", "GET", "/v1.47/system/df")
        assert st == 200 and df["LayersSize"] > 0, df
        by_id = {i["Id"]: i for i in df["Images"]}
        assert by_id[img]["Containers"] == 1 and by_id[nginx]["Containers"] == 1, by_id
        assert {c["Id"][:12] for c in df["Containers"]} >= {cid, c2["CONTAINER ID"]}, df["Containers"]
        _, out, _ = lab.docker("swarma", "system", "df", "--format", "{{.Type}}|{{.TotalCount}}|{{.Active}}")
        rows = {l.split("|")[0]: l.split("|")[1:] for l in out.splitlines()}
        assert rows["Images"] == [str(len(df["Images"])), "2"], rows
        assert rows["Containers"][1] == "2", rows
        _, out, _ = lab.docker("swarma", "system", "df", "-v")
        assert re.search(r"^nginx +latest +%s " % nginx[7:19], out, re.M) and cid in out, out

        # prune: nothing dangling; -a keeps what tasks use, takes the rest
        _, out, _ = lab.docker("swarma", "image", "prune", "-f")
        assert out.strip() == "Total reclaimed space: 0B", out
        # A dangling image: nginx's archive with a label added to the
        # config (a new image ID, the same layers) and no name.
        dang_tar = os.path.join(tmp, "dangling.tar")
        dang = relabel(tar, dang_tar, {"shoal.test": "dangling"})
        _, out, _ = lab.docker("swarma", "load", "-i", dang_tar)
        assert out.strip() == "Loaded image ID: " + dang, out
        _, out, _ = lab.docker("swarma", "images", "--filter", "dangling=true", "-q", "--no-trunc")
        assert out.split() == [dang], out
        _, out, _ = lab.docker("swarma", "images", "--filter", "label=shoal.test=dangling", "-q",
                               "--no-trunc")
        assert out.split() == [dang], out
        _, out, _ = lab.docker("swarma", "image", "prune", "-f", "--filter", "label=shoal.test=other")
        assert out.strip() == "Total reclaimed space: 0B", out
        _, out, _ = lab.docker("swarma", "image", "prune", "-f")
        assert "deleted: " + dang in out.lower(), out
        assert "Total reclaimed space: 0B" in out, out  # its layers are nginx's
        _, out, _ = lab.docker("swarma", "image", "prune", "-a", "-f")
        assert "Total reclaimed space:" in out, out
        _, out, _ = lab.docker("swarma", "images", "-q", "--no-trunc")
        left = set(out.split())
        assert left == {img, nginx}, left
        # container prune: a finished task's exited container goes (as on
        # Docker), running ones stay.
        lab.service("swarma", "create", "--detach", "--name", "once", "--restart-condition", "none",
                    "busybox", "true")
        done = wait_until(lambda: [r for r in lab.ps("swarma", "-a") if r["STATUS"].startswith("Exited")],
                          timeout=90, what="the finished task's container")
        gone = done[0]["CONTAINER ID"]
        _, out, _ = lab.docker("swarma", "container", "prune", "-f")
        assert out.startswith("Deleted Containers:\n" + gone), out
        assert "Total reclaimed space:" in out, out
        assert gone not in lab.docker("swarma", "ps", "-a", "-q")[1]
        assert {r["CONTAINER ID"] for r in lab.ps("swarma")} == {cid, c2["CONTAINER ID"]}
        rc, out, err = lab.docker("swarma", "system", "prune", "-f", check=False)
        assert rc == 0, (out, err)
        assert "Total reclaimed space:" in out, out
        # ... and once the tasks are gone, everything.
        lab.service("swarma", "rm", "web", "web2", "once")
        wait_until(lambda: not lab.ps("swarma", "-a"), timeout=60, what="task containers removed")
        _, out, _ = lab.docker("swarma", "image", "prune", "-a", "-f")
        assert "deleted: " + img in out and "deleted: " + nginx in out, out
        m = re.search(r"Total reclaimed space: (\S+)", out)
        assert m and m.group(1) != "0B", out
        assert lab.docker("swarma", "images", "-q")[1].strip() == ""
        st, df = lab.api("swarma", "GET", "/v1.47/system/df")
        assert df["LayersSize"] == 0 and df["Images"] == [], df

        # image events of all that, as dockerd logs them
        evs = image_events(lab, t0)
        acts = [(e["Action"], e["Actor"]["Attributes"].get("name")) for e in evs]
        for want in [("tag", "mybox:v1"), ("untag", img), ("pull", "nginx:latest"),
                     ("save", nginx), ("delete", nginx), ("load", nginx),
                     ("push", AUTH_ADDR + "/me/box:1"), ("delete", img)]:
            assert want in acts, (want, acts)
        assert any(e["Action"] == "prune" for e in evs), acts
        _, out, _ = lab.docker("swarma", "events", "--since", "%.9f" % t0, "--until", "%.9f" % time.time(),
                               "--filter", "type=container", "--filter", "event=destroy",
                               "--format", "{{.Actor.ID}}", timeout=30)
        assert any(l.startswith(gone) for l in out.split()), out

        # Idle again, the daemon closes what the pulls, saves and loads
        # opened (libcurl, libarchive and the ~150 libraries under them,
        # libnftables), and the next pull opens libcurl again; its layers
        # unpack in a child process, so libarchive stays out of the daemon
        # (a pull alone never maps the libstdc++ that ICU brings and that
        # never unloads; the save and load above did). The socket's group
        # came from /etc/group and a child's NSS lookup: no NSS module is
        # mapped.
        def maps():
            with open("/proc/%d/maps" % lab.pid("swarma")) as f:
                return f.read()
        wait_until(lambda: all(l not in maps() for l in ("libcurl", "libarchive", "libnftables")),
                   timeout=60, what="libcurl, libarchive and libnftables closed once idle")
        lab.docker("swarma", "pull", "busybox", timeout=120)
        assert lab.docker("swarma", "image", "inspect", "-f", "{{.Id}}", "busybox")[1].strip() == img
        m = maps()
        assert "libcurl" in m, "the pull did not go through the daemon's libcurl"
        for lib in ("libarchive", "libnss_"):
            assert lib not in m, "%s mapped in shoald after a pull" % lib


def relabel(src, dst, labels):
    """Copies a docker-archive with labels added to its image's config and
    no RepoTags; returns the new image ID."""
    import hashlib
    import io
    with tarfile.open(src) as t:
        manifest = json.load(t.extractfile("manifest.json"))
        cfg = json.load(t.extractfile(manifest[0]["Config"]))
        members = [(m, t.extractfile(m).read()) for m in t.getmembers() if m.isfile()]
    cfg.setdefault("config", {})
    if not cfg["config"].get("Labels"):
        cfg["config"]["Labels"] = {}
    cfg["config"]["Labels"].update(labels)
    data = json.dumps(cfg).encode()
    hexd = hashlib.sha256(data).hexdigest()
    manifest[0]["Config"] = "blobs/sha256/" + hexd
    manifest[0]["RepoTags"] = []
    with tarfile.open(dst, "w") as out:
        def add(name, b):
            ti = tarfile.TarInfo(name)
            ti.size = len(b)
            out.addfile(ti, io.BytesIO(b))
        for m, b in members:
            if m.name in ("manifest.json", "repositories"):
                continue
            add(m.name, b)
        add("blobs/sha256/" + hexd, data)
        add("manifest.json", json.dumps(manifest).encode())
    return "sha256:" + hexd


def ins_layers(lab, ref):
    return json.loads(lab.docker("swarma", "image", "inspect", "-f", "{{json .RootFS.Layers}}", ref)[1])
