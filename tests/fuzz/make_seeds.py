#!/usr/bin/env python3
"""Writes the seed corpora of the swarm, node, manifest, layer and entry fuzz
targets (tests/fuzz/corpus-{swarm,node,manifest,layer,entry}); corpus-snapshot
comes from the store code itself (tests/fuzz/gen_snapshot.c). Run from the
repository root; needs the openssl command (for a real CSR). Files are
rewritten, so the output is the committed corpus (except the CSR's key, which
is random)."""
import gzip
import io
import json
import os
import struct
import subprocess
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))


def out(corpus, name, data):
    d = os.path.join(HERE, "corpus-" + corpus)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- layer tarballs -------------------------------------------------------

def tar(entries, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for e in entries:
            kind, name = e[0], e[1]
            ti = tarfile.TarInfo(name)
            ti.mtime = 1700000000
            data = None
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            elif kind == "file":
                ti.mode = 0o644
                data = e[2]
                ti.size = len(data)
            elif kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, e[2]
            elif kind == "hard":
                ti.type, ti.linkname = tarfile.LNKTYPE, e[2]
            elif kind == "chr":
                ti.type, ti.devmajor, ti.devminor = tarfile.CHRTYPE, e[2], e[3]
            elif kind == "fifo":
                ti.type = tarfile.FIFOTYPE
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def hardlink_with_data(name, target, data):
    """A hardlink entry that carries data (pax allows it): tarfile will not
    write one, so patch the size field of a plain one by hand."""
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mtime = tarfile.LNKTYPE, target, 1700000000
    hdr = bytearray(ti.tobuf(tarfile.USTAR_FORMAT))
    hdr[124:136] = b"%011o\0" % len(data)
    hdr[148:156] = b" " * 8
    hdr[148:156] = b"%06o\0 " % sum(hdr)
    pad = b"\0" * ((512 - len(data) % 512) % 512)
    return bytes(hdr) + data + pad


def layer_seeds():
    base = [("dir", "etc"), ("file", "etc/hostname", b"fuzz\n"),
            ("dir", "bin"), ("file", "bin/busybox", b"\x7fELF" + b"\0" * 60),
            ("sym", "bin/sh", "busybox"), ("hard", "bin/ls", "bin/busybox"),
            ("sym", "etc/mtab", "/proc/mounts")]
    out("layer", "plain", tar(base))
    out("layer", "gnu", tar(base, tarfile.GNU_FORMAT))
    out("layer", "gzip", gzip.compress(tar(base), mtime=0))
    out("layer", "whiteouts", tar([
        ("dir", "etc"), ("file", "etc/.wh.passwd", b""),
        ("dir", "var/lib/apt"), ("file", "var/lib/apt/.wh..wh..opq", b""),
        ("file", ".wh..wh.plnk", b""), ("chr", "etc/shadow", 0, 0)]))
    out("layer", "whiteout-empty", tar([("file", "etc/.wh.", b"")]))
    out("layer", "dotdot", tar([("file", "../outside/f", b"pwned\n")]))
    out("layer", "dotdot-inner", tar([("dir", "a"),
                                      ("file", "a/../../outside/g", b"x")]))
    out("layer", "absolute", tar([("file", "/etc/abs", b"inside\n"),
                                  ("sym", "/abs-link", "/etc/abs")]))
    out("layer", "symlink-dir", tar([("sym", "evil", "../outside"),
                                     ("file", "evil/f", b"pwned\n")]))
    out("layer", "symlink-abs-dir", tar([("sym", "evil", "/tmp"),
                                         ("file", "evil/shoal-pwned", b"x")]))
    out("layer", "symlink-replace", tar([("sym", "s", "../outside/f"),
                                         ("file", "s", b"pwned\n")]))
    out("layer", "dir-then-symlink", tar([("dir", "d"), ("sym", "d", "../outside"),
                                          ("file", "d/f", b"pwned\n")]))
    out("layer", "hardlink-out", tar([("hard", "h", "../outside/f")]))
    sym = tarfile.TarInfo("s")
    sym.type, sym.linkname, sym.mtime = tarfile.SYMTYPE, "../outside/f", 1
    out("layer", "hardlink-symlink", sym.tobuf(tarfile.USTAR_FORMAT) +
        hardlink_with_data("h", "s", b"pwned\n") + b"\0" * 1024)
    out("layer", "whiteout-symlink", tar([("sym", "s", "../outside"),
                                          ("file", "s/.wh.f", b"")]))
    out("layer", "devices", tar([("chr", "dev/null", 1, 3), ("fifo", "run/fifo"),
                                 ("chr", "dev/wh", 0, 0)]))
    t = tar(base)
    out("layer", "truncated", t[:700])
    out("layer", "garbage", b"this is not a tar archive\n" * 3)
    out("layer", "gzip-garbage", gzip.compress(b"not a tar" * 40, mtime=0))
    out("layer", "empty", b"")


# ---- manifests ------------------------------------------------------------

SEP = "\n---\n"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
D_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
D_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
D_CONFIG = "application/vnd.docker.container.image.v1+json"
D_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def config(diff_ids=None, **extra):
    c = {
        "architecture": "amd64", "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                           "/usr/bin:/sbin:/bin"], "Cmd": ["sh"],
                   "WorkingDir": "/", "Labels": {"org.example": "fuzz"},
                   "ExposedPorts": {"80/tcp": {}}, "User": "1000:1000"},
        "rootfs": {"type": "layers",
                   "diff_ids": diff_ids if diff_ids is not None else ["@L@"]},
        "history": [{"created": "2024-01-01T00:00:00Z",
                     "created_by": "/bin/sh -c #(nop) ADD file:abc in / "}],
    }
    c.update(extra)
    return json.dumps(c, indent=2)


