"""docker exec and attach against one node's shoald with the stock docker
CLI: output and exit codes, -e/-u/-w, -i with piped stdin, -t through a
pty (typed commands, stty size after a resize, exit), -d, exec inspect,
exec in a stopped container, exec events; attach to a task container's
output through the API's upgraded connection."""

import fcntl
import json
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import termios
import time

from lib import DOCKER, SEED, ServiceLab, _cli_env, run, timeout, wait_until


def task_container(lab, svc):
    def find():
        out = lab.docker("swarma", "ps", "-q", "--no-trunc", "--filter", "name=%s." % svc)[1]
        ids = out.split()
        return ids[0] if ids else None
    return wait_until(find, timeout=90, what="a running container of " + svc)


def hijack(sock_path, path, body=None, upgrade=True):
    """POSTs path and returns (status line, headers, socket) after the head."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(sock_path)
    data = json.dumps(body).encode() if body is not None else b""
    head = "POST %s HTTP/1.1\r\nHost: docker\r\n" % path
    if body is not None:
        head += "Content-Type: application/json\r\n"
    head += "Content-Length: %d\r\n" % len(data)
    if upgrade:
        head += "Connection: Upgrade\r\nUpgrade: tcp\r\n"
    s.sendall(head.encode() + b"\r\n" + data)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        assert chunk, "connection closed before the answer's head: %r" % buf
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    hdrs = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:]}
    return lines[0], hdrs, s, rest


def read_all(s, rest=b""):
    buf = rest
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return buf
        buf += chunk


def frames(data):
    """Docker's multiplexed stream -> [(stream, bytes)]."""
    out = []
    while data:
        assert len(data) >= 8, "a partial frame header: %r" % data
        stream, n = data[0], struct.unpack(">I", data[4:8])[0]
        assert data[1:4] == b"\0\0\0", "bad frame header %r" % data[:8]
        out.append((stream, data[8:8 + n]))
        data = data[8 + n:]
    return out


class Pty:
    """docker exec -it run on a pty of ours, as a user's terminal."""

    def __init__(self, argv, rows, cols):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execv(argv[0], argv)
        self.resize(rows, cols, signal_it=False)
        self.buf = b""

    def resize(self, rows, cols, signal_it=True):
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        if signal_it:
            os.kill(self.pid, signal.SIGWINCH)

    def send(self, text):
        os.write(self.fd, text.encode())

    def expect(self, needle, secs=20):
        end = time.time() + secs
        while needle.encode() not in self.buf:
            left = end - time.time()
            assert left > 0, "no %r on the terminal; got %r" % (needle, self.buf[-2000:])
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                assert chunk, "terminal closed; got %r" % self.buf[-2000:]
                self.buf += chunk
        i = self.buf.index(needle.encode()) + len(needle)
        seen, self.buf = self.buf[:i], self.buf[i:]
        return seen.decode(errors="replace")

    def wait(self, secs=20):
        end = time.time() + secs
        while time.time() < end:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                # What it wrote last may still wait in the pty.
                while select.select([self.fd], [], [], 0.2)[0]:
                    try:
                        chunk = os.read(self.fd, 4096)
                    except OSError:
                        break
                    if not chunk:
                        break
                    self.buf += chunk
                return os.waitstatus_to_exitcode(st)
            try:
                r, _, _ = select.select([self.fd], [], [], 0.2)
                if r:
                    self.buf += os.read(self.fd, 4096)
            except OSError:
                time.sleep(0.1)
        os.kill(self.pid, 9)
        raise AssertionError("docker exec -it did not end; terminal: %r" % self.buf[-2000:])


