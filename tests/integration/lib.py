"""Helpers for shoal's integration tests: lab clusters driven through the
stock docker CLI, bin/shoal and the raw Engine API. Python stdlib only."""

import atexit
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = os.path.join(ROOT, "lab", "lab")
SHOAL = os.path.join(ROOT, "bin", "shoal")
SHOALD = os.environ.get("SHOALD", os.path.join(ROOT, "bin", "shoald"))
DOCKER = os.environ.get("SHOAL_TEST_DOCKER", "/usr/local/bin/docker")

# The seed's hosts: swarma also has the VirtualBox NAT address on eth0.
SEED = {"swarma": "192.168.33.10,10.0.2.15", "swarmb": "192.168.33.11", "moby": "192.168.33.1"}

NODE_ID = r"[0-9a-z]{25}"
TOKEN = r"SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}"


class Skip(Exception):
    """Raise to report a test as skipped (never counted as passed)."""


def timeout(seconds):
    """Decorator: a per-test timeout for the runner, in seconds."""
    def mark(fn):
        fn.timeout = seconds
        return fn
    return mark


def wait_until(fn, timeout=30, interval=0.25, what=None):
    """Calls fn until it returns something truthy; returns that. On timeout,
    fails with the last value or exception seen."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = fn()
            if last:
                return last
        except AssertionError as e:
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %ss waiting for %s; last: %r"
                                 % (timeout, what or getattr(fn, "__name__", "condition"), last))
        time.sleep(interval)


def _cli_env():
    env = dict(os.environ)
    for k in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH",
              "DOCKER_API_VERSION"):
        env.pop(k, None)
    global _docker_config
    if _docker_config is None:
        _docker_config = tempfile.mkdtemp(prefix="shoal-it-docker-config-")
    env["DOCKER_CONFIG"] = _docker_config
    env["DOCKER_CLI_HINTS"] = "false"
    return env


_docker_config = None


@atexit.register
def _drop_docker_config():
    if _docker_config:
        shutil.rmtree(_docker_config, ignore_errors=True)


def run(argv, check=True, timeout=60, input=None, env=None):
    """Runs argv; returns (rc, stdout, stderr) as text."""
    e = _cli_env()
    e.update(env or {})
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       input=input, env=e)
    if check and p.returncode != 0:
        raise AssertionError("command failed (rc %d): %s\nstdout: %s\nstderr: %s"
                             % (p.returncode, " ".join(argv), p.stdout.strip(), p.stderr.strip()))
    return p.returncode, p.stdout, p.stderr


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.path)
        self.sock = s


def api_raw(sock, method, path, body=None, headers=None, timeout=30):
    """One HTTP request over a unix socket; returns (status, headers, bytes).
    body may be bytes/str (sent as is) or any other value (sent as JSON)."""
    hdrs = dict(headers or {})
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
        hdrs.setdefault("Content-Type", "application/json")
    if isinstance(body, str):
        body = body.encode()
    c = UnixHTTPConnection(sock, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=hdrs)
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def decode(data):
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return data.decode(errors="replace")


def parse_table(out, columns):
    """Parses a docker CLI table: checks the header names `columns` and
    slices each row at the header's column starts. Returns dicts."""
    lines = [l for l in out.splitlines() if l.strip()]
    assert lines, "empty table output"
    header = lines[0]
    got = re.split(r"\s{2,}", header.strip())
    assert got == columns, "table header %r, want columns %r" % (header, columns)
    starts = []
    pos = 0
    for c in columns:
        i = header.index(c, pos)
        starts.append(i)
        pos = i + len(c)
    rows = []
    for l in lines[1:]:
        row = {}
        for k, c in enumerate(columns):
            end = starts[k + 1] if k + 1 < len(starts) else None
            row[c] = l[starts[k]:end].strip()
        rows.append(row)
    return rows


