"""Issue 12: docker cp both ways, docker diff and docker export, with the
stock docker CLI against one node's shoald, on a running standalone
container, a stopped one, a read-only one and a task's container.
Contents and modes are read back inside the container (docker exec), and
a sentinel file on the host shows that neither a ".." nor a symlink
escaping the container's root reaches the host. Expected texts are the
docker CLI 28.x's and dockerd's."""

import base64
import io
import json
import os
import subprocess
import tarfile
import time

from lib import DOCKER, SEED, ServiceLab, _cli_env, timeout, wait_until


def one_node():
    return ServiceLab({"swarma": SEED["swarma"]})


def tar_bytes(members):
    """members: (name, bytes or None for a directory, mode, uid)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data, mode, uid in members:
            ti = tarfile.TarInfo(name)
            ti.mode, ti.uid, ti.gid = mode, uid, uid
            if data is None:
                ti.type = tarfile.DIRTYPE
                t.addfile(ti)
            else:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


@timeout(420)
def test_cp_diff_export():
    with one_node() as lab:
        lab.init("swarma")
        sock = lab.sock("swarma")
        docker = lambda *a, check=True: lab.docker("swarma", *a, check=check)

        def raw(args, data=None):
            p = subprocess.run([DOCKER, "-H", "unix://" + sock] + list(args),
                               input=data, capture_output=True, env=_cli_env(),
                               timeout=60)
            return p.returncode, p.stdout, p.stderr.decode()

        def cat(ctr, path):
            return docker("exec", ctr, "cat", path)[1]

        def stat(ctr, fmt, path):
            return docker("exec", ctr, "stat", "-c", fmt, path)[1].strip()

        # the host's sentinel: never read, never written through cp
        host_dir = os.path.join(lab.dir, "hostside")
        os.makedirs(host_dir)
        sentinel = os.path.join(host_dir, "sentinel")
        with open(sentinel, "w") as f:
            f.write("host secret\n")
        before = sorted(os.listdir(host_dir))

        docker("run", "-d", "--name", "box", "-v", "vol1:/vol", "--tmpfs", "/scratch",
               "busybox", "sleep", "3600")
        t0 = int(time.time()) - 1

        # a file into a running container: content and mode
        src = os.path.join(lab.dir, "hello.txt")
        with open(src, "w") as f:
            f.write("hello from the host\n")
        os.chmod(src, 0o640)
        rc, out, err = docker("cp", src, "box:/tmp/hello.txt")
        assert rc == 0, err
        assert cat("box", "/tmp/hello.txt") == "hello from the host\n"
        assert stat("box", "%a", "/tmp/hello.txt") == "640"

        # a directory out of it, with a symlink kept as a symlink
        docker("exec", "box", "sh", "-c",
               "mkdir -p /d/sub && echo one > /d/a && echo two > /d/sub/b && "
               "chmod 0751 /d/a && ln -s a /d/link && rm /etc/group")
        outdir = os.path.join(lab.dir, "out")
        rc, _, err = docker("cp", "box:/d", outdir)
        assert rc == 0, err
        assert open(os.path.join(outdir, "a")).read() == "one\n"
        assert open(os.path.join(outdir, "sub", "b")).read() == "two\n"
        assert os.stat(os.path.join(outdir, "a")).st_mode & 0o777 == 0o751
        assert os.readlink(os.path.join(outdir, "link")) == "a"
        # ... and back into it under another name
        docker("cp", outdir, "box:/copied")
        assert cat("box", "/copied/sub/b") == "two\n"
        assert stat("box", "%a", "/copied/a") == "751"
        # -L follows the link; without it the link itself comes
        lpath = os.path.join(lab.dir, "followed")
        docker("cp", "-L", "box:/d/link", lpath)
        assert not os.path.islink(lpath) and open(lpath).read() == "one\n"

        # "-": a tar on stdout, and a tar from stdin (ownership kept)
        rc, data, err = raw(["cp", "box:/d", "-"])
        assert rc == 0, err
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            names = t.getnames()
            assert "d" in names and "d/sub/b" in names and "d/link" in names, names
            assert t.extractfile("d/a").read() == b"one\n"
            assert t.getmember("d/link").issym()
        rc, _, err = raw(["cp", "-", "box:/tmp"],
                         tar_bytes([("fromtar", None, 0o755, 0),
                                    ("fromtar/f", b"via stdin\n", 0o600, 1234)]))
        assert rc == 0, err
        assert cat("box", "/tmp/fromtar/f") == "via stdin\n"
        assert stat("box", "%a %u", "/tmp/fromtar/f") == "600 1234"
        # -a: owned by the container's user (root here)
        docker("cp", "-a", src, "box:/tmp/archived")
        assert stat("box", "%u:%g", "/tmp/archived") == "0:0"

        # Docker's errors: unknown container, missing path, not a directory
        rc, _, err = docker("cp", "nosuch:/etc/hosts", outdir, check=False)
        assert rc == 1 and "No such container: nosuch" in err, err
        rc, _, err = docker("cp", src, "nosuch:/tmp/x", check=False)
        assert rc == 1 and "No such container: nosuch" in err, err
        rc, _, err = docker("cp", "box:/nope", outdir, check=False)
        assert rc == 1 and "Could not find the file /nope in container box" in err, err
        rc, _, err = raw(["cp", "-", "box:/tmp/hello.txt"], tar_bytes([("x", b"x", 0o644, 0)]))
        assert rc == 1 and 'destination "box:/tmp/hello.txt" must be a directory' in err, err
        st, hdrs, body = lab_api_raw(lab, "PUT", "/v1.47/containers/box/archive?path=/tmp/hello.txt",
                                     tar_bytes([("x", b"x", 0o644, 0)]))
        assert st == 400 and b"extraction point is not a directory" in body, (st, body)
        # a bad tar
        rc, _, err = raw(["cp", "-", "box:/tmp"], b"this is not a tar archive" * 40)
        assert rc == 1 and "Error response from daemon" in err, err
        st, hdrs, body = lab_api_raw(lab, "PUT", "/v1.47/containers/box/archive?path=/tmp",
                                     b"this is not a tar archive" * 40)
        assert st == 400, (st, body)

        # escapes: a symlink to /etc/../../, a path with "..", a tar with
        # ".." and absolute names: all stay inside the container
        docker("exec", "box", "ln", "-s", "/etc/../../", "/tmp/esc")
        rel = sentinel.lstrip("/")
        rc, _, err = docker("cp", "box:/tmp/esc/" + rel, os.path.join(lab.dir, "leak1"), check=False)
        assert rc == 1 and "Could not find the file" in err, err
        rc, _, err = docker("cp", "box:/../../../.." + sentinel, os.path.join(lab.dir, "leak2"),
                            check=False)
        assert rc == 1 and "Could not find the file" in err, err
        assert not os.path.exists(os.path.join(lab.dir, "leak1"))
        assert not os.path.exists(os.path.join(lab.dir, "leak2"))
        docker("exec", "box", "mkdir", "-p", "/" + os.path.dirname(rel))
        docker("cp", src, "box:/tmp/esc/" + rel)  # lands in the container
        assert cat("box", "/" + rel) == "hello from the host\n"
        rc, _, err = raw(["cp", "-", "box:/tmp"], tar_bytes([("../../../.." + sentinel, b"pwned\n", 0o644, 0)]))
        assert rc == 1 and "outside of" in err, err
        rc, _, err = raw(["cp", "-", "box:/tmp"], tar_bytes([(sentinel, b"abs\n", 0o644, 0)]))
        assert rc == 0, err
        assert cat("box", "/tmp" + sentinel) == "abs\n"
        # a device node in a tar is made, as dockerd (root, no userns)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            ti = tarfile.TarInfo("nullish")
            ti.type, ti.devmajor, ti.devminor, ti.mode = tarfile.CHRTYPE, 1, 3, 0o666
            t.addfile(ti)
        rc, _, err = raw(["cp", "-", "box:/tmp"], buf.getvalue())
        assert rc == 0, err
        assert stat("box", "%F %t %T", "/tmp/nullish") == "character special file 1 3"
        # a tar whose symlink points out of the destination
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            ti = tarfile.TarInfo("out")
            ti.type, ti.linkname = tarfile.SYMTYPE, "../../../.." + host_dir
            t.addfile(ti)
        rc, _, err = raw(["cp", "-", "box:/tmp"], buf.getvalue())
        assert rc == 1 and "outside of" in err, err
        with open(sentinel) as f:
            assert f.read() == "host secret\n"
        assert sorted(os.listdir(host_dir)) == before

        # dockerd's events for a copy each way
        out = docker("events", "--since", str(t0), "--until", str(int(time.time()) + 1),
                     "--filter", "container=box", "--format", "{{.Action}}")[1].split()
        assert "extract-to-dir" in out and "archive-path" in out, out

        # the stat header
        st, hdrs, _ = lab_api_raw(lab, "HEAD", "/v1.47/containers/box/archive?path=/d/link")
        assert st == 200, st
        info = json.loads(base64.b64decode(hdrs["x-docker-container-path-stat"]))
        assert info["name"] == "link" and info["linkTarget"] == "/d/a", info
        assert info["mode"] & (1 << 27), info

        # docker diff: added, changed, deleted
        out = docker("diff", "box")[1].splitlines()
        for want in ("C /tmp", "A /tmp/hello.txt", "A /d", "A /d/sub/b", "C /etc", "D /etc/group"):
            assert want in out, out

        # a read-only rootfs: refused as dockerd does
        docker("run", "-d", "--name", "ro", "--read-only", "busybox", "sleep", "3600")
        rc, _, err = docker("cp", src, "ro:/tmp/", check=False)
        assert rc == 1 and "container rootfs is marked read-only" in err, err

        # a running container's volume and tmpfs, as its process sees them
        docker("exec", "box", "sh", "-c", "echo v > /vol/f && echo t > /scratch/t")
        rc, data, err = raw(["cp", "box:/scratch/t", "-"])
        assert rc == 0 and b"t\n" in data, err
        # a stopped container: both ways, its volume mounted for the copy
        docker("stop", "-t", "1", "box")
        docker("cp", "box:/vol/f", os.path.join(lab.dir, "vol-f"))
        assert open(os.path.join(lab.dir, "vol-f")).read() == "v\n"
        docker("cp", src, "box:/vol/g")
        docker("cp", src, "box:/tmp/while-stopped")
        rc, _, err = docker("cp", "box:/tmp/while-stopped", os.path.join(lab.dir, "back"))
        assert rc == 0 and open(os.path.join(lab.dir, "back")).read() == "hello from the host\n"
        docker("start", "box")
        assert cat("box", "/tmp/while-stopped") == "hello from the host\n"
        assert cat("box", "/vol/g") == "hello from the host\n"

        # docker export still works
        path = os.path.join(lab.dir, "export.tar")
        docker("export", "-o", path, "box")
        with tarfile.open(path) as t:
            names = t.getnames()
            assert "tmp/hello.txt" in names and "bin/busybox" in names, names[:20]
            assert t.extractfile("tmp/hello.txt").read() == b"hello from the host\n"
            assert not [x for x in names if x.startswith(("./", "/"))], names[:20]

        # a task's container
        lab.service("swarma", "create", "-d", "--name", "job", "busybox", "sleep", "3600")

        def task_ctr():
            rows = [r for r in lab.ps("swarma") if r["NAMES"].startswith("job.")
                    and r["STATUS"].startswith("Up ")]
            return rows[0]["NAMES"] if rows else None
        task = wait_until(task_ctr, 60, interval=0.5, what="the task's container")
        docker("cp", src, task + ":/tmp/in-task")
        assert cat(task, "/tmp/in-task") == "hello from the host\n"
        assert stat(task, "%a", "/tmp/in-task") == "640"
        docker("cp", task + ":/etc/hostname", os.path.join(lab.dir, "task-hostname"))
        assert open(os.path.join(lab.dir, "task-hostname")).read().strip() == \
            docker("exec", task, "hostname")[1].strip()

        # the daemon is still up
        st, _ = lab.api("swarma", "GET", "/_ping")
        assert st == 200


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM for %d" % pid)


@timeout(300)
def test_cp_load_big_streamed():
    """Bodies past the old 16 MiB limit stream: docker cp of 40 MiB both
    ways (a file, a directory), docker load of a > 16 MiB archive, shoald's
    peak RSS growing far less than the transfer, a client cut off mid-body
    leaving no partial file."""
    import socket
    with one_node() as lab:
        sock = lab.sock("swarma")
        docker = lambda *a, check=True, timeout=120: lab.docker(
            "swarma", *a, check=check, timeout=timeout)
        docker("run", "-d", "--name", "box", "busybox", "sleep", "3600")
        big = os.path.join(lab.dir, "big")
        with open(big, "wb") as f:
            f.write(os.urandom(40 << 20))
        pid = lab.pid("swarma")
        # warm up the path once with a small copy, then measure
        docker("cp", __file__, "box:/tmp/warm")
        hwm0 = vm_hwm_kib(pid)
        docker("cp", big, "box:/tmp/big")
        grew = vm_hwm_kib(pid) - hwm0
        assert grew < 12 << 10, "shoald's VmHWM grew %d KiB for a 40 MiB copy" % grew
        print("VmHWM growth for a 40 MiB cp: %d KiB (limit 12288)" % grew)
        back = os.path.join(lab.dir, "back")
        docker("cp", "box:/tmp/big", back)
        assert subprocess.run(["cmp", big, back]).returncode == 0
        # a directory holding the big file
        d = os.path.join(lab.dir, "dir")
        os.makedirs(d)
        os.link(big, os.path.join(d, "inner"))
        with open(os.path.join(d, "small"), "w") as f:
            f.write("small\n")
        docker("cp", d, "box:/tmp/")
        back_dir = os.path.join(lab.dir, "back-dir")
        docker("cp", "box:/tmp/dir", back_dir)
        assert subprocess.run(["cmp", big, os.path.join(back_dir, "inner")]).returncode == 0
        assert open(os.path.join(back_dir, "small")).read() == "small\n"

        # a client that goes away mid-body: no partial file, daemon up
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            ti = tarfile.TarInfo("cut")
            ti.size = 40 << 20
            t.addfile(ti, io.BytesIO(b"\1" * (40 << 20)))
        data = buf.getvalue()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock)
        s.sendall(b"PUT /v1.47/containers/box/archive?path=/tmp HTTP/1.1\r\n"
                  b"Host: docker\r\nContent-Type: application/x-tar\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(data))
        s.sendall(data[:12 << 20])
        # the file is being written in the container before the cut
        wait_until(lambda: docker("exec", "box", "test", "-e", "/tmp/cut",
                                  check=False)[0] == 0, 20, interval=0.2,
                   what="the extraction to start")
        s.close()
        wait_until(lambda: docker("exec", "box", "test", "-e", "/tmp/cut",
                                  check=False)[0] == 1, 20, interval=0.2,
                   what="the partial file to go")
        st, _ = lab.api("swarma", "GET", "/_ping")
        assert st == 200

        # docker load of an archive past 16 MiB
        docker("run", "--name", "gen", "busybox", "sh", "-c",
               "head -c 20971520 /dev/urandom > /blob")
        docker("commit", "gen", "bigimg:1")
        arch = os.path.join(lab.dir, "bigimg.tar")
        docker("save", "-o", arch, "bigimg:1")
        assert os.path.getsize(arch) > 16 << 20
        _, iid, _ = docker("image", "inspect", "-f", "{{.Id}}", "bigimg:1")
        docker("rm", "gen")
        docker("rmi", "bigimg:1")
        rc, out, err = docker("load", "-i", arch)
        assert rc == 0 and "Loaded image: bigimg:1" in out, (out, err)
        _, iid2, _ = docker("image", "inspect", "-f", "{{.Id}}", "bigimg:1")
        assert iid2 == iid
        rc, out, _ = docker("run", "--rm", "bigimg:1", "wc", "-c", "/blob")
        assert out.split()[0] == "20971520", out

        # a load cut off mid-body: no image, no temporary file, daemon up
        def load_tmp():
            return [os.path.join(r, f) for r, _, fs in os.walk(os.path.join(lab.dir, "swarma"))
                    for f in fs if f.startswith("load-")]
        assert load_tmp() == []
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock)
        s.sendall(b"POST /v1.47/images/load?quiet=1 HTTP/1.1\r\n"
                  b"Host: docker\r\nContent-Type: application/x-tar\r\n"
                  b"Content-Length: %d\r\n\r\n" % os.path.getsize(arch))
        with open(arch, "rb") as f:
            s.sendall(f.read(10 << 20))
        wait_until(lambda: load_tmp() and os.path.getsize(load_tmp()[0]) >= 8 << 20, 20,
                   interval=0.1, what="the upload to reach its file")
        s.close()
        wait_until(lambda: load_tmp() == [], 20, interval=0.1, what="the temporary file to go")
        st, _ = lab.api("swarma", "GET", "/_ping")
        assert st == 200


def lab_api_raw(lab, method, path, body=None):
    from lib import api_raw
    return api_raw(lab.sock("swarma"), method, path, body=body)