def manifest(mt=OCI_MANIFEST, cmt=OCI_CONFIG, lmt=OCI_LAYER, cfg="@2@",
             layers=("@L@",)):
    return json.dumps({
        "schemaVersion": 2, "mediaType": mt,
        "config": {"mediaType": cmt, "digest": cfg, "size": 1000},
        "layers": [{"mediaType": lmt, "digest": d, "size": 2048}
                   for d in layers],
        "annotations": {"org.opencontainers.image.created": "2024-01-01"},
    }, indent=3)


def index(entries, mt=OCI_INDEX, ann=None):
    d = {"schemaVersion": 2, "mediaType": mt, "manifests": entries}
    if ann:
        d["annotations"] = ann
    return json.dumps(d, indent=2)


def desc(digest, mt=OCI_MANIFEST, arch=None, variant=None, name=None):
    d = {"mediaType": mt, "digest": digest, "size": 500}
    if arch:
        d["platform"] = {"architecture": arch, "os": "linux"}
        if variant:
            d["platform"]["variant"] = variant
    if name:
        d["annotations"] = {"io.containerd.image.name": name,
                            "org.opencontainers.image.ref.name": "latest"}
    return d


def manifest_seeds():
    out("manifest", "oci-single", SEP.join([
        index([desc("@1@", name="docker.io/library/fuzz:latest")]),
        manifest(), config()]))
    out("manifest", "oci-index-platforms", SEP.join([
        index([desc("@1@", OCI_INDEX, name="example.com/a/b:1.0")]),
        index([desc("@4@", arch="arm64", variant="v8"),
               desc("@2@", arch="amd64"),
               desc("@4@", arch="s390x"),
               {"mediaType": OCI_MANIFEST, "digest": "@4@", "size": 1,
                "platform": {"architecture": "unknown", "os": "unknown"},
                "annotations": {"vnd.docker.reference.type":
                                "attestation-manifest"}}]),
        manifest(cfg="@3@"), config(), manifest(cfg="@3@")]))
    out("manifest", "docker-list", SEP.join([
        index([desc("@1@", D_LIST, name="registry:5000/x/y:v2")]),
        index([desc("@2@", D_MANIFEST, arch="amd64"),
               desc("@2@", D_MANIFEST, arch="arm", variant="v7")], D_LIST),
        manifest(D_MANIFEST, D_CONFIG, D_LAYER, cfg="@3@"), config()]))
    out("manifest", "oci-two-layers-refname", SEP.join([
        index([{"mediaType": OCI_MANIFEST, "digest": "@1@", "size": 9,
                "annotations": {"org.opencontainers.image.ref.name":
                                "fuzz/two:latest"}}]),
        manifest(layers=("@L@", "@L@")), config(["@L@", "@L@"])]))
    out("manifest", "docker-archive", SEP.join([
        json.dumps([{"Config": "1", "RepoTags": ["fuzz:latest", "fuzz:1"],
                     "Layers": ["layer.tar"]}]),
        config()]))
    out("manifest", "docker-archive-two", SEP.join([
        json.dumps([{"Config": "1", "RepoTags": ["a:1"],
                     "Layers": ["layer.tar"]},
                    {"Config": "2", "RepoTags": None, "Layers": []}]),
        config(), config([])]))
    out("manifest", "docker-archive-dotpath", SEP.join([
        json.dumps([{"Config": "1", "RepoTags": ["b"],
                     "Layers": ["x/../blobs//./layer.tar"]}]),
        config()]))
    out("manifest", "created-far-future", SEP.join([
        json.dumps([{"Config": "1", "RepoTags": ["t:1"],
                     "Layers": ["layer.tar"]}]),
        config(created="6100-01-01T00:00:00Z")]))
    # Malformed ones.
    out("manifest", "bad-diffid-type", SEP.join([
        index([desc("@1@")]), manifest(layers=("@L@", "@L@")),
        config(["@L@", 7])]))
    out("manifest", "bad-diffid-first", SEP.join([
        index([desc("@1@")]), manifest(), config([{"x": 1}])]))
    out("manifest", "count-mismatch", SEP.join([
        index([desc("@1@")]), manifest(), config(["@L@", "@L@"])]))
    out("manifest", "wrong-diffid", SEP.join([
        index([desc("@1@")]), manifest(),
        config(["sha256:" + "0" * 64])]))
    out("manifest", "deep-index", SEP.join([
        index([desc("@1@", OCI_INDEX)]),
        index([desc("@2@", OCI_INDEX, arch="amd64")]),
        index([desc("@3@", OCI_INDEX, arch="amd64")]),
        index([desc("@4@", arch="amd64")]),
        manifest(cfg="@5@"), config()]))
    out("manifest", "schema1", json.dumps({
        "schemaVersion": 1, "name": "library/x", "tag": "latest",
        "architecture": "amd64", "fsLayers": [], "history": []}))
    out("manifest", "not-json", "{\"manifests\": [")
    out("manifest", "no-manifests", "{\"schemaVersion\":2}")
    out("manifest", "empty", "")