def parse_swarm_info(out):
    """The Swarm part of `docker info` as {key: value}; nested headings
    ("Raft:") are dropped, list items (Manager Addresses) become lists."""
    lines = out.splitlines()
    start = None
    for i, l in enumerate(lines):
        if re.match(r"^\s*Swarm: ", l):
            start = i
            break
    assert start is not None, "no 'Swarm:' line in docker info output:\n" + out
    indent = len(lines[start]) - len(lines[start].lstrip())
    res = {"Swarm": lines[start].split(": ", 1)[1].strip()}
    heading = None
    for l in lines[start + 1:]:
        if not l.strip():
            continue
        ind = len(l) - len(l.lstrip())
        if ind <= indent:
            break
        s = l.strip()
        if ": " in s:
            k, v = s.split(": ", 1)
            res[k] = v.strip()
        elif s.endswith(":"):
            heading = s[:-1]
            res.setdefault(heading, [])
        elif heading is not None and isinstance(res.get(heading), list):
            res[heading].append(s)
    return res


def parse_pretty(out):
    """`node inspect --pretty` as {key: value} (first occurrence wins) plus
    "Labels": [...]."""
    res = {"Labels": []}
    section = None
    for l in out.splitlines():
        s = l.strip()
        if not s:
            continue
        if s.startswith("- ") and section == "Labels":
            res["Labels"].append(s[2:])
            continue
        if s.endswith(":") and ":" not in s[:-1]:
            section = s[:-1]
            continue
        if ":" in s:
            k, v = s.split(":", 1)
            key = k.strip()
            if not l.startswith((" ", "\t")):
                section = None
            full = section + "." + key if section and l.startswith((" ", "\t")) else key
            res.setdefault(full, v.strip())
    return res


def _stale_labs():
    """Labs left by runs that died: /tmp/shoal-it-<pid>-<n> with a dead pid."""
    for d in os.listdir("/tmp"):
        m = re.match(r"^shoal-it-(\d+)-\d+$", d)
        if m and not os.path.exists("/proc/" + m.group(1)):
            yield os.path.join("/tmp", d)


_lab_seq = 0


