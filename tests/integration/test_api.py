"""The Engine API under bad input, and its negotiation with clients: errors
are {"message": ...} with dockerd's status codes, and the daemon stays up
through garbage on its API socket and on the swarm port."""

import json
import socket
import sys
import tempfile
import time

from lib import SEED, Lab, UnixHTTPConnection, api_raw, openssl_selfsigned, timeout, wait_until

ONE = {"swarma": SEED["swarma"]}


def is_error(st, body, status):
    assert st == status, "status %d, want %d: %r" % (st, status, body)
    assert isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"], \
        "error body is not {\"message\": ...}: %r" % (body,)
    return body["message"]


def alive(lab, host="swarma"):
    st, body = lab.api(host, "GET", "/_ping")
    assert (st, body) == (200, "OK"), (st, body)


def raw_unix(sock, data, read_timeout=10):
    """Sends raw bytes, returns everything the server answers until it
    closes or goes quiet for read_timeout seconds."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(read_timeout)
    s.connect(sock)
    out = b""
    try:
        for d in data if isinstance(data, (list, tuple)) else [data]:
            s.sendall(d)
    except (socket.timeout, ConnectionResetError, BrokenPipeError):
        pass  # the server may answer and close before taking it all
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except (socket.timeout, ConnectionResetError, BrokenPipeError):
        pass
    finally:
        s.close()
    return out


def test_ping_headers_and_swarm_state():
    with Lab({"swarma": SEED["swarma"], "swarmb": SEED["swarmb"]}) as lab:
        for method in ("GET", "HEAD"):
            st, h, body = api_raw(lab.sock("swarma"), method, "/_ping")
            assert st == 200, st
            assert h.get("ostype") == "linux", h
            assert h.get("swarm") == "inactive", h
            assert h.get("api-version", "").startswith("1."), h
            assert h.get("cache-control") == "no-cache, no-store, must-revalidate", h
            assert h.get("pragma") == "no-cache", h
            assert body == (b"OK" if method == "GET" else b""), body
        api_version = h["api-version"]
        _, out, _ = lab.docker("swarma", "version", "--format", "{{.Server.APIVersion}} {{.Server.MinAPIVersion}} {{.Server.Os}}")
        assert out.split() == [api_version, "1.24", "linux"], out
        lab.init("swarma")
        lab.join("swarmb", lab.token("swarma"))
        assert api_raw(lab.sock("swarma"), "HEAD", "/_ping")[1].get("swarm") == "active/manager"
        assert api_raw(lab.sock("swarmb"), "HEAD", "/_ping")[1].get("swarm") == "active/worker"
        # Keep-alive: several requests on one connection.
        c = UnixHTTPConnection(lab.sock("swarma"))
        for _ in range(3):
            c.request("GET", "/v1.24/_ping")
            r = c.getresponse()
            assert (r.status, r.read()) == (200, b"OK")
        c.close()


def test_version_negotiation():
    with Lab(ONE) as lab:
        st, v = lab.api("swarma", "GET", "/version")
        assert st == 200 and v["MinAPIVersion"] == "1.24", v
        maxv = v["ApiVersion"]
        for path in ("/v1.24/version", "/v%s/version" % maxv, "/v1.24/info", "/v1.30/_ping"):
            st, body = lab.api("swarma", "GET", path)
            assert st == 200, (path, st, body)
        msg = is_error(*lab.api("swarma", "GET", "/v1.99/version"), 400)
        assert msg == "client version 1.99 is too new. Maximum supported API version is %s" % maxv, msg
        msg = is_error(*lab.api("swarma", "GET", "/v1.12/info"), 400)
        assert msg.startswith("client version 1.12 is too old. Minimum supported API version is 1.24"), msg
        # The stock CLI negotiates down to what the daemon offers.
        _, out, _ = lab.docker("swarma", "version", "--format", "{{.Client.APIVersion}}")
        assert out.strip() == maxv, out
        is_error(*lab.api("swarma", "GET", "/nonexistent"), 404)
        is_error(*lab.api("swarma", "GET", "/v1.47/nonexistent/path"), 404)


def test_not_in_swarm_errors():
    with Lab(ONE) as lab:
        for path in ("/swarm", "/nodes", "/nodes/abc"):
            msg = is_error(*lab.api("swarma", "GET", path), 503)
            assert msg.startswith("This node is not a swarm manager. Use \"docker swarm init\" or "
                                  "\"docker swarm join\" to connect this node to swarm and try again."), msg
        is_error(*lab.api("swarma", "POST", "/swarm/leave"), 503)


def test_malformed_json_and_wrong_types():
    with Lab(ONE) as lab:
        sock_bad = [
            b'{"ListenAddr": ',                 # truncated
            b'not json at all',
            b'[1, 2, 3]',                       # not an object
            b'{"ListenAddr": 5}',               # wrong type
            b'{"AdvertiseAddr": ["192.168.33.10"]}',
            b'{"AdvertiseAddr": "192.168.33.10", "Spec": {"Orchestration": {"TaskHistoryRetentionLimit": "x"}}}',
            b'{"AdvertiseAddr": "192.168.33.10", "Spec": {"Dispatcher": {"HeartbeatPeriod": -1}}}',
            b'{"AdvertiseAddr": "not-an-address!"}',
            b'\xff\xfe\x00garbage',
        ]
        for body in sock_bad:
            st, resp = lab.api("swarma", "POST", "/swarm/init", body,
                               headers={"Content-Type": "application/json"})
            assert st == 400, (body, st, resp)
            is_error(st, resp, 400)
        alive(lab)
        # Still not in a swarm after all that.
        st, info = lab.api("swarma", "GET", "/info")
        assert info["Swarm"]["LocalNodeState"] == "inactive", info

        nid = lab.init("swarma")
        st, node = lab.api("swarma", "GET", "/nodes/" + nid)
        assert st == 200 and node["ID"] == nid, node
        ver = node["Version"]["Index"]
        spec = node["Spec"]
        upd = "/nodes/%s/update?version=%d" % (nid, ver)
        for body in (b'{"Availability": ', b'{"Availability": 7}', b'{"Availability": "sideways"}',
                     b'{"Role": "boss"}', b'{"Labels": ["a"]}', b'"drain"'):
            is_error(*lab.api("swarma", "POST", upd, body, headers={"Content-Type": "application/json"}), 400)
        is_error(*lab.api("swarma", "POST", "/nodes/%s/update" % nid, spec), 400)
        is_error(*lab.api("swarma", "POST", "/nodes/%s/update?version=abc" % nid, spec), 400)
        # Nothing changed.
        st, node2 = lab.api("swarma", "GET", "/nodes/" + nid)
        assert node2["Version"]["Index"] == ver and node2["Spec"] == spec, (node, node2)
        # Bad filters.
        is_error(*lab.api("swarma", "GET", "/nodes?filters=%7Bbad"), 400)
        msg = is_error(*lab.api("swarma", "GET", "/nodes?filters=" +
                                 json.dumps({"colour": ["red"]}).replace(" ", "")), 400)
        assert "colour" in msg, msg
        alive(lab)


def test_unknown_ids_are_404():
    with Lab(ONE) as lab:
        lab.init("swarma")
        msg = is_error(*lab.api("swarma", "GET", "/nodes/doesnotexist"), 404)
        assert "doesnotexist" in msg and "not found" in msg, msg
        is_error(*lab.api("swarma", "DELETE", "/nodes/doesnotexist"), 404)
        is_error(*lab.api("swarma", "POST", "/nodes/doesnotexist/update?version=1",
                          {"Availability": "drain", "Role": "worker"}), 404)
        rc, _, err = lab.docker("swarma", "node", "update", "--availability", "drain", "doesnotexist",
                                check=False)
        assert rc == 1 and "doesnotexist" in err, err


def test_stale_version_update_out_of_sequence():
    with Lab(ONE) as lab:
        nid = lab.init("swarma")
        st, node = lab.api("swarma", "GET", "/nodes/" + nid)
        ver, spec = node["Version"]["Index"], node["Spec"]
        spec["Labels"] = {"a": "1"}
        st, body = lab.api("swarma", "POST", "/nodes/%s/update?version=%d" % (nid, ver), spec)
        assert st == 200, (st, body)
        spec["Labels"] = {"a": "2"}
        st, body = lab.api("swarma", "POST", "/nodes/%s/update?version=%d" % (nid, ver), spec)
        assert st not in (200, 404) and st >= 400, (st, body)
        assert "update out of sequence" in body["message"], body
        st, node = lab.api("swarma", "GET", "/nodes/" + nid)
        assert node["Spec"]["Labels"] == {"a": "1"} and node["Version"]["Index"] > ver, node
        # The same for the cluster object.
        st, sw = lab.api("swarma", "GET", "/swarm")
        sver = sw["Version"]["Index"]
        st, body = lab.api("swarma", "POST", "/swarm/update?version=%d" % sver, sw["Spec"])
        assert st == 200, body
        st, body = lab.api("swarma", "POST", "/swarm/update?version=%d" % sver, sw["Spec"])
        assert st >= 400 and "update out of sequence" in body["message"], (st, body)


def test_huge_and_truncated_bodies():
    with Lab(ONE) as lab:
        sock = lab.sock("swarma")
        head = (b"POST /v1.24/swarm/init HTTP/1.1\r\nHost: docker\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n")
        out = raw_unix(sock, [head, b"{" + b" " * (1 << 20)])
        assert out.startswith(b"HTTP/1.1 413 "), out[:200]
        body = out.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in out else b""
        assert b'"message"' in body, out[:400]
        # Chunked, without end.
        head = (b"POST /v1.24/swarm/init HTTP/1.1\r\nHost: docker\r\n"
                b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"100000\r\n" + b" " * 0x100000 + b"\r\n"
        out = raw_unix(sock, [head] + [chunk] * 40, read_timeout=10)
        assert out.startswith(b"HTTP/1.1 413 ") or out == b"", out[:200]
        # A client that announces a body and hangs up half-way.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock)
        s.sendall(b"POST /v1.24/swarm/init HTTP/1.1\r\nHost: d\r\nContent-Length: 100\r\n\r\n{\"Li")
        s.close()
        # Garbage instead of HTTP.
        out = raw_unix(sock, b"\x16\x03\x01\x02\x00garbage\r\n\r\n", read_timeout=5)
        assert out == b"" or out.startswith(b"HTTP/1.1 400"), out[:200]
        alive(lab)
        st, info = lab.api("swarma", "GET", "/info")
        assert st == 200 and info["Swarm"]["LocalNodeState"] == "inactive", info


GARBAGE_CLIENT = r"""
import os, socket, sys
addr = (sys.argv[1], 2377)
for payload in (os.urandom(4096), b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\xff\xff" + os.urandom(100), b""):
    s = socket.create_connection(addr, timeout=5)
    try:
        if payload:
            s.sendall(payload)
        s.settimeout(3)
        try:
            s.recv(4096)
        except (socket.timeout, ConnectionResetError):
            pass
    finally:
        s.close()
# Many half-open connections at once, then all dropped.
conns = [socket.create_connection(addr, timeout=5) for _ in range(50)]
for c in conns:
    c.close()
print("done")
"""

TLS_CLIENT = r"""
import socket, ssl, sys
host, cert, key = sys.argv[1], sys.argv[2], sys.argv[3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
if cert != "-":
    ctx.load_cert_chain(cert, key)
raw = socket.create_connection((host, 2377), timeout=5)
try:
    s = ctx.wrap_socket(raw)
    s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
    data = s.recv(4096)
    print("DATA", repr(data))
except (ssl.SSLError, ConnectionResetError, BrokenPipeError, socket.timeout) as e:
    print("REFUSED", type(e).__name__, e)
"""


@timeout(240)
def test_garbage_and_uncertified_tls_on_swarm_port():
    with Lab({"swarma": SEED["swarma"], "swarmb": SEED["swarmb"]}) as lab:
        ids = lab.cluster(workers=("swarmb",))
        # Garbage from inside a lab host: the manager's swarm port.
        _, out, err = lab.exec("swarmb", sys.executable, "-c", GARBAGE_CLIENT, "192.168.33.10",
                               timeout=90)
        assert out.strip() == "done", (out, err)
        with tempfile.TemporaryDirectory() as d:
            crt, key = openssl_selfsigned(d)
            for c, k in (("-", "-"), (crt, key)):
                _, out, err = lab.exec("swarmb", sys.executable, "-c", TLS_CLIENT, "192.168.33.10", c, k,
                                       timeout=30)
                # Refused: the handshake fails (foreign CA) or the request is
                # answered 401 (no certificate: the port also serves joins).
                assert out.startswith("REFUSED") or out.strip() in ("DATA b''",) or (
                    c == "-" and "401 Unauthorized" in out and "certificate" in out), \
                    "TLS client with %s got an answer: %s %s" % ("no cert" if c == "-" else "a foreign cert", out, err)
        alive(lab, "swarma")
        alive(lab, "swarmb")
        time.sleep(1)
        wait_until(lambda: lab.node_status("swarma", ids["swarmb"]) == ("ready", "active"), 30,
                   what="worker still Ready")
        assert len(lab.node_ls()) == 2
        # The cluster still admits a well-behaved node afterwards.
        rc, out, err = lab.docker("swarma", "node", "ls", "-q")
        assert sorted(out.split()) == sorted(ids.values()), out
