"""The dispatcher's session as agents of two generations speak it. An
agent that does not ask for CBOR (every shoal before session 41) gets its
hello, node, peers and assignments as JSON lines and reports its tasks'
status in JSON; one that asks ("Encoding": "cbor") is told yes in the
hello, gets its assignments as CBOR frames (the other messages stay JSON
lines) and reports in CBOR. Either way the tasks it reports show Running
in `docker service ps`, and a report cut short is refused with 400. The
agent is a python client holding a worker's identity, the worker's own
shoald stopped."""

import json

from lib import HALab, timeout, wait_until
from test_security import copy_identity, script

# One session: prints what came (each message's form and Type, the hello,
# the IDs of the service's tasks assigned) and the answers to the reports.
AGENT = r'''
import datetime, json, socket, ssl, sys, time
import cbor2
a = json.loads(sys.argv[1])
cbor = a["cbor"]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.load_verify_locations(a["ca"])
ctx.load_cert_chain(a["cert"], a["key"])

def conn():
    return ctx.wrap_socket(socket.create_connection((a["host"], 2377), timeout=10))

def request(path, body, ctype, close=True):
    h = "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n" % (
        path, ctype, len(body))
    if close:
        h += "Connection: close\r\n"
    return (h + "\r\n").encode() + body

def post(path, body, ctype):
    t = conn()
    t.sendall(request(path, body, ctype))
    data = b""
    while True:
        c = t.recv(65536)
        if not c:
            break
        data += c
    t.close()
    return int(data.split(b" ", 2)[1]), data.partition(b"\r\n\r\n")[2].decode(errors="replace")

def encode(doc):
    if cbor:
        return cbor2.dumps(doc), "application/cbor"
    return json.dumps(doc).encode(), "application/json"

hello = {"Description": a["desc"]}
if cbor:
    hello["Encoding"] = "cbor"
t = conn()
t.settimeout(0.5)
t.sendall(request("/swarm/v1/session", json.dumps(hello).encode(), "application/json", False))
raw = body = b""
head = None
out = {"kinds": [], "tasks": [], "reports": []}
tasks = {}
deadline = time.monotonic() + a["timeout"]
linger = None
next_beat = time.monotonic() + 1

def message():
    """The next whole message of body: (form, value) or None."""
    global body
    if not body:
        return None
    if body[0] <= 0x1b:  # a CBOR frame: the item's length, then the item
        hn = 1 if body[0] < 24 else 1 + (1 << (body[0] - 24))
        if len(body) < hn:
            return None
        n = body[0] if hn == 1 else int.from_bytes(body[1:hn], "big")
        if len(body) < hn + n:
            return None
        m = cbor2.loads(body[hn:hn + n])
        body = body[hn + n:]
        return "cbor", m
    i = body.find(b"\n")
    if i < 0:
        return None
    m = json.loads(body[:i])
    body = body[i + 1:]
    return "json", m

while time.monotonic() < deadline and (linger is None or time.monotonic() < linger):
    try:
        c = t.recv(65536)
        if not c:
            out["closed"] = True
            break
        raw += c
    except socket.timeout:
        pass
    if head is None and b"\r\n\r\n" in raw:
        head, _, raw = raw.partition(b"\r\n\r\n")
        out["status"] = int(head.split(b" ", 2)[1])
        if out["status"] != 200:
            out["body"] = raw.decode(errors="replace")
            break
    while head is not None:  # chunked: size line, data, CRLF
        i = raw.find(b"\r\n")
        if i < 0:
            break
        n = int(raw[:i].split(b";")[0], 16)
        if len(raw) < i + 2 + n + 2:
            break
        body += raw[i + 2:i + 2 + n]
        raw = raw[i + 2 + n + 2:]
    while True:
        m = message()
        if m is None:
            break
        form, msg = m
        out["kinds"].append([form, msg.get("Type")])
        if msg.get("Type") == "session":
            out["hello"] = msg
        if msg.get("Type") not in ("assignments", "assignment_changes"):
            continue
        for task in msg.get("Tasks") or msg.get("Set") or []:
            if task.get("ServiceID") == a["service"] and task.get("DesiredState") == "running":
                tasks[task["ID"]] = task
    if "hello" in out and time.monotonic() >= next_beat:
        next_beat = time.monotonic() + 1
        post("/swarm/v1/heartbeat", json.dumps({"SessionID": out["hello"]["SessionID"]}).encode(),
             "application/json")
    if linger is None and len(tasks) >= a["want"]:
        out["tasks"] = sorted(tasks)
        # Cut short first (a map whose one value never comes), then whole.
        cut = b"\xa1\x67Updates" if cbor else b'{"Updates":'
        out["reports"].append(post("/swarm/v1/tasks", cut, encode({})[1]))
        now = datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        ups = [{"ID": i, "Status": {"State": "running", "Message": "started", "Timestamp": now}}
               for i in sorted(tasks)]
        out["reports"].append(post("/swarm/v1/tasks", *encode({"Updates": ups})))
        linger = time.monotonic() + 2
print(json.dumps(out))
'''