class Lab:
    """A lab cluster for one test:

        with Lab(SEED) as lab:
            lab.docker("swarma", "swarm", "init", "--advertise-addr", lab.ip("swarma"))

    Brings the hosts up and starts shoald on each (start=False: none, or a
    list of hosts); on exit dumps every shoald log if the test failed, then
    tears the lab down."""

    def __init__(self, hosts=None, start=True, shoald_args=None, shoald_env=None):
        global _lab_seq
        if os.geteuid() != 0:
            raise Skip("needs root for network namespaces")
        self.hosts = dict(hosts or SEED)
        _lab_seq += 1
        self.dir = "/tmp/shoal-it-%d-%d" % (os.getpid(), _lab_seq)
        self.start_hosts = list(self.hosts) if start is True else list(start or [])
        self.shoald_args = shoald_args
        self.shoald_env = dict(shoald_env or {})  # shoald's environment, added

    # -- lifecycle --
    def lab(self, *args, check=True, timeout=60, env=None):
        return run([LAB, "--dir", self.dir] + list(args), check=check, timeout=timeout, env=env)

    def __enter__(self):
        for d in _stale_labs():
            run([LAB, "--dir", d, "down"], check=False)
        self.lab("down")
        try:
            self.lab("up", *["%s=%s" % kv for kv in self.hosts.items()])
            for h in self.start_hosts:
                self.start(h)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, etype, e, tb):
        try:
            if etype is not None and not issubclass(etype, Skip):
                self.dump_logs()
        finally:
            self.lab("down", check=False)
        return False

    def dump_logs(self, lines=60):
        for h in self.hosts:
            log = os.path.join(self.dir, h, "shoald.log")
            try:
                with open(log, errors="replace") as f:
                    tail = f.readlines()[-lines:]
            except OSError:
                continue
            print("    --- shoald log of %s (last %d lines) ---" % (h, len(tail)))
            for l in tail:
                print("    | " + l.rstrip("\n"))

    def start(self, host):
        env = dict(self.shoald_env, SHOALD=SHOALD)
        if self.shoald_args is not None:
            env["SHOALD_ARGS"] = self.shoald_args
        self.lab("start", host, timeout=30, env=env)

    def stop(self, host, sig="TERM"):
        self.lab("stop", host, sig, timeout=30)

    def restart(self, host):
        self.stop(host)
        self.start(host)

    def pid(self, host):
        return int(self.lab("pid", host)[1].strip())

    def sock(self, host):
        return os.path.join(self.dir, host, "shoal.sock")

    def ip(self, host, n=0):
        return self.hosts[host].split(",")[n]

    def logs(self, host):
        return self.lab("logs", host)[1]

    # -- clients --
    def exec(self, host, *cmd, check=True, timeout=60, input=None):
        return run([LAB, "--dir", self.dir, "exec", host] + list(cmd), check=check,
                   timeout=timeout, input=input)

    def docker(self, host, *args, check=True, timeout=60):
        return run([DOCKER, "-H", "unix://" + self.sock(host)] + list(args),
                   check=check, timeout=timeout)

    def shoal(self, host, *args, check=True, timeout=60):
        return run([SHOAL, "-H", "unix://" + self.sock(host)] + list(args),
                   check=check, timeout=timeout)

    def api(self, host, method, path, body=None, headers=None, timeout=30):
        """Raw Engine API call; returns (status, decoded JSON or text)."""
        st, _, data = api_raw(self.sock(host), method, path, body, headers, timeout)
        return st, decode(data)

    # -- swarm shortcuts (all through the stock docker CLI) --
    def init(self, host="swarma", *extra):
        """swarm init advertising the host's eth1 address; returns node ID."""
        _, out, _ = self.docker(host, "swarm", "init", "--advertise-addr", self.ip(host), *extra)
        m = re.search(r"current node \((%s)\) is now a manager" % NODE_ID, out)
        assert m, "unexpected init output: %r" % out
        return m.group(1)

    def token(self, host="swarma", role="worker"):
        tok = self.docker(host, "swarm", "join-token", "-q", role)[1].strip()
        assert re.fullmatch(TOKEN, tok), "bad token %r" % tok
        return tok

    def join(self, host, token, manager="swarma", check=True):
        return self.docker(host, "swarm", "join", "--token", token,
                           "%s:2377" % self.ip(manager), check=check, timeout=90)

    def node_id(self, host):
        return self.docker(host, "info", "--format", "{{.Swarm.NodeID}}")[1].strip()

    def node_ls(self, host="swarma"):
        out = self.docker(host, "node", "ls")[1]
        return parse_table(out, NODE_LS_COLUMNS)

    def node_status(self, manager, node):
        """(State, Availability) of a node as the manager sees it."""
        out = self.docker(manager, "node", "inspect", "--format",
                          "{{.Status.State}} {{.Spec.Availability}}", node)[1]
        return tuple(out.split())

    def swarm_info(self, host="swarma"):
        return parse_swarm_info(self.docker(host, "info")[1])

    def cluster(self, workers=("swarmb", "moby"), manager="swarma", *init_args):
        """init on manager, join the workers; returns {host: node ID}."""
        ids = {manager: self.init(manager, *init_args)}
        tok = self.token(manager)
        for w in workers:
            self.join(w, tok, manager)
            ids[w] = self.node_id(w)
        return ids


NODE_LS_COLUMNS = ["ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER STATUS", "ENGINE VERSION"]


def openssl_selfsigned(directory, cn="intruder", ou="swarm-manager"):
    """A throwaway EC P-256 certificate and key from a CA nobody trusts."""
    key = os.path.join(directory, "key.pem")
    crt = os.path.join(directory, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", crt,
                    "-subj", "/O=other/OU=%s/CN=%s" % (ou, cn), "-days", "1"],
                   check=True, capture_output=True)
    return crt, key


def have(path):
    return os.path.exists(path) or shutil.which(path) is not None


# ---- highly-available managers (test_ha.py, scripts/bench.py) ----

# dockerd/swarmkit's text when no leader can answer (raft quorum lost).
NO_LEADER = ("The swarm does not have a leader. It's possible that too few managers are online. "
             "Make sure more than half of the managers are online.")


def ha_hosts(managers, workers=0, base=10):
    """{name: ip} for a lab of managers m1..mN (192.168.33.10..) and workers
    w1..wK (192.168.33.30..), all on the shared bridge."""
    hosts = {"m%d" % (i + 1): "192.168.33.%d" % (base + i) for i in range(managers)}
    hosts.update({"w%d" % (i + 1): "192.168.33.%d" % (30 + i) for i in range(workers)})
    return hosts


