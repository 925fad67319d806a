"""Authorisation on the swarm port from the cluster's state (issue 10): a
removed or demoted manager's old certificate opens nothing, a node renews
only its own certificate, clients talk only to managers (a fake manager
with a worker's certificate gets no join token), TLS is AEAD-only, and the
raft index is for managers. Driven with the stock docker CLI plus a small
python TLS client/server run inside the lab's hosts."""

import json
import os
import shutil
import subprocess
import time

from lib import LAB, HALab, timeout, wait_until

API = "/swarm/v1/forward/v1.47"

# One HTTPS request with a given identity; prints {"status", "body"} or
# {"refused": why} (the TLS handshake or the connection failed).
CLIENT = r'''
import json, socket, ssl, sys
a = json.loads(sys.argv[1])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
if a.get("ca"):
    ctx.load_verify_locations(a["ca"])
else:
    ctx.verify_mode = ssl.CERT_NONE
if a.get("cert"):
    ctx.load_cert_chain(a["cert"], a["key"])
if a.get("ciphers"):
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(a["ciphers"])
try:
    s = socket.create_connection((a["host"], int(a["port"])), timeout=5)
    t = ctx.wrap_socket(s)
except (OSError, ssl.SSLError) as e:
    print(json.dumps({"refused": "%s: %s" % (type(e).__name__, e)}))
    sys.exit(0)
body = a.get("body", "").encode()
head = "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n" % (
    a.get("method", "GET"), a["path"], len(body))
head += "Content-Type: application/json\r\n"
for h in a.get("headers", []):
    head += h + "\r\n"
t.sendall(head.encode() + b"\r\n" + body)
data = b""
try:
    while True:
        c = t.recv(65536)
        if not c:
            break
        data += c
        if a.get("upgrade") and b"\r\n\r\n" in data:
            break
except (OSError, ssl.SSLError):
    pass
text = data.decode(errors="replace")
line, _, rest = text.partition("\r\n")
parts = line.split(" ")
status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
print(json.dumps({"status": status, "line": line, "body": rest.partition("\r\n\r\n")[2],
                  "cipher": t.cipher()[0], "version": t.version()}))
'''

# A fake manager: TLS on port 2377 with a worker's certificate; serves the
# real root CA on GET /swarm/v1/ca (as a thief can) and records every
# request line and body it gets.
FAKE = r'''
import socket, ssl, sys, threading
host, crt, key, root, log = sys.argv[1:6]
ca = open(root, "rb").read()
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(crt, key)
srv = socket.create_server((host, 2377))
def serve(c):
    try:
        t = ctx.wrap_socket(c, server_side=True)
        data = t.recv(65536)
        with open(log, "ab") as f:
            f.write(b"REQUEST " + data + b"\n")
        if data.startswith(b"GET /swarm/v1/ca"):
            t.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-pem-file\r\n"
                      b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(ca) + ca)
        else:
            t.sendall(b"HTTP/1.1 500 x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        t.close()
    except Exception as e:
        with open(log, "ab") as f:
            f.write(b"HANDSHAKE-FAILED " + repr(e).encode() + b"\n")
        c.close()
open(log, "ab").close()
print("listening", flush=True)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
'''