@timeout(420)
def test_exec_and_attach_with_the_docker_cli():
    with ServiceLab({"swarma": SEED["swarma"]}) as lab:
        lab.init("swarma")
        lab.service("swarma", "create", "-d", "--name", "box", "busybox", "sleep", "3600")
        lab.service("swarma", "create", "-d", "--name", "ticker", "busybox", "sh", "-c",
                    "i=0; while true; do echo tick $i; echo tock $i >&2; i=$((i+1)); sleep 1; done")
        lab.service("swarma", "create", "-d", "--name", "once", "--restart-condition", "none",
                    "busybox", "true")
        box = task_container(lab, "box")
        sock = lab.sock("swarma")
        since = str(int(time.time()) - 1)

        # Output, stderr and the exit code come back.
        rc, out, err = lab.docker("swarma", "exec", box, "echo", "hello", check=False)
        assert (rc, out) == (0, "hello\n"), (rc, out, err)
        rc, out, err = lab.docker("swarma", "exec", box, "sh", "-c",
                                  "echo out; echo err >&2; exit 3", check=False)
        assert (rc, out, err) == (3, "out\n", "err\n"), (rc, out, err)

        # -e, -u, -w
        rc, out, _ = lab.docker("swarma", "exec", "-e", "FOO=bar baz", box, "sh", "-c", "echo $FOO")
        assert out == "bar baz\n", out
        _, out, _ = lab.docker("swarma", "exec", "-u", "nobody", box, "id", "-un")
        assert out == "nobody\n", out
        _, out, _ = lab.docker("swarma", "exec", "-u", "1234:5678", box, "id")
        assert "uid=1234" in out and "gid=5678" in out, out
        _, out, _ = lab.docker("swarma", "exec", "-w", "/etc", box, "pwd")
        assert out == "/etc\n", out
        rc, _, err = lab.docker("swarma", "exec", "-u", "nosuchuser", box, "true", check=False)
        assert rc != 0 and "unable to find user nosuchuser" in err, (rc, err)
        # The container's environment is the exec's too.
        _, out, _ = lab.docker("swarma", "exec", box, "sh", "-c", "echo $PATH")
        assert "/bin" in out, out

        # -i: stdin piped through, its end ends the process's.
        rc, out, _ = run([DOCKER, "-H", "unix://" + sock, "exec", "-i", box, "wc", "-l"],
                         input="one\ntwo\nthree\n")
        assert (rc, out.strip()) == (0, "3"), (rc, out)
        big = "".join("line %d\n" % i for i in range(20000))
        rc, out, _ = run([DOCKER, "-H", "unix://" + sock, "exec", "-i", box, "cat"], input=big)
        assert rc == 0 and out == big, (rc, len(out), len(big))

        # -d: runs on its own; the CLI returns at once.
        lab.docker("swarma", "exec", "-d", box, "sh", "-c", "sleep 1; echo done > /tmp/marker")
        wait_until(lambda: lab.docker("swarma", "exec", box, "cat", "/tmp/marker",
                                      check=False)[1] == "done\n", timeout=20,
                   what="the detached exec's file")

        # A missing executable: Docker's exit code, the daemon answers on.
        rc, _, err = lab.docker("swarma", "exec", box, "no-such-binary", check=False)
        assert rc in (126, 127) and err.strip(), (rc, err)
        assert lab.docker("swarma", "exec", box, "true", check=False)[0] == 0

        # Exec inspect through the API: Running, then ExitCode, Pid, ProcessConfig.
        st, created = lab.api("swarma", "POST", "/v1.47/containers/%s/exec" % box,
                              {"Cmd": ["sh", "-c", "sleep 2; exit 5"], "User": "nobody"})
        assert st == 201, (st, created)
        eid = created["Id"]
        st, info = lab.api("swarma", "GET", "/v1.47/exec/%s/json" % eid)
        assert st == 200 and info["Running"] is False and info["ExitCode"] is None, info
        st, _ = lab.api("swarma", "POST", "/v1.47/exec/%s/start" % eid, {"Detach": True})
        assert st == 200, st
        st, info = lab.api("swarma", "GET", "/v1.47/exec/%s/json" % eid)
        assert info["Running"] is True and info["Pid"] > 0, info
        assert info["ProcessConfig"] == {"tty": False, "entrypoint": "sh",
                                         "arguments": ["-c", "sleep 2; exit 5"],
                                         "privileged": False, "user": "nobody"}, info
        assert info["ContainerID"] == box, info
        info = wait_until(lambda: (lambda i: i if not i["Running"] else None)(
            lab.api("swarma", "GET", "/v1.47/exec/%s/json" % eid)[1]), timeout=20)
        assert info["ExitCode"] == 5, info
        st, body = lab.api("swarma", "POST", "/v1.47/exec/%s/start" % eid, {"Detach": True})
        assert st == 409 and body["message"] == "exec command %s has already run" % eid, (st, body)
        st, body = lab.api("swarma", "GET", "/v1.47/exec/nope/json")
        assert st == 404 and body["message"] == "No such exec instance: nope", (st, body)
        st, body = lab.api("swarma", "POST", "/v1.47/containers/%s/exec" % box, {"Cmd": []})
        assert st == 400 and body["message"] == "No exec command specified", (st, body)

        # The hijacked stream itself: 101 UPGRADED and multiplexed frames;
        # without an Upgrade header a plain 200 and the same bytes.
        for upgrade in (True, False):
            st, created = lab.api("swarma", "POST", "/v1.47/containers/%s/exec" % box,
                                  {"Cmd": ["sh", "-c", "echo a; echo b >&2"],
                                   "AttachStdout": True, "AttachStderr": True})
            line, hdrs, s, rest = hijack(sock, "/v1.47/exec/%s/start" % created["Id"],
                                         {"Detach": False, "Tty": False}, upgrade)
            data = read_all(s, rest)
            s.close()
            if upgrade:
                assert line.startswith("HTTP/1.1 101"), line
                assert hdrs["content-type"] == "application/vnd.docker.multiplexed-stream", hdrs
                assert hdrs["upgrade"] == "tcp", hdrs
            else:
                assert line.startswith("HTTP/1.1 200"), line
                assert hdrs["content-type"] == "application/vnd.docker.raw-stream", hdrs
            assert sorted(frames(data)) == [(1, b"a\n"), (2, b"b\n")], data

        # An API client with a TTY: raw bytes, and the detach keys (here
        # ctrl-x) end its stream while the process runs on.
        st, created = lab.api("swarma", "POST", "/v1.47/containers/%s/exec" % box,
                              {"Cmd": ["sh", "-c", "echo go; sleep 40"], "Tty": True,
                               "AttachStdin": True, "AttachStdout": True,
                               "DetachKeys": "ctrl-x"})
        tid = created["Id"]
        line, hdrs, s, rest = hijack(sock, "/v1.47/exec/%s/start" % tid, {"Tty": True})
        assert hdrs["content-type"] == "application/vnd.docker.raw-stream", hdrs
        data = rest
        while b"go" not in data:
            chunk = s.recv(4096)
            assert chunk, data
            data += chunk
        assert data.startswith(b"go\r\n"), data  # a terminal's newline, no frame header
        s.sendall(b"\x18")
        read_all(s)
        s.close()
        st, info = lab.api("swarma", "GET", "/v1.47/exec/%s/json" % tid)
        assert info["Running"] is True and info["ProcessConfig"]["tty"] is True, info

        # -it through a pty: typed commands, the size, a resize, exit.
        t = Pty([DOCKER, "-H", "unix://" + sock, "exec", "-it", box, "sh"], 30, 100)
        t.expect("/ # ")
        t.send("echo hi-$((40+2))\n")
        t.expect("hi-42")
        t.send("stty size\n")
        t.expect("30 100")
        t.resize(40, 120)
        time.sleep(1)
        t.send("stty size\n")
        t.expect("40 120")
        t.send("tty\n")
        t.expect("/dev/pts/")
        t.send("exit 7\n")
        assert t.wait() == 7
        # Ctrl-D ends the shell the same way.
        t = Pty([DOCKER, "-H", "unix://" + sock, "exec", "-it", box, "sh"], 24, 80)
        t.expect("/ # ")
        t.send("echo ready\n")
        t.expect("ready")
        t.expect("/ # ")
        time.sleep(0.5)
        t.send("\x04")
        assert t.wait() == 0

        # Ctrl-P Ctrl-Q: the CLI leaves, the process runs on.
        t = Pty([DOCKER, "-H", "unix://" + sock, "exec", "-it", box, "sh", "-c",
                 "echo started; sleep 47"], 24, 80)
        t.expect("started")
        t.send("\x10\x11")
        # As against dockerd: the CLI itself sees the keys and says so.
        assert t.wait() == 1 and b"read escape sequence" in t.buf, t.buf
        _, out, _ = lab.docker("swarma", "exec", box, "ps")
        assert "sleep 47" in out, out

        # --privileged: every capability; without it the container's set.
        _, out, _ = lab.docker("swarma", "exec", "--privileged", box, "grep", "CapEff", "/proc/self/status")
        priv = int(out.split()[1], 16)
        _, out, _ = lab.docker("swarma", "exec", box, "grep", "CapEff", "/proc/self/status")
        plain = int(out.split()[1], 16)
        assert plain & (1 << 21) == 0 and priv & (1 << 21), (hex(plain), hex(priv))  # CAP_SYS_ADMIN
        held = int([l for l in open("/proc/self/status") if l.startswith("CapBnd")][0].split()[1], 16)
        assert priv & plain == plain and priv == held, (hex(plain), hex(priv), hex(held))

        # Exec in a stopped container: Docker's 409 message.
        once = wait_until(lambda: (lab.docker("swarma", "ps", "-aq", "--no-trunc", "--filter",
                                              "name=once.", "--filter", "status=exited")[1].split()
                                   or [None])[0], timeout=60, what="the exited task container")
        rc, _, err = lab.docker("swarma", "exec", once, "true", check=False)
        assert rc != 0 and "container %s is not running" % once in err, (rc, err)

        # Events: exec_create, exec_start and exec_die with the exit code.
        _, evs = lab.api("swarma", "GET", "/v1.47/events?since=%s&until=%d" % (since, int(time.time()) + 1))
        evs = evs if isinstance(evs, list) else [json.loads(l) for l in evs.splitlines() if l.strip()]
        mine = [e for e in evs if e.get("Actor", {}).get("ID") == box]
        assert any(e["Action"] == "exec_create: sh -c echo out; echo err >&2; exit 3" for e in mine), mine
        assert any(e["Action"].startswith("exec_start: sh -c echo out") for e in mine), mine
        assert any(e["Action"] == "exec_detach" and e["Actor"]["Attributes"]["execID"] == tid
                   for e in mine), mine
        dies = [e for e in mine if e["Action"] == "exec_die"]
        assert any(e["Actor"]["Attributes"]["exitCode"] == "3" for e in dies), dies
        assert all(e["Actor"]["Attributes"]["execID"] for e in dies), dies

        # Attach: what the task writes from now on, multiplexed, live.
        ticker = task_container(lab, "ticker")
        line, hdrs, s, rest = hijack(sock, "/v1.47/containers/%s/attach?stream=1&stdout=1&stderr=1"
                                     % ticker)
        assert line.startswith("HTTP/1.1 101"), line
        data = rest
        while data.count(b"tock") < 2:
            chunk = s.recv(4096)
            assert chunk, data
            data += chunk
        s.close()
        assert b"tick" in data and b"\x02\0\0\0" in data, data
        # logs=1 without stream: what was written so far, then the end.
        line, hdrs, s, rest = hijack(sock, "/v1.47/containers/%s/attach?logs=1&stdout=1" % ticker)
        data = read_all(s, rest)
        s.close()
        fr = frames(data)
        assert fr and all(st == 1 for st, _ in fr) and fr[0][1] == b"tick 0\n", fr[:3]
        st, body = lab.api("swarma", "POST", "/v1.47/containers/nope/attach?stream=1&stdout=1")
        assert st == 404 and body["message"] == "No such container: nope", (st, body)

        # The daemon is fine after all of it.
        assert lab.docker("swarma", "exec", box, "echo", "still")[1] == "still\n"