def raft_id_for(node_id):
    """shoal's 64-bit raft id of a node ID (SHA-256 of the ID, first 8
    bytes big-endian, never 0)."""
    import hashlib
    v = int.from_bytes(hashlib.sha256(node_id.encode()).digest()[:8], "big")
    return v or 1


def cert_subject(crt):
    """{"CN": ..., "O": ..., "OU": ...} of a PEM certificate (openssl CLI)."""
    out = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in", crt],
                         check=True, capture_output=True, text=True).stdout
    subj = out.strip().split("=", 1)[1] if out.startswith("subject=") else out.strip()
    res = {}
    for part in re.split(r"(?<!\\),", subj):
        if "=" in part:
            k, v = part.split("=", 1)
            res.setdefault(k.strip(), v.strip())
    return res


class HALab(Lab):
    """A Lab with helpers for clusters of several managers (Lab itself is
    unchanged)."""

    def ha_cluster(self, managers, workers=(), via=None):
        """init on managers[0], join the other managers with the manager
        token (through `via`, default the first manager) and the workers
        with the worker token; returns {host: node ID}."""
        first = managers[0]
        via = via or first
        ids = {first: self.init(first)}
        mtok, wtok = self.token(first, "manager"), self.token(first, "worker")
        for m in managers[1:]:
            _, out, _ = self.join(m, mtok, via)
            assert out == "This node joined a swarm as a manager.\n", out
            ids[m] = self.node_id(m)
        for w in workers:
            _, out, _ = self.join(w, wtok, via)
            assert out == "This node joined a swarm as a worker.\n", out
            ids[w] = self.node_id(w)
        return ids

    def nodes(self, host, timeout=10):
        """GET /nodes on host; the list, or raises AssertionError."""
        st, body = self.api(host, "GET", "/nodes", timeout=timeout)
        assert st == 200, "GET /nodes on %s: %s %r" % (host, st, body)
        return body

    def leader(self, host, timeout=10):
        """The hostname host reports as Leader (None if none)."""
        for n in self.nodes(host, timeout):
            if (n.get("ManagerStatus") or {}).get("Leader"):
                return n["Description"]["Hostname"]
        return None

    def manager_status(self, host, timeout=10):
        """{hostname: "Leader"|"Reachable"|"Unreachable"|""} as node ls on
        host shows it (through the API)."""
        res = {}
        for n in self.nodes(host, timeout):
            ms = n.get("ManagerStatus")
            res[n["Description"]["Hostname"]] = ("" if not ms else "Leader" if ms.get("Leader")
                                                 else ms.get("Reachability", "").capitalize())
        return res

    def wait_leader(self, hosts, timeout=20, exclude=()):
        """Waits until every host in hosts names the same leader (not in
        exclude) and that leader is one of hosts; returns it."""
        def agreed():
            seen = set()
            for h in hosts:
                try:
                    seen.add(self.leader(h, timeout=5))
                except (AssertionError, OSError):
                    return None
            if len(seen) == 1:
                l = seen.pop()
                if l in hosts and l not in exclude:
                    return l
            return None
        return wait_until(agreed, timeout, interval=0.1, what="one leader agreed by %s" % (list(hosts),))

    def kill(self, host):
        """SIGKILLs host's shoald and waits (up to 5 s) until it is dead;
        returns time.monotonic() just before the signal. start() later waits
        for the process to be reaped too (shoald refuses to start while a
        pid file names a live "shoald", which a zombie still is)."""
        pid = self.pid(host)
        if not hasattr(self, "_killed"):
            self._killed = {}
        self._killed[host] = pid
        t0 = time.monotonic()
        os.kill(pid, 9)
        deadline = t0 + 5
        while time.monotonic() < deadline:
            try:
                with open("/proc/%d/stat" % pid) as f:
                    if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                        break
            except OSError:
                break
            time.sleep(0.005)
        return t0

    def start(self, host):
        pid = getattr(self, "_killed", {}).pop(host, None)
        if pid is not None:
            deadline = time.monotonic() + 10
            while os.path.exists("/proc/%d" % pid) and time.monotonic() < deadline:
                time.sleep(0.01)
        super().start(host)

    def try_label(self, host, node, key, value="1", timeout=5):
        """One node update through host's API adding label key=value
        (GET then POST with the version read). Returns (status, message):
        200 means acknowledged; 0 means no answer (connection or timeout)."""
        try:
            st, n = self.api(host, "GET", "/nodes/" + node, timeout=timeout)
            if st != 200:
                return st, (n or {}).get("message") if isinstance(n, dict) else n
            spec = n["Spec"]
            spec["Labels"] = dict(spec.get("Labels") or {})
            spec["Labels"][key] = value
            st, body = self.api(host, "POST", "/nodes/%s/update?version=%d"
                                % (node, n["Version"]["Index"]), spec, timeout=timeout)
            msg = body.get("message") if isinstance(body, dict) else body
            return st, msg
        except (OSError, http.client.HTTPException, ValueError) as e:
            return 0, "%s: %s" % (type(e).__name__, e)

    def node_objects(self, host, timeout=10):
        """{node ID: node JSON} from GET /nodes on host."""
        return {n["ID"]: n for n in self.nodes(host, timeout)}

    def certs(self, host):
        """(cert, key, root CA) PEM paths of host's swarm identity. The key
        is a copy without the key file's PEM headers (raft-dek, as
        swarmkit's), which OpenSSL's key readers refuse."""
        d = os.path.join(self.dir, host, "data", "swarm", "certificates")
        with open(os.path.join(d, "swarm-node.key")) as f:
            lines = f.read().splitlines(True)
        key = os.path.join(self.dir, host, "swarm-node-bare.key")
        with open(key, "w") as f:
            f.writelines(l for l in lines if not re.match(r"^[\w-]+: ", l) and l.strip())
        os.chmod(key, 0o600)
        return (os.path.join(d, "swarm-node.crt"), key, os.path.join(d, "swarm-root-ca.crt"))

    def link(self, host, up, dev="eth1"):
        """Sets a network link of host up or down (a partition in the lab)."""
        self.exec(host, "ip", "link", "set", dev, "up" if up else "down")