# ---- the swarm port ---------------------------------------------------------

# What a placeholder of the swarm and node targets becomes: "@WORKER@" and
# "@MANAGER@" join tokens, the others IDs (fuzz_swarm.c, fuzz_node.c).
TOKEN_LEN = 85
ID_LEN = 25
PLACEHOLDERS = {"@WORKER@": TOKEN_LEN, "@MANAGER@": TOKEN_LEN,
                "@NODE@": ID_LEN, "@MNODE@": ID_LEN, "@TASK@": ID_LEN,
                "@MTASK@": ID_LEN, "@ATT@": ID_LEN, "@SID@": ID_LEN,
                "@SUB@": ID_LEN}


def sent_len(b):
    """The length of b once its placeholders are filled in."""
    return len(b) + sum(b.count(k.encode()) * (n - len(k))
                        for k, n in PLACEHOLDERS.items())


def csr():
    key = subprocess.run(
        ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
         "ec_paramgen_curve:P-256"], check=True, capture_output=True).stdout
    return subprocess.run(
        ["openssl", "req", "-new", "-key", "/dev/stdin", "-subj", "/CN=fuzz"],
        input=key, check=True, capture_output=True).stdout.decode()


def request(method, path, body=None, headers=(), chunked=False,
            ctype="application/json"):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1:2377"]
    lines += list(headers)
    b = b""
    if body is not None:
        b = body.encode() if isinstance(body, str) else body
        if ctype:
            lines.append("Content-Type: " + ctype)
        if chunked:
            lines.append("Transfer-Encoding: chunked")
            half = len(b) // 2
            b = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (
                half, b[:half], len(b) - half, b[half:])
        else:
            lines.append("Content-Length: %d" % sent_len(b))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + b