def running(lab, name):
    """The CURRENT STATE of name's tasks if every one is Running."""
    out = lab.docker("m1", "service", "ps", name, "--filter", "desired-state=running",
                     "--format", "{{.CurrentState}}")[1]
    st = out.strip().split("\n") if out.strip() else []
    assert st and all(s.startswith("Running") for s in st), st
    return st


@timeout(240)
def test_json_and_cbor_agents_take_and_report_tasks():
    with HALab({"m1": "192.168.33.10", "w1": "192.168.33.30"}) as lab:
        lab.init("m1")
        lab.join("w1", lab.token("m1", "worker"), "m1")
        ident = copy_identity(lab, "w1", "w1-id")
        desc = json.loads(lab.docker("m1", "node", "inspect", "w1")[1])[0]["Description"]
        lab.stop("w1")
        agent = script(lab, "agent.py", AGENT)
        for form in ("json", "cbor"):
            name = "via-" + form
            lab.docker("m1", "service", "create", "-d", "--no-resolve-image", "--name", name,
                       "--replicas", "2", "--constraint", "node.hostname==w1", "busybox",
                       "sleep", "1d")
            sid = lab.docker("m1", "service", "inspect", name, "--format", "{{.ID}}")[1].strip()
            args = {"host": lab.ip("m1"), "cert": ident[0], "key": ident[1], "ca": ident[2],
                    "desc": desc, "cbor": form == "cbor", "service": sid, "want": 2,
                    "timeout": 60}
            # Debian's python3, which has python3-cbor2 (scripts/deps.sh).
            _, out, _ = lab.exec("w1", "/usr/bin/python3", agent, json.dumps(args), timeout=90)
            res = json.loads(out)
            kinds = res["kinds"]
            print("    %s agent: %s; reports %s" % (form, kinds, [r[0] for r in res["reports"]]))
            assert res.get("status") == 200, res
            hello = res["hello"]
            assert hello.get("Encoding") == ("cbor" if form == "cbor" else None), hello
            assert kinds[0] == ["json", "session"], kinds
            assigned = [k for k in kinds if k[1] in ("assignments", "assignment_changes")]
            assert assigned, kinds
            # Assignments in the form asked for; everything else JSON lines.
            for f, typ in kinds:
                want = form if typ in ("assignments", "assignment_changes") else "json"
                assert f == want, (f, typ, kinds)
            ps = lab.docker("m1", "service", "ps", name, "--format", "{{.ID}}", "--no-trunc")[1]
            assert sorted(ps.split()) == res["tasks"], (ps, res["tasks"])
            (bad, bad_body), (good, good_body) = res["reports"]
            assert bad == 400, res["reports"]
            want_msg = "invalid CBOR" if form == "cbor" else "invalid JSON"
            assert want_msg in json.loads(bad_body)["message"], bad_body
            assert good == 200, res["reports"]
            wait_until(lambda: running(lab, name), 15, what="%s's tasks Running" % name)
