"""Issue 7 (items 3, 5 and part of 8): no single request may make a manager
hang, crash or run out of memory. A replica count past shoal's limit is
refused with a clear 400; wrong JSON types get the 400 Go's decoder gives
dockerd; a large legal service is built in batches while the manager keeps
answering _ping within 100 ms (also after a restart replays it from raft);
a request head past what dockerd's Go server reads gets Go's 431. Checked
with the stock docker CLI where a user would, the raw API for malformed
bodies and oversized headers."""

import json
import socket
import threading
import time
import urllib.parse

from lib import SEED, Lab, api_raw, parse_table, timeout, wait_until

ONE = {"swarma": SEED["swarma"]}
SERVICE_LS_COLUMNS = ["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]
LIMIT_MSG = ("rpc error: code = InvalidArgument desc = replicas %d exceeds the "
             "limit of 5000 tasks per service")
GO_MSG = ("invalid JSON: json: cannot unmarshal %s into Go struct field "
          "ReplicatedService.Mode.Replicated.Replicas of type uint64")
# A loop held for the whole create (seconds) fails this; a loaded CI
# machine's scheduling hiccups (100-250 ms seen) must not. The figure itself
# is printed, and make bench measures it.
PING_BUDGET_S = 0.500


def spec(name, replicas):
    return {"Name": name, "TaskTemplate": {"ContainerSpec": {"Image": "busybox"}},
            "Mode": {"Replicated": {"Replicas": replicas}}}


def create_raw(lab, body):
    """POST /services/create with body sent as is; (status, decoded)."""
    st, _, data = api_raw(lab.sock("swarma"), "POST", "/v1.47/services/create", body,
                          {"Content-Type": "application/json"})
    try:
        return st, json.loads(data)
    except ValueError:
        return st, data


def service_ls(lab):
    return parse_table(lab.docker("swarma", "service", "ls")[1], SERVICE_LS_COLUMNS)


def ping_ok(lab, secs=5):
    st, _, body = api_raw(lab.sock("swarma"), "GET", "/_ping", timeout=secs)
    return st == 200 and body == b"OK"


class Pinger(threading.Thread):
    """GET /_ping every 20 ms on a fresh connection (as the CLI does) until
    stopped or `limit` pings or `max_secs`; records each latency and any
    failure. Bounded: it cannot outlive the test."""

    def __init__(self, sock, limit=6000, max_secs=120):
        super().__init__(daemon=True)
        self.sock, self.limit, self.max_secs = sock, limit, max_secs
        self.latencies, self.failures = [], []
        self.halt = threading.Event()

    def run(self):
        end = time.monotonic() + self.max_secs
        while not self.halt.is_set() and len(self.latencies) < self.limit and time.monotonic() < end:
            t0 = time.monotonic()
            try:
                st, _, body = api_raw(self.sock, "GET", "/_ping", timeout=5)
                if st != 200 or body != b"OK":
                    self.failures.append((st, body))
            except OSError as e:
                self.failures.append(repr(e))
            self.latencies.append(time.monotonic() - t0)
            self.halt.wait(0.02)

    def stop(self):
        self.halt.set()
        self.join(10)
        assert not self.is_alive(), "pinger did not stop"
        assert not self.failures, "pings failed: %r" % self.failures[:5]
        assert self.latencies, "no ping was made"
        return max(self.latencies), len(self.latencies)


def tasks(lab, **filters):
    q = urllib.parse.quote(json.dumps({k: [v] for k, v in filters.items()}))
    st, body = lab.api("swarma", "GET", "/v1.47/tasks?filters=" + q, timeout=60)
    assert st == 200, (st, body)
    return body


@timeout(120)
def test_huge_replica_count_refused_manager_answers():
    with Lab(ONE) as lab:
        lab.init("swarma")
        # The request: answered 201 and hung the leader for good.
        st, body = create_raw(lab, json.dumps(spec("huge", 1000000000000)))
        assert (st, body) == (400, {"message": LIMIT_MSG % 1000000000000}), (st, body)
        assert ping_ok(lab)
        # The same through the stock CLI, which sends the count as uint64.
        rc, out, err = lab.docker("swarma", "service", "create", "--detach", "--no-resolve-image",
                                  "--name", "huge", "--replicas", "1000000000000", "busybox",
                                  check=False)
        assert rc != 0, out
        assert "Error response from daemon: " + LIMIT_MSG % 1000000000000 in err, err
        assert service_ls(lab) == [], service_ls(lab)
        # Scaling a service past the limit is refused; it keeps its count
        # and the manager answers.
        lab.docker("swarma", "service", "create", "--detach", "--no-resolve-image", "--name", "web",
                   "--replicas", "0", "busybox")
        rc, out, err = lab.docker("swarma", "service", "scale", "--detach", "web=5001", check=False)
        assert rc != 0 and LIMIT_MSG % 5001 in out + err, (rc, out, err)
        rows = service_ls(lab)
        assert [(r["NAME"], r["REPLICAS"]) for r in rows] == [("web", "0/0")], rows
        assert ping_ok(lab)


@timeout(120)
def test_replicas_of_wrong_type_get_go_decoder_errors():
    with Lab(ONE) as lab:
        lab.init("swarma")
        cases = [
            ('"3"', "string"),
            ("1e12", "number 1e12"),
            ("3.5", "number 3.5"),
            ("-1", "number -1"),
            ("true", "bool"),
        ]
        for literal, what in cases:
            body = ('{"Name":"typed","TaskTemplate":{"ContainerSpec":{"Image":"busybox"}},'
                    '"Mode":{"Replicated":{"Replicas":%s}}}' % literal)
            st, got = create_raw(lab, body)
            assert (st, got) == (400, {"message": GO_MSG % what}), (literal, st, got)
        # Other fields of the spec, deeper down.
        st, got = create_raw(lab, '{"Name":"typed","TaskTemplate":{"ContainerSpec":'
                                  '{"Image":"busybox","Env":["A=1",2]}}}')
        assert (st, got) == (400, {"message": "invalid JSON: json: cannot unmarshal number into Go "
                                   "struct field ContainerSpec.TaskTemplate.ContainerSpec.Env "
                                   "of type string"}), (st, got)
        assert service_ls(lab) == [], "a mistyped spec created a service"
        # Update is checked the same way, and the service is left as it was.
        lab.docker("swarma", "service", "create", "--detach", "--no-resolve-image", "--name", "web",
                   "--replicas", "2", "--constraint", "node.labels.nowhere==1", "busybox")
        svc = lab.api("swarma", "GET", "/v1.47/services/web")[1]
        upd = json.dumps(svc["Spec"]).replace('"Replicas": 2', '"Replicas": "4"')
        assert '"Replicas": "4"' in upd, upd
        st, _, data = api_raw(lab.sock("swarma"), "POST",
                              "/v1.47/services/web/update?version=%d" % svc["Version"]["Index"],
                              upd, {"Content-Type": "application/json"})
        assert (st, json.loads(data)) == (400, {"message": GO_MSG % "string"}), (st, data)
        rows = service_ls(lab)
        assert [(r["NAME"], r["REPLICAS"]) for r in rows] == [("web", "0/2")], rows


@timeout(300)
def test_large_service_built_in_batches_manager_keeps_answering():
    n = 5000  # shoal's limit per service
    with Lab(ONE) as lab:
        lab.init("swarma")
        sock = lab.sock("swarma")
        pinger = Pinger(sock)
        pinger.start()
        t0 = time.monotonic()
        # No node has the label: tasks stay pending, no container is made.
        lab.docker("swarma", "service", "create", "--detach", "--no-resolve-image", "--name", "big",
                   "--replicas", str(n), "--constraint", "node.labels.nowhere==1", "busybox")
        why = "no suitable node (scheduling constraints not satisfied on 1 node)"

        def last_slot_explained():
            l = tasks(lab, name="big.%d" % n)
            return l and l[0]["Status"].get("Err") == why

        wait_until(last_slot_explained, 120, interval=0.5, what="slot %d scheduled" % n)
        built = time.monotonic() - t0
        worst, count = pinger.stop()
        print("    %d tasks made and scheduled in %.1f s; _ping max %.1f ms over %d pings"
              % (n, built, worst * 1000, count))
        assert worst < PING_BUDGET_S, "a _ping took %.0f ms during the create" % (worst * 1000)
        l = tasks(lab, service="big")
        assert len(l) == n, len(l)
        assert sorted(t["Slot"] for t in l) == list(range(1, n + 1))
        assert all(t["Status"]["State"] == "pending" and t["Status"].get("Err") == why for t in l)
        rows = service_ls(lab)
        assert [(r["NAME"], r["REPLICAS"]) for r in rows] == [("big", "0/%d" % n)], rows

        # A restart replays the service from raft and comes up answering.
        t0 = time.monotonic()
        lab.restart("swarma")
        wait_until(lambda: ping_ok(lab, 2), 60, interval=0.2, what="_ping after restart")
        up = time.monotonic() - t0
        pinger = Pinger(sock, limit=150)
        pinger.start()
        rows = wait_until(lambda: [(r["NAME"], r["REPLICAS"]) for r in service_ls(lab)], 30,
                          what="service ls after restart")
        assert rows == [("big", "0/%d" % n)], rows
        time.sleep(2)
        worst, count = pinger.stop()
        print("    restart: stop, start and _ping answered in %.1f s; _ping max %.1f ms over %d pings"
              % (up, worst * 1000, count))
        assert worst < PING_BUDGET_S, "a _ping took %.0f ms after the restart" % (worst * 1000)
        assert len(tasks(lab, name="big.%d" % n)) == 1

        # Removal goes in batches as well; the manager keeps answering. The
        # newest task goes last: polled by ID, so the poll stays light (a
        # listing of thousands of tasks is built on the loop thread).
        sid = lab.docker("swarma", "service", "inspect", "--format", "{{.ID}}", "big")[1].strip()
        last = tasks(lab, name="big.%d" % n)[0]["ID"]
        pinger = Pinger(sock)
        pinger.start()
        t0 = time.monotonic()
        lab.docker("swarma", "service", "rm", "big")
        wait_until(lambda: not tasks(lab, id=last), 120, interval=0.5, what="tasks of big gone")
        gone = time.monotonic() - t0
        worst, count = pinger.stop()
        assert tasks(lab, service=sid) == []
        print("    %d tasks removed in %.1f s; _ping max %.1f ms over %d pings"
              % (n, gone, worst * 1000, count))
        assert worst < PING_BUDGET_S, "a _ping took %.0f ms during the removal" % (worst * 1000)
        assert service_ls(lab) == []
        assert ping_ok(lab)


def raw_exchange(path, head):
    """Sends a request head as is on a fresh connection and reads until the
    server closes; returns the bytes received."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    try:
        try:
            s.sendall(head)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before reading it all
        got = b""
        for _ in range(1000):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got
    finally:
        s.close()


@timeout(120)
def test_request_head_too_large_gets_431():
    with Lab(ONE) as lab:
        sock = lab.sock("swarma")
        # dockerd reads up to 1 MiB of headers: 100 KB is an ordinary request.
        st, _, body = api_raw(sock, "GET", "/_ping", headers={"X-Big": "a" * 100 * 1024})
        assert (st, body) == (200, b"OK"), (st, body)
        head = b"GET /_ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1024 * 1024 + 8192) + b"\r\n\r\n"
        got = raw_exchange(sock, head)
        assert got == (b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                       b"Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
                       b"431 Request Header Fields Too Large"), got[:200]
        # Many large headers that add up past the limit: the same.
        head = (b"GET /_ping HTTP/1.1\r\nHost: x\r\n"
                + b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 60000) for i in range(20)) + b"\r\n")
        assert raw_exchange(sock, head).startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
        assert ping_ok(lab)