# ---- services as real containers (test_services.py) ----

# A registry host of its own on the lab's shared bridge, so every host (and
# no other network) reaches it; shoald takes it as its Docker Hub mirror, so
# `nginx` means library/nginx from there.
REGISTRY_HOST = "registry"
REGISTRY_IP = "192.168.33.5"
REGISTRY_ADDR = REGISTRY_IP + ":5000"
REGISTRY_SH = os.path.join(ROOT, "scripts", "registry.sh")
TEST_IMAGES_SH = os.path.join(ROOT, "scripts", "test-images.sh")
IMAGES_DIR = os.environ.get("SHOAL_IMAGES_DIR", os.path.join(ROOT, "build", "images"))

SERVICE_LS_COLUMNS = ["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]
SERVICE_PS_COLUMNS = ["ID", "NAME", "IMAGE", "NODE", "DESIRED STATE", "CURRENT STATE", "ERROR", "PORTS"]
PS_COLUMNS = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]

_images_built = False


def build_test_images():
    """scripts/test-images.sh once per test run (it caches in build/images
    and rebuilds only what changed)."""
    global _images_built
    if not _images_built:
        for tool in ("docker-registry", "skopeo", "umoci", "crun", "conmon"):
            if not have(tool):
                raise Skip("%s missing (scripts/deps.sh)" % tool)
        run([TEST_IMAGES_SH, IMAGES_DIR], timeout=600)
        _images_built = True


def _lab_container_pids(labdir):
    """PIDs of processes whose mounts come from labdir: task containers,
    which live in namespaces of their own and so survive `lab down`."""
    pids = []
    needle = "=" + labdir.rstrip("/") + "/"
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        try:
            with open("/proc/%s/mountinfo" % p, errors="replace") as f:
                if needle in f.read():
                    pids.append(int(p))
        except OSError:
            pass
    return pids


# The registry's storage after the first push of a run, copied into each
# later lab's registry: the same blobs and manifests skopeo would push again
# (4.6 s of copying a lab otherwise).
_registry_template = None


def _keep_registry_template(registry_dir):
    global _registry_template
    tmpl = tempfile.mkdtemp(prefix="shoal-it-registry-")
    shutil.copytree(os.path.join(registry_dir, "data"), os.path.join(tmpl, "data"))
    _registry_template = tmpl