@timeout(180)
def test_attach_ends_when_the_container_goes():
    """A container removed under an attach: the attach ends at once with
    the exit code (docker run --rm of a short container, docker attach to
    one removed by docker rm -f from another client), and its thread goes."""
    with ServiceLab({"swarma": SEED["swarma"]}) as lab:
        docker = lambda *a, check=True: lab.docker("swarma", *a, check=check)
        rc, out, err = docker("run", "--rm", "busybox", "sh", "-c", "echo hi; exit 3",
                              check=False)
        assert rc == 3 and out == "hi\n", (rc, out, err)
        docker("run", "-d", "--name", "victim", "busybox", "sh", "-c",
               "while true; do echo x; sleep 0.2; done")
        pid = lab.pid("swarma")
        threads = lambda: len(os.listdir("/proc/%d/task" % pid))
        before = threads()
        p = subprocess.Popen([DOCKER, "-H", "unix://" + lab.sock("swarma"), "attach",
                              "--no-stdin", "victim"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=_cli_env())
        try:
            wait_until(lambda: p.stdout.read1(64) or None, 20, what="attach output")
            t0 = time.monotonic()
            docker("rm", "-f", "victim")
            p.wait(timeout=15)
        finally:
            if p.poll() is None:
                p.kill()
        took = time.monotonic() - t0
        assert p.returncode == 137, (p.returncode, p.stderr.read())
        assert took < 10, took
        wait_until(lambda: threads() <= before or None, 10,
                   what="the attach thread to end (%d before)" % before)
        st, _ = lab.api("swarma", "GET", "/_ping")
        assert st == 200
