"""A TTY for a container's main process (issue 12, -t) with the stock
docker CLI driven through a pty: docker run -it (typed commands, the exit
code), docker run -dit then docker attach with a resize seen by stty,
ctrl-p ctrl-q, raw (unframed) logs, a shoald restart under a TTY
container (attach after it; exec instances started before it keep their
exit codes), and service create --tty."""

import socket
import time

from lib import DOCKER, SEED, ServiceLab, timeout, wait_until
from test_exec import Pty, hijack, read_all

FRAME = b"\x01\x00\x00\x00"  # a stdout frame header: never in a TTY's stream


def get_raw(sock_path, path):
    """GET path over HTTP/1.0: (headers, body bytes)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(sock_path)
    s.sendall(("GET %s HTTP/1.0\r\nHost: docker\r\n\r\n" % path).encode())
    data = read_all(s)
    s.close()
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    hdrs = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:]}
    if hdrs.get("transfer-encoding") == "chunked":
        out = b""
        while body:
            n, body = body.split(b"\r\n", 1)
            n = int(n, 16)
            if n == 0:
                break
            out, body = out + body[:n], body[n + 2:]
        body = out
    return hdrs, body


def stty_shows(t, size, secs=10):
    """Asks stty until the terminal has size (a resize is a request the
    CLI makes after attaching; it lands a moment later)."""
    end = time.time() + secs
    while True:
        t.send("stty size\n")
        try:
            return t.expect(size, secs=1)
        except AssertionError:
            if time.time() > end:
                raise


def inspect(lab, ref, fmt):
    return lab.docker("swarma", "inspect", "--format", fmt, ref)[1].strip()


@timeout(420)
def test_tty_run_attach_resize_logs_restart_and_services():
    with ServiceLab({"swarma": SEED["swarma"]}) as lab:
        sock = lab.sock("swarma")
        cli = [DOCKER, "-H", "unix://" + sock]
        lab.docker("swarma", "pull", "busybox", timeout=120)

        # docker run -it: the shell's prompt, what is typed, its exit code.
        t = Pty(cli + ["run", "-it", "--name", "it", "busybox", "sh"], 30, 100)
        t.expect("/ # ")
        t.send("stty size; tty\n")
        t.expect("30 100")  # HostConfig.ConsoleSize: the pty's first size
        t.expect("/dev/")
        t.send("echo hi-$((40+2)); exit 3\n")
        t.expect("hi-42\r\n")
        assert t.wait() == 3, t.buf
        assert inspect(lab, "it", "{{.Config.Tty}} {{.State.ExitCode}}") == "true 3"
        # docker logs of a TTY container: the terminal's bytes, no frames
        rc, out, err = lab.docker("swarma", "logs", "it")  # (text mode: \r\n read as \n)
        assert "hi-42\n" in out and "/ # " in out, repr(out)
        hdrs, data = get_raw(sock, "/v1.47/containers/it/logs?stdout=1&stderr=1")
        assert hdrs["content-type"] == "application/vnd.docker.raw-stream", hdrs
        assert b"hi-42\r\n" in data and FRAME not in data, data

        # docker start -ai: the same container again, its terminal anew.
        t = Pty(cli + ["start", "-ai", "it"], 24, 80)
        t.send("\n")
        t.expect("/ # ")
        stty_shows(t, "24 80")  # the CLI resizes after the start: a moment later
        t.send("exit 2\n")
        assert t.wait() == 2, t.buf
        assert inspect(lab, "it", "{{.State.ExitCode}} {{.Config.Tty}}") == "2 true"

        # docker run -dit, then docker attach: typed input, a resize that
        # stty sees, ctrl-p ctrl-q leaves it running.
        lab.docker("swarma", "run", "-dit", "--name", "dt", "busybox", "sh")
        t = Pty(cli + ["attach", "dt"], 30, 100)
        stty_shows(t, "30 100")
        t.resize(40, 120)
        stty_shows(t, "40 120")
        t.send("\x10\x11")
        assert t.wait() == 1 and b"read escape sequence" in t.buf, t.buf
        assert inspect(lab, "dt", "{{.State.Status}}") == "running"
        # the API's resize: 400 past conmon's limit, 404 for no container
        st, body = lab.api("swarma", "POST", "/v1.47/containers/dt/resize?h=2000&w=80")
        assert st == 400, (st, body)
        st, body = lab.api("swarma", "POST", "/v1.47/containers/nope/resize?h=20&w=80")
        assert st == 404 and body["message"] == "No such container: nope", (st, body)

        # An API client attached (no CLI): raw output; its detach keys end
        # its stream and leave the shell running.
        line, hdrs, s, rest = hijack(
            sock, "/v1.47/containers/dt/attach?stream=1&stdin=1&stdout=1&stderr=1"
                  "&detachKeys=ctrl-x")
        assert line.startswith("HTTP/1.1 101"), line
        assert hdrs["content-type"] == "application/vnd.docker.raw-stream", hdrs
        s.sendall(b"echo api-$((6*7))\n")
        data = rest
        while b"api-42\r\n" not in data:
            chunk = s.recv(4096)
            assert chunk, data
            data += chunk
        assert FRAME not in data, data
        s.sendall(b"\x18")
        read_all(s)
        s.close()
        assert inspect(lab, "dt", "{{.State.Status}}") == "running"

        # A shoald restart: the TTY container runs on under conmon, and
        # attach, resize and its exit code work with the new daemon.
        # Exec instances started before it: inspectable after it, with the
        # exit code of one that ended before and of one that ends after.
        execs = {}
        for name, script in (("done", "exit 5"), ("later", "sleep 8; exit 6")):
            st, created = lab.api("swarma", "POST", "/v1.47/containers/dt/exec",
                                  {"Cmd": ["sh", "-c", script]})
            assert st == 201, (st, created)
            execs[name] = created["Id"]
            st, _ = lab.api("swarma", "POST", "/v1.47/exec/%s/start" % created["Id"],
                            {"Detach": True})
            assert st == 200, st
        wait_until(lambda: lab.api("swarma", "GET", "/v1.47/exec/%s/json" % execs["done"])[1]
                   ["ExitCode"] == 5, 20, what="the first exec's exit")
        pid = lab.container_pid("swarma", "dt")
        lab.restart("swarma")
        assert lab.container_pid("swarma", "dt") == pid
        st, info = lab.api("swarma", "GET", "/v1.47/exec/%s/json" % execs["done"])
        assert st == 200 and info["Running"] is False and info["ExitCode"] == 5, (st, info)
        assert info["ProcessConfig"]["arguments"] == ["-c", "exit 5"], info
        st, info = lab.api("swarma", "GET", "/v1.47/exec/%s/json" % execs["later"])
        assert st == 200 and info["Running"] is True and info["ExitCode"] is None, (st, info)
        assert info["ContainerID"] == lab.docker("swarma", "inspect", "--format", "{{.Id}}",
                                                 "dt")[1].strip(), info
        info = wait_until(lambda: (lambda i: i if not i["Running"] else None)(
            lab.api("swarma", "GET", "/v1.47/exec/%s/json" % execs["later"])[1]), 30,
            what="the second exec's exit after the restart")
        assert info["ExitCode"] == 6, info
        st, body = lab.api("swarma", "POST", "/v1.47/exec/%s/start" % execs["later"],
                           {"Detach": True})
        assert st == 409, (st, body)
        t = Pty(cli + ["attach", "dt"], 25, 90)
        stty_shows(t, "25 90")
        t.send("echo back-$((1+1))\n")
        t.expect("back-2\r\n")
        t.send("exit 4\n")
        assert t.wait() == 4, t.buf
        assert inspect(lab, "dt", "{{.State.Status}} {{.State.ExitCode}}") == "exited 4"
        assert "back-2\n" in lab.docker("swarma", "logs", "dt")[1]

        # service create --tty: the task's process has a terminal; its
        # container shows Config.Tty; service logs --raw are its bytes
        # (the CLI refuses pretty output for a TTY service, as with dockerd).
        lab.init("swarma")
        lab.service("swarma", "create", "-d", "--tty", "--name", "tt", "busybox", "sh", "-c",
                    "test -t 0 && test -t 1 && echo has-tty; sleep 3600")
        cid = wait_until(lambda: (lab.docker("swarma", "ps", "-q", "--no-trunc", "--filter",
                                             "name=tt.")[1].split() or [None])[0],
                         timeout=90, what="the tty task's container")
        assert inspect(lab, cid, "{{.Config.Tty}}") == "true"
        wait_until(lambda: "has-tty\n" in lab.docker("swarma", "logs", cid)[1], 30,
                   what="has-tty in the task's log")
        rc, out, err = lab.docker("swarma", "service", "logs", "--raw", "tt")
        assert "has-tty\n" in out and "\x01\x00\x00\x00" not in out, repr(out)
        rc, out, err = lab.docker("swarma", "service", "logs", "tt", check=False)
        assert rc != 0 and "tty service logs only supported with --raw" in err, (rc, err)
        st, spec = lab.api("swarma", "GET", "/v1.47/services/tt")
        assert spec["Spec"]["TaskTemplate"]["ContainerSpec"]["TTY"] is True, spec
        st, _ = lab.api("swarma", "GET", "/_ping")
        assert st == 200, st