def swarm_seeds():
    c = csr()
    desc = {"Hostname": "worker-1",
            "Platform": {"Architecture": "x86_64", "OS": "linux"},
            "Resources": {"NanoCPUs": 2000000000, "MemoryBytes": 2 << 30},
            "Engine": {"EngineVersion": "0.1.0", "Labels": {"a": "b"},
                       "Plugins": [{"Type": "Network", "Name": "overlay"}]}}
    out("swarm", "ca", request("GET", "/swarm/v1/ca"))
    out("swarm", "join-worker", request("POST", "/swarm/v1/join", json.dumps({
        "Token": "@WORKER@", "CSR": c, "Hostname": "worker-1",
        "Availability": "active", "Description": desc})))
    out("swarm", "join-manager", request("POST", "/swarm/v1/join", json.dumps({
        "Token": "@MANAGER@", "CSR": c, "Hostname": "mgr-2",
        "AdvertiseAddr": "10.0.0.2:2377", "ListenPort": 2377,
        "Availability": "drain"})))
    out("swarm", "join-chunked", request("POST", "/swarm/v1/join", json.dumps({
        "Token": "@WORKER@", "CSR": c, "Availability": "pause"}),
        chunked=True))
    out("swarm", "join-forwarded", request(
        "POST", "/swarm/v1/join", json.dumps({"Token": "@WORKER@", "CSR": c}),
        ["Shoal-Observed-Addr: 1.2.3.4", "Shoal-For-Node: abc"]))
    out("swarm", "join-bad-token", request("POST", "/swarm/v1/join", json.dumps({
        "Token": "SWMTKN-1-" + "0" * 50 + "-" + "1" * 25, "CSR": c})))
    out("swarm", "join-bad-csr", request("POST", "/swarm/v1/join", json.dumps({
        "Token": "@WORKER@", "CSR": "-----BEGIN CERTIFICATE REQUEST-----\n"
        "MIIBADCBpwIBADAPMQ0wCwYDVQQDDARmdXp6\n"
        "-----END CERTIFICATE REQUEST-----\n"})))
    out("swarm", "join-bad-avail", request("POST", "/swarm/v1/join", json.dumps({
        "Token": "@WORKER@", "CSR": c, "Availability": "sleepy",
        "Description": [1, 2]})))
    out("swarm", "join-not-json", request("POST", "/swarm/v1/join",
                                          "{\"Token\": [}"))
    out("swarm", "join-get", request("GET", "/swarm/v1/join"))
    out("swarm", "session", request("POST", "/swarm/v1/session",
                                    json.dumps({"NodeID": "x"})))
    out("swarm", "renew", request("POST", "/swarm/v1/renew",
                                  json.dumps({"CSR": c}),
                                  ["Shoal-For-Node: abc"]))
    out("swarm", "raft-upgrade", request(
        "POST", "/swarm/v1/raft", None,
        ["Connection: Upgrade", "Upgrade: shoal-raft", "Content-Length: 0"]))
    out("swarm", "forward", request("GET", "/swarm/v1/forward/v1.47/info"))
    out("swarm", "logs", request("POST", "/swarm/v1/logs/abc", "{}"))
    out("swarm", "pipelined", request("GET", "/swarm/v1/ca") +
        request("GET", "/swarm/v1/index") +
        request("GET", "/swarm/v1/%2e%2e/v1/ca?x=%zz"))
    out("swarm", "huge-length", b"POST /swarm/v1/join HTTP/1.1\r\n"
        b"Content-Length: 99999999\r\n\r\n{")
    out("swarm", "http10", b"GET /swarm/v1/ca HTTP/1.0\r\n\r\n")
    out("swarm", "garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")

# ---- raft entries ----------------------------------------------------------

def cbor(v):
    """JSON's data model as CBOR, as core/jcbor.c writes it."""
    def head(major, n):
        if n < 24:
            return bytes([major << 5 | n])
        for ai, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
            if n < 1 << (8 * struct.calcsize(fmt)):
                return bytes([major << 5 | ai]) + struct.pack(fmt, n)
        raise ValueError(n)
    if v is None:
        return b"\xf6"
    if v is True or v is False:
        return b"\xf5" if v else b"\xf4"
    if isinstance(v, int):
        return head(0, v) if v >= 0 else head(1, -1 - v)
    if isinstance(v, float):
        return b"\xfb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode()
        return head(3, sent_len(b)) + b  # as long as it is once filled in
    if isinstance(v, list):
        return head(4, len(v)) + b"".join(cbor(x) for x in v)
    return head(5, len(v)) + b"".join(cbor(k) + cbor(x) for k, x in v.items())