def script(lab, name, text):
    path = os.path.join(lab.dir, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def request(lab, host, target, path, method="GET", ident=None, body="", headers=(),
            ciphers=None, upgrade=False):
    """One HTTPS request from lab host `host` to `target`:2377 with
    ident = (cert, key, root CA) paths (None: no client certificate, no
    server check); the parsed answer of CLIENT."""
    client = script(lab, "tls_client.py", CLIENT)
    a = {"host": lab.ip(target), "port": 2377, "method": method, "path": path,
         "body": body, "headers": list(headers), "ciphers": ciphers, "upgrade": upgrade}
    if ident:
        a.update({"cert": ident[0], "key": ident[1], "ca": ident[2]})
    _, out, _ = lab.exec(host, "python3", client, json.dumps(a), timeout=30)
    return json.loads(out)


def message(res):
    try:
        return json.loads(res.get("body") or "{}").get("message")
    except ValueError:
        return None


def copy_identity(lab, host, dest):
    """Copies host's certificate, key and root CA into lab.dir/dest."""
    d = os.path.join(lab.dir, dest)
    os.makedirs(d, exist_ok=True)
    out = []
    for p in lab.certs(host):
        q = os.path.join(d, os.path.basename(p))
        shutil.copyfile(p, q)
        out.append(q)
    return tuple(out)


def refused(res, status=403):
    return res.get("status") == status and message(res)


def node_rows(lab, host):
    return sorted((r["ID"].rstrip(" *"), r["HOSTNAME"], r["STATUS"], r["MANAGER STATUS"])
                  for r in lab.node_ls(host))


def services(lab, host):
    out = lab.docker(host, "service", "ls", "--format", "{{.ID}} {{.Name}} {{.Replicas}}")[1]
    return sorted(out.split("\n"))


@timeout(240)
def test_demoted_then_removed_manager_refused_everywhere():
    with HALab({"m1": "192.168.33.10", "m2": "192.168.33.11", "w1": "192.168.33.30"}) as lab:
        ids = lab.ha_cluster(["m1", "m2"], ["w1"])
        # m2's state while it is a manager: what an attacker keeps.
        lab.stop("m2")
        saved = os.path.join(lab.dir, "m2-saved")
        shutil.copytree(os.path.join(lab.dir, "m2", "data", "swarm"), saved, symlinks=True)
        old = copy_identity(lab, "m2", "m2-old-cert")
        lab.start("m2")
        leader = lab.wait_leader(["m1", "m2"], timeout=30)
        # While a manager, its certificate works on manager endpoints.
        res = request(lab, "w1", leader, API + "/nodes", ident=old)
        assert res.get("status") == 200, res

        # Demoted: the same certificate no longer opens manager endpoints.
        _, out, err = lab.docker("m1", "node", "demote", "m2")
        assert out == "Manager m2 demoted in the swarm.\n", (out, err)
        wait_until(lambda: lab.docker("m1", "info", "--format", "{{.Swarm.Managers}}")[1].strip()
                   == "1", 30, what="one manager left")
        wait_until(lambda: refused(request(lab, "w1", "m1", API + "/services/create", "POST",
                                           old, body='{"Name":"evil"}')), 20,
                   what="the demoted manager's forward refused")
        res = request(lab, "w1", "m1", API + "/services/create", "POST", old,
                      body='{"Name":"evil","TaskTemplate":{"ContainerSpec":{"Image":"x"}}}')
        assert res["status"] == 403 and "not a manager" in message(res), res
        res = request(lab, "w1", "m1", "/swarm/v1/index", ident=old)
        assert refused(res), res
        print("    demoted manager's old certificate: %d %s" % (res["status"], message(res)))

        lab.docker("m1", "service", "create", "--detach", "--name", "keep", "--replicas", "0",
                   "busybox")
        # Removed: recorded in the cluster, refused everywhere.
        _, out, _ = lab.docker("m1", "node", "rm", "--force", "m2")
        assert out.strip() == "m2", out
        lab.stop("m2")
        live = os.path.join(lab.dir, "m2", "data", "swarm")
        shutil.rmtree(live)
        shutil.copytree(saved, live, symlinks=True)
        before_nodes = node_rows(lab, "m1")
        before_services = services(lab, "m1")
        assert sorted(r[1] for r in before_nodes) == sorted(["m1", "w1"]), before_nodes
        lab.start("m2")
        checks = {
            "forward": request(lab, "w1", "m1", API + "/services/create", "POST", old,
                               body='{"Name":"evil"}'),
            "renew": request(lab, "w1", "m1", "/swarm/v1/renew", "POST", old,
                             body='{"CSR":"x"}'),
            "session": request(lab, "w1", "m1", "/swarm/v1/session", "POST", old, body="{}"),
            "raft join": request(lab, "w1", "m1", "/swarm/v1/raft/join", "POST", old,
                                 body="{}"),
            "raft": request(lab, "w1", "m1", "/swarm/v1/raft", "POST", old, upgrade=True,
                            headers=["Upgrade: shoal-raft", "Connection: Upgrade"]),
        }
        for what, res in checks.items():
            assert res.get("status") == 403 and "removed" in (message(res) or ""), (what, res)
        print("    removed manager: " + "; ".join("%s -> %d" % (k, v["status"])
                                                  for k, v in checks.items()))
        # The restored node itself gets nowhere: its raft is refused, so
        # it never has a leader to forward to.
        time.sleep(3)
        rc, _, err = lab.docker("m2", "service", "create", "--detach", "--name", "evil",
                                "busybox", check=False, timeout=30)
        assert rc != 0, "a write through the removed manager succeeded"
        # The cluster is untouched.
        assert node_rows(lab, "m1") == before_nodes, (node_rows(lab, "m1"), before_nodes)
        assert services(lab, "m1") == before_services
        assert lab.leader("m1") == "m1"
        # ...and survives a restart of the leader (the record is in raft).
        lab.restart("m1")
        lab.wait_leader(["m1"], timeout=30)
        res = request(lab, "w1", "m1", API + "/nodes", ident=old)
        assert res.get("status") == 403 and "removed" in message(res), res
        assert ids["m2"] not in [r[0] for r in node_rows(lab, "m1")]


@timeout(150)
def test_renewal_only_for_self_and_fake_manager_gets_no_token():
    with HALab({"m1": "192.168.33.10", "w1": "192.168.33.30", "j1": "192.168.33.31"}) as lab:
        mid = lab.init("m1")
        lab.join("w1", lab.token("m1", "worker"), "m1")
        wid = lab.node_id("w1")
        w = copy_identity(lab, "w1", "w1-cert")
        m = copy_identity(lab, "m1", "m1-cert")

        # A node renews its own certificate only.
        res = request(lab, "j1", "m1", "/swarm/v1/renew", "POST", w, body='{"CSR":"x"}',
                      headers=["Shoal-For-Node: " + mid])
        assert refused(res), res
        print("    renewal for another node: %d %s" % (res["status"], message(res)))
        # Cluster state is for managers.
        res = request(lab, "j1", "m1", "/swarm/v1/index", ident=w)
        assert refused(res), res
        res = request(lab, "j1", "m1", "/swarm/v1/index", ident=m)
        assert res.get("status") == 200 and "Index" in res["body"], res
        # No certificate: 401 and nothing else.
        res = request(lab, "j1", "m1", "/swarm/v1/index")
        assert res.get("status") == 401, res

        # TLS: CBC suites are refused; AEAD TLS 1.2 works.
        cbc = request(lab, "j1", "m1", "/swarm/v1/ca", ciphers=
                      "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA256:"
                      "ECDHE-RSA-AES128-SHA:AES128-SHA:AES256-SHA:AES128-SHA256")
        assert "refused" in cbc, cbc
        gcm = request(lab, "j1", "m1", "/swarm/v1/ca", ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
        assert gcm.get("status") == 200 and gcm["version"] == "TLSv1.2", gcm
        print("    CBC-only TLS 1.2 client: %s" % cbc["refused"][:80])

        # A fake manager with w1's certificate on w1's address.
        fake = script(lab, "fake_manager.py", FAKE)
        log = os.path.join(lab.dir, "fake.log")
        proc = subprocess.Popen([LAB, "--dir", lab.dir, "exec", "w1", "python3", fake,
                                 lab.ip("w1"), w[0], w[1], w[2], log],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            assert proc.stdout.readline().strip() == "listening"
            token = lab.token("m1", "manager")
            rc, out, err = lab.docker("j1", "swarm", "join", "--token", token,
                                      "%s:2377" % lab.ip("w1"), check=False, timeout=60)
            assert rc != 0, (out, err)
            assert "not a manager of this swarm" in err, err
            print("    join through a fake manager: " + err.strip()[:160])
            with open(log, "rb") as f:
                seen = f.read()
            assert token.encode() not in seen, seen
            assert b"POST" not in seen, seen
            # j1 is still free to join the real swarm.
            assert lab.docker("j1", "info", "--format", "{{.Swarm.LocalNodeState}}")[1].strip() \
                == "inactive"
        finally:
            proc.kill()
            proc.wait(timeout=10)
        _, out, _ = lab.join("j1", lab.token("m1", "worker"), "m1")
        assert out == "This node joined a swarm as a worker.\n", out
        assert wid in [r["ID"].rstrip(" *") for r in lab.node_ls("m1")]