def _seed_registry(registry_dir):
    if _registry_template:
        shutil.copytree(os.path.join(_registry_template, "data"), os.path.join(registry_dir, "data"))


@atexit.register
def _drop_registry_template():
    if _registry_template:
        shutil.rmtree(_registry_template, ignore_errors=True)


NPM_DIR = os.path.join(ROOT, "build", "npm")


def dockerode():
    """node_modules with dockerode, the Engine API client of Node.js
    programs (Portainer's kind of tool): npm installs it once into
    build/npm. Returns the node_modules path for NODE_PATH."""
    mods = os.path.join(NPM_DIR, "node_modules")
    if not os.path.isdir(os.path.join(mods, "dockerode")):
        if not have("npm") or not have("node"):
            raise Skip("node and npm missing")
        os.makedirs(NPM_DIR, exist_ok=True)
        rc, _, err = run(["npm", "install", "--prefix", NPM_DIR, "--no-audit", "--no-fund",
                          "dockerode@4"], check=False, timeout=300)
        if rc != 0:
            raise Skip("npm could not install dockerode: %s" % err.strip()[-200:])
    return mods


class ServiceLab(Lab):
    """A Lab whose hosts pull from a registry inside the lab: an extra host
    `registry` (192.168.33.5) runs Debian's docker-registry holding the test
    images (library/busybox, library/nginx), and every shoald starts with
    --registry-mirror http://192.168.33.5:5000. On exit the registry is
    stopped by PID and task containers left on the hosts are ended."""

    def __init__(self, hosts=None, start=True, shoald_args=None, shoald_env=None):
        hosts = dict(hosts or SEED)
        start_hosts = list(hosts) if start is True else list(start or [])
        hosts[REGISTRY_HOST] = REGISTRY_IP
        args = "--registry-mirror http://" + REGISTRY_ADDR
        if shoald_args:
            args += " " + shoald_args
        super().__init__(hosts, start=[], shoald_args=args, shoald_env=shoald_env)
        self.later = start_hosts
        self.registry_dir = None

    def __enter__(self):
        build_test_images()
        super().__enter__()
        try:
            self.registry_dir = os.path.join(self.dir, REGISTRY_HOST, "registry")
            _seed_registry(self.registry_dir)
            self.exec(REGISTRY_HOST, REGISTRY_SH, "start", self.registry_dir, REGISTRY_ADDR, timeout=30)
            if not _registry_template:
                self.exec(REGISTRY_HOST, REGISTRY_SH, "push", REGISTRY_ADDR, IMAGES_DIR, timeout=120)
                _keep_registry_template(self.registry_dir)
            for h in self.later:
                self.start(h)
            self.start_hosts = list(self.later)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, etype, e, tb):
        try:
            if self.registry_dir:
                run([REGISTRY_SH, "stop", self.registry_dir], check=False)
        finally:
            super().__exit__(etype, e, tb)
            for pid in _lab_container_pids(self.dir):
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
        return False

    def service(self, host, *args, check=True, timeout=120):
        return self.docker(host, "service", *args, check=check, timeout=timeout)

    def service_ls(self, host="swarma"):
        return parse_table(self.service(host, "ls")[1], SERVICE_LS_COLUMNS)

    def service_ps(self, service, host="swarma", *flags):
        """`docker service ps [flags] service` rows (history rows keep their
        "\\_ " prefix in NAME)."""
        return parse_table(self.service(host, "ps", *flags, service)[1], SERVICE_PS_COLUMNS)

    def ps(self, host, *flags):
        return parse_table(self.docker(host, "ps", *flags)[1], PS_COLUMNS)

    def container_pid(self, host, container):
        out = self.docker(host, "inspect", "--format", "{{.State.Pid}}", container)[1].strip()
        assert out.isdigit() and int(out) > 0, "State.Pid of %s on %s: %r" % (container, host, out)
        return int(out)

    def fetch_in_container(self, host, pid, port=80, path="/"):
        """GET http://localhost:port/path from inside the network namespace
        of container process pid, entered from host (the published port and
        its routing mesh are not used)."""
        return self.exec(host, "nsenter", "-t", str(pid), "-n", "curl", "-s", "-m", "5",
                         "http://localhost:%d%s" % (port, path), check=False, timeout=15)[1]