def entry_seeds():
    t = 1700000000000000000
    svc = {"op": "put", "kind": "service", "expect": 0,
           "obj": {"ID": "svc2", "Spec": {"Name": "api", "Labels": {},
                   "TaskTemplate": {"ContainerSpec": {"Image": "redis"}}},
                   "_SpecVersion": 0}}
    task = {"op": "put", "kind": "task", "expect": 0,
            "obj": {"ID": "task2", "Labels": {}, "ServiceID": "svc1",
                    "Status": {"Timestamp": "2023-11-14T22:13:20Z",
                               "State": "assigned", "Message": "assigned"},
                    "DesiredState": "running", "_SpecVersion": 0, "Slot": 2,
                    "Name": "web.2", "NodeID": "node1"},
            "template": {"service": "svc1", "spec_version": 0}}
    status = {"op": "task_status", "id": "task1", "node": "node1",
              "status": {"Timestamp": "2023-11-14T22:13:21Z",
                         "State": "running", "Message": "started"}}
    patch = {"op": "patch", "kind": "task", "id": "task1", "expect": 1,
             "set": {"DesiredState": "shutdown"}, "unset": []}
    delete = {"op": "delete", "kind": "service", "id": "svc1", "expect": -1}
    docs = {"service": [svc], "task-template": [task], "status": [status],
            "patch": [patch], "delete": [delete],
            "mixed": [svc, task, status, patch], "empty": []}
    for name, ops in docs.items():
        doc = {"time": t, "ops": ops}
        out("entry", name + ".cbor", cbor(doc))
        out("entry", name + ".json", json.dumps(doc, separators=(",", ":")))
    whole = cbor({"time": t, "ops": [svc, status]})
    out("entry", "bad-torn.cbor", whole[:len(whole) // 2])
    out("entry", "bad-trailing.cbor", whole + b"\x00")
    out("entry", "bad-dup-key.cbor", b"\xa2" + cbor("time") + cbor(1) +
        cbor("time") + cbor(2))
    out("entry", "bad-indefinite.cbor", b"\xbf" + cbor("time") + cbor(t) +
        b"\xff")
    out("entry", "bad-no-ops.cbor", cbor({"time": t}))
    out("entry", "bad-time-real.cbor", cbor({"time": 1.5, "ops": []}))
    out("entry", "bad-op.cbor", cbor({"time": t, "ops": [{"op": "explode"}]}))
    out("entry", "bad-bytes.cbor", b"\xa1" + cbor("time") + b"\x41x")
    out("entry", "bad-deep.cbor", b"\xa1" + cbor("ops") + b"\x81" * 600)


# ---- the swarm port as a worker ---------------------------------------------

def frame(stream, payload):
    """A log frame as an agent posts it: stream, 3 zero bytes, length."""
    return struct.pack(">BxxxI", stream, len(payload)) + payload


def node_seeds():
    c = csr()
    ts = "2024-01-01T00:00:00.000000000Z"
    ctr = {"ContainerID": "c" * 64, "PID": 42, "ExitCode": 0}
    desc = {"Hostname": "fuzz-worker",
            "Platform": {"Architecture": "x86_64", "OS": "linux"},
            "Resources": {"NanoCPUs": 4000000000, "MemoryBytes": 4 << 30},
            "Engine": {"EngineVersion": "0.1.0", "Labels": {"a": "b"},
                       "Plugins": [{"Type": "Network", "Name": "overlay"},
                                   {"Type": "Volume", "Name": "local"}]}}
    running = {"ID": "@TASK@", "Status": {
        "Timestamp": ts, "State": "running", "Message": "started",
        "ContainerStatus": ctr, "PortStatus": {}}}
    failed = {"ID": "@TASK@", "Status": {
        "Timestamp": ts, "State": "failed", "Message": "started",
        "Err": "task: non-zero exit (1)",
        "ContainerStatus": dict(ctr, ExitCode=1)}}
    other = {"ID": "@MTASK@", "Status": {"Timestamp": ts, "State": "running",
                                         "Message": "started"}}

    def tasks(body, ctype="application/json"):
        return request("POST", "/swarm/v1/tasks", body, ctype=ctype)

    # Status reports: as agents send them (CBOR once the session said so).
    out("node", "tasks-json", tasks(json.dumps({"Updates": [running]})))
    whole = cbor({"Updates": [running]})
    out("node", "tasks-cbor", tasks(whole, "application/cbor"))
    out("node", "tasks-cbor-failed", tasks(cbor({"Updates": [failed]}),
                                           "application/cbor"))
    out("node", "tasks-cbor-types", tasks(cbor({"Updates": [{
        "ID": "@TASK@", "Status": {
            "Timestamp": ts, "State": "running", "Message": None,
            "Err": False, "AppliedBy": True, "Progress": 0.5,
            "ContainerStatus": {"ContainerID": "c" * 64, "PID": 1 << 40,
                                "ExitCode": -(1 << 33)},
            "PortStatus": {"Ports": [{"TargetPort": 70000,
                                      "PublishedPort": -1}]}}}]}),
        "application/cbor"))
    out("node", "tasks-other-node", tasks(cbor({"Updates": [other]}),
                                          "application/cbor"))
    out("node", "tasks-odd", tasks(json.dumps({"Updates": [
        {"ID": "@TASK@", "Status": {
            "State": "complete", "Timestamp": "not a time",
            "PortStatus": {"Ports": [{"Protocol": "tcp", "TargetPort": 80,
                                      "PublishedPort": "x"}]},
            "ContainerStatus": {"ContainerID": 7}}},
        {"ID": "@TASK@"}, {"ID": 7, "Status": {}}, "x",
        {"ID": "", "Status": {"State": "running"}},
        {"ID": "@TASK@", "Status": {"State": "exploded"}},
        {"ID": "no-such-task", "Status": {"State": "running"}}]})))
    out("node", "tasks-truncated-cbor", tasks(whole[:len(whole) // 2],
                                              "application/cbor"))
    out("node", "tasks-wrong-ctype", tasks(whole, "text/plain"))
    out("node", "tasks-json-as-cbor", tasks(json.dumps({"Updates": []}),
                                            "application/cbor"))
    out("node", "tasks-huge-length",
        b"POST /swarm/v1/tasks HTTP/1.1\r\nHost: 127.0.0.1:2377\r\n"
        b"Content-Type: application/cbor\r\nContent-Length: 99999999\r\n"
        b"\r\n\xa1")
    out("node", "tasks-huge-array", tasks(
        b"\xa1" + cbor("Updates") + b"\x9b" + b"\xff" * 8, "application/cbor"))
    out("node", "tasks-huge-text", tasks(
        b"\xa1" + cbor("Updates") + b"\x81\xa1" + cbor("ID") + b"\x7a" +
        b"\xff" * 4, "application/cbor"))
    out("node", "tasks-deep", tasks(
        b"\xa1" + cbor("Updates") + b"\x81" * 600, "application/cbor"))
    # A Status of 509 containers: its raft entry encodes (the status sits
    # one container higher there than in a snapshot), and then no snapshot
    # could hold the task (was taken; now a 400).
    out("node", "tasks-too-deep-for-snapshot", tasks(
        '{"Updates":[{"ID":"@TASK@","Status":{"State":"running","Deep":' +
        "[" * 508 + "]" * 508 + "}}]}"))

    # The dispatcher session (a stream) and heartbeats on the worker's own.
    out("node", "session", request("POST", "/swarm/v1/session", json.dumps(
        {"Description": desc, "Encoding": "cbor"})))
    out("node", "session-json", request("POST", "/swarm/v1/session", "{}"))
    out("node", "session-odd", request("POST", "/swarm/v1/session", json.dumps(
        {"Description": {"Hostname": 7, "Platform": [],
                         "Resources": {"NanoCPUs": "lots", "MemoryBytes": -1},
                         "Engine": {"Plugins": {"Type": 1}},
                         "TLSInfo": {"TrustRoot": 1},
                         "_RuntimeError": "no runtime"},
         "Encoding": ["cbor"]})))
    out("node", "heartbeat", request("POST", "/swarm/v1/heartbeat",
                                     json.dumps({"SessionID": "@SID@"})))
    out("node", "heartbeat-tls", request("POST", "/swarm/v1/heartbeat",
                                         json.dumps({"SessionID": "@SID@",
                                                     "TLSInfo": {
        "TrustRoot": "-----BEGIN CERTIFICATE-----\nMIIB\n"
                     "-----END CERTIFICATE-----\n",
        "CertIssuerSubject": "MBMxETAPBgNVBAMTCHN3YXJtLWNh",
        "CertIssuerPublicKey": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"}})))
    out("node", "heartbeat-bad", request("POST", "/swarm/v1/heartbeat",
                                         json.dumps({"SessionID": 1,
                                                     "TLSInfo": "x"})))

    # Log posts to the subscription of `service logs -f`.
    logs = (frame(1, b"2024-01-01T00:00:00.000000000Z hello\n") +
            frame(2, b"2024-01-01T00:00:01.000000000Z oops\n") +
            frame(1, b"no-timestamp"))
    out("node", "logs", request("POST", "/swarm/v1/logs/@SUB@?task=@TASK@",
                                logs, ctype="application/octet-stream"))
    out("node", "logs-last", request(
        "POST", "/swarm/v1/logs/@SUB@?task=@TASK@&last=1", frame(1, b"bye\n"),
        ctype="application/octet-stream"))
    out("node", "logs-bad-frames", request(
        "POST", "/swarm/v1/logs/@SUB@?task=@TASK@",
        frame(1, b"ok") + b"\x02\0\0\0\xff\xff\xff\xffshort" + b"\x01\0\0",
        ctype="application/octet-stream"))
    out("node", "logs-other-task", request(
        "POST", "/swarm/v1/logs/@SUB@?task=@MTASK@", frame(1, b"x"),
        ctype="application/octet-stream"))

    # Attachments of standalone containers to swarm networks.
    out("node", "attach", request("POST", "/swarm/v1/attach", json.dumps(
        {"ContainerID": "a" * 64, "Name": "web", "Target": "fuzz-net"})))
    out("node", "attach-bad", request("POST", "/swarm/v1/attach", json.dumps(
        {"ContainerID": "b" * 64, "Target": "ingress"})) +
        request("POST", "/swarm/v1/attach", json.dumps(
            {"ContainerID": "", "Target": "no-such-net"})))
    out("node", "detach", request("POST", "/swarm/v1/detach",
                                  json.dumps({"ID": "@ATT@"})))
    out("node", "detach-other", request("POST", "/swarm/v1/detach",
                                        json.dumps({"ID": "@MTASK@"})))

    # Leaving, renewing, and what a worker may not call.
    out("node", "leave", request("POST", "/swarm/v1/leave", "{}"))
    out("node", "renew", request("POST", "/swarm/v1/renew", json.dumps(
        {"CSR": c, "Addr": ""})))
    out("node", "renew-bad", request("POST", "/swarm/v1/renew", json.dumps(
        {"CSR": "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n"
                "-----END CERTIFICATE REQUEST-----\n", "Addr": "1.2.3.4:1"})))
    out("node", "renew-for-node", request(
        "POST", "/swarm/v1/renew", json.dumps({"CSR": c}),
        ["Shoal-For-Node: @MNODE@"]))
    out("node", "forbidden", request("GET", "/swarm/v1/index") +
        request("POST", "/swarm/v1/raft/join", "{}") +
        request("GET", "/swarm/v1/forward/v1.47/nodes/@NODE@") +
        request("POST", "/swarm/v1/raft", None,
                ["Connection: Upgrade", "Upgrade: shoal-raft",
                 "Content-Length: 0"]) +
        request("POST", "/swarm/v1/join", "{}", ["Shoal-For-Node: @NODE@"]))
    out("node", "pipelined", request("POST", "/swarm/v1/heartbeat", json.dumps(
        {"SessionID": "@SID@"})) + tasks(whole, "application/cbor") +
        request("POST", "/swarm/v1/logs/@SUB@?task=@TASK@", frame(1, b"hi\n"),
                ctype="application/octet-stream"))


if __name__ == "__main__":
    layer_seeds()
    manifest_seeds()
    swarm_seeds()
    entry_seeds()
    node_seeds()
