"""docs/compatibility.md stays true: every endpoint of the Engine API
reference (v1.47) has one row there, and a row says "no" exactly when the
API router (src/api/*.c) has no route for it, which a live manager shows by
answering Docker's 404 "page not found". Each endpoint is asked once, with
an ID that names nothing and no body, so no call changes anything."""
import json
import os
import re
import socket

from lib import ROOT, Lab, timeout

REF = os.environ.get("SHOAL_API_REF", "/work/shared/reference/docker-engine-api-v1.47.yaml")
DOC = os.path.join(ROOT, "docs", "compatibility.md")
PROBE_ID = "shoalprobe0000000000000000"


def reference_endpoints():
    """(METHOD, path) of every operation in the API reference, in order."""
    if not os.path.exists(REF):
        ref = os.path.join(os.path.dirname(ROOT), "shared", "reference",
                           "docker-engine-api-v1.47.yaml")
    else:
        ref = REF
    out, cur = [], None
    with open(ref) as f:
        for line in f:
            m = re.match(r"^  (/[^:]*):\s*$", line)
            if m:
                cur = m.group(1)
                continue
            m = re.match(r"^    (get|post|put|delete|head):\s*$", line)
            if m and cur:
                out.append((m.group(1).upper(), cur))
    return out


ROW = re.compile(r"^\| (GET|POST|PUT|DELETE|HEAD) \| `(/[^`]*)` \| (yes|partly|refused|no) \|")


def documented():
    rows = {}
    with open(DOC) as f:
        for line in f:
            m = ROW.match(line)
            if m:
                key = (m.group(1), m.group(2))
                assert key not in rows, "%s %s has two rows in compatibility.md" % key
                rows[key] = m.group(3)
    return rows


def probe(sock_path, method, path):
    """(status, message) of one request with no body; the path's {params}
    name nothing; /events is bounded so it ends."""
    p = re.sub(r"\{[^}]+\}", PROBE_ID, path)
    if p == "/events":
        p += "?since=1&until=2"
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(sock_path)
    req = "%s /v1.47%s HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" % (method, p)
    s.sendall(req.encode())
    data = b""
    try:
        while len(data) < 65536:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data and method == "HEAD":
                break
    except socket.timeout:
        pass
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    msg = ""
    try:
        msg = json.loads(body.decode(errors="replace").split("\r\n")[-1] or body)["message"]
    except (ValueError, KeyError, TypeError, IndexError):
        m = re.search(rb'"message":"([^"]*)"', body)
        msg = m.group(1).decode() if m else ""
    return status, msg


@timeout(120)
def test_compatibility_doc_matches_the_router():
    ref = reference_endpoints()
    assert len(ref) > 100, "the API reference lists %d endpoints" % len(ref)
    rows = documented()
    missing = [e for e in ref if e not in rows]
    extra = [e for e in rows if e not in ref]
    assert not missing, "endpoints missing from compatibility.md: %r" % missing
    assert not extra, "compatibility.md rows not in the API reference: %r" % extra
    with Lab({"swarma": "192.168.33.10"}) as lab:
        lab.docker("swarma", "swarm", "init", "--advertise-addr", "192.168.33.10")
        wrong = []
        for method, path in ref:
            status, msg = probe(lab.sock("swarma"), method, path)
            # A HEAD answer has no body: its 404 counts as no route.
            routed = not (status == 404 and (msg == "page not found" or
                                             (method == "HEAD" and not msg)))
            said = rows[(method, path)]
            if routed != (said != "no"):
                wrong.append("%s %s: doc says %s, the router answers %d %r"
                             % (method, path, said, status, msg))
        assert lab.docker("swarma", "info", "--format", "{{.Swarm.LocalNodeState}}")[1].strip() == "active"
        assert not wrong, "compatibility.md disagrees with the router:\n" + "\n".join(wrong)
