"""A Debian 12 host with systemd as PID 1, for the install test: a root made
once by debootstrap (cached under /var/cache/shoal-test, keyed by what goes
into it), booted with `systemd-nspawn -b` on a throwaway tmpfs overlay
(--volatile=overlay: the cached root is never written), with a network
namespace of its own (--private-network) holding one veth pair, so nothing
the daemon does there (swarm ports, bridges, nftables) reaches this
machine's network."""

import fcntl
import glob
import hashlib
import os
import shutil
import signal
import subprocess
import time

import lib
from lib import Skip, have

CACHE = os.environ.get("SHOAL_NSPAWN_CACHE", "/var/cache/shoal-test")
SUITE = "bookworm"
# minbase has apt; systemd + dbus boot it, systemctl talks over dbus.
PACKAGES = ["systemd", "systemd-sysv", "dbus", "ca-certificates"]
# The address of the container's interface (its default route).
ADDR = "192.168.77.2"
# Why a task container may not start in the machine on a host like the
# project's (a firecracker VM, cgroup v1 controllers): the keyring and the
# cgroups are dealt with below; crun 1.8's setrlimit(RLIMIT_MEMLOCK) before
# it loads its eBPF device filter still fails with EPERM there.
CRUN_NOTE = ("crun inside systemd-nspawn on this host: setrlimit(RLIMIT_MEMLOCK) for its "
             "eBPF device filter is refused (EPERM)")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def mirrors():
    """(uri, suite) of this machine's Debian 12 apt sources, both formats;
    the container uses the mirror the host uses."""
    out = []
    for fn in sorted(glob.glob("/etc/apt/sources.list") +
                     glob.glob("/etc/apt/sources.list.d/*.list") +
                     glob.glob("/etc/apt/sources.list.d/*.sources")):
        try:
            text = open(fn).read()
        except OSError:
            continue
        if fn.endswith(".sources"):
            for stanza in text.split("\n\n"):
                f = {}
                for line in stanza.splitlines():
                    if ":" in line and not line.startswith("#") and not line.startswith(" "):
                        k, v = line.split(":", 1)
                        f[k.strip().lower()] = v.split()
                if "deb" not in f.get("types", []) or "main" not in f.get("components", []):
                    continue
                out += [(u, s) for u in f.get("uris", []) for s in f.get("suites", [])
                        if s.startswith(SUITE)]
        else:
            for line in text.splitlines():
                w = line.split("#", 1)[0].split()
                w = [x for x in w if not x.startswith("[")]
                if len(w) >= 4 and w[0] == "deb" and w[2].startswith(SUITE) and "main" in w[3:]:
                    out.append((w[1], w[2]))
    return out or [("http://deb.debian.org/debian", SUITE)]


def cannot_boot_reason():
    """Why this host cannot run the test at all, or None."""
    if os.geteuid() != 0:
        return "needs root (debootstrap, systemd-nspawn)"
    for tool in ("debootstrap", "systemd-nspawn", "nsenter", "ip"):
        if not have(tool):
            return "%s missing (scripts/deps.sh)" % tool
    if "overlay" not in open("/proc/filesystems").read():
        return "the kernel has no overlayfs (systemd-nspawn --volatile=overlay)"
    return None


def root():
    """The cached Debian 12 root: made once (debootstrap, then the apt lists
    fetched), reused while the mirror and the package list stay the same."""
    srcs = mirrors()
    key = hashlib.sha256(repr((SUITE, PACKAGES, srcs, 1)).encode()).hexdigest()[:16]
    path = os.path.join(CACHE, "debian12-" + key)
    os.makedirs(CACHE, exist_ok=True)
    with open(os.path.join(CACHE, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one debootstrap at a time
        if os.path.exists(os.path.join(path, ".complete")):
            return path
        tmp = path + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        main = [u for u, s in srcs if s == SUITE][0] if any(s == SUITE for u, s in srcs) \
            else srcs[0][0]
        rc, out, err = lib.run(["debootstrap", "--variant=minbase",
                                "--include=" + ",".join(PACKAGES), SUITE, tmp, main],
                               check=False, timeout=900)
        assert rc == 0, "debootstrap failed (%d): %s" % (rc, (out + err)[-3000:])
        with open(os.path.join(tmp, "etc/apt/sources.list"), "w") as f:
            for u, s in srcs:
                f.write("deb %s %s main\n" % (u, s))
        # The lists come with the root, so a run resolves Depends at once.
        nspawn_run(tmp, ["apt-get", "update", "-qq"], ephemeral=False, timeout=300)
        open(os.path.join(tmp, ".complete"), "w").close()
        os.rename(tmp, path)
        # Older roots (another key) are not used again.
        for old in glob.glob(os.path.join(CACHE, "debian12-*")):
            if old != path and not old.endswith(".tmp"):
                shutil.rmtree(old, ignore_errors=True)
        return path


def refresh_lists(rootdir):
    """apt-get update in the cached root itself, for when the mirror no
    longer has what its lists name."""
    with open(os.path.join(CACHE, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        nspawn_run(rootdir, ["apt-get", "update", "-qq"], ephemeral=False, timeout=300)


def nspawn_run(rootdir, argv, binds=(), ephemeral=True, timeout=300, check=True):
    """One command in rootdir (no boot, the host's network: apt reaches the
    mirror); with ephemeral, on a tmpfs overlay that is thrown away."""
    cmd = ["systemd-nspawn", "-q", "--register=no", "--keep-unit", "-D", rootdir,
           "--setenv=DEBIAN_FRONTEND=noninteractive"]
    if ephemeral:
        cmd.append("--volatile=overlay")
    cmd += ["--bind%s=%s:%s" % ("-ro" if ro else "", src, dst) for src, dst, ro in binds]
    return lib.run(cmd + ["--"] + argv, check=check, timeout=timeout)


class BootedHost:
    """`systemd-nspawn -b` of root in a network namespace of its own. Use as
    a context manager: the machine is powered off (then killed by PID if it
    does not go) on the way out, failed or not."""

    def __init__(self, rootdir, binds, logfile):
        self.root = rootdir
        self.binds = binds
        self.logfile = logfile
        self.name = "shoal-sd-%d" % os.getpid()
        self.proc = None
        self.leader = None

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def _start(self):
        # --private-network: a network namespace of the machine's own, with
        # CAP_NET_ADMIN and a writable /proc/sys/net (the daemon makes
        # bridges and sets ip_forward there, none of it on this machine).
        cmd = ["systemd-nspawn", "-q", "--register=no", "--keep-unit", "-D", self.root,
               "--volatile=overlay", "-M", self.name, "--private-network",
               "--console=passive",
               # nspawn's seccomp filter refuses the kernel keyring (it is
               # not namespaced); crun gives each container a session
               # keyring, as on a real host, where nothing filters it.
               "--system-call-filter=@keyring",
               # crun (cgroup v2) raises RLIMIT_MEMLOCK to load its device
               # filter (eBPF), as root on a host may; nspawn caps it.
               "--rlimit=RLIMIT_MEMLOCK=infinity"]
        cmd += ["--bind%s=%s:%s" % ("-ro" if ro else "", src, dst) for src, dst, ro in self.binds]
        self.log = open(self.logfile, "w")
        # cgroup v2 inside: nspawn mounts a v1 host's controllers read-only
        # (it delegates none of them), so crun could make no cgroup there.
        env = dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1")
        self.proc = subprocess.Popen(cmd + ["-b"], stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env)
        self.leader = lib.wait_until(self._find_leader, 30, interval=0.2,
                                     what="the container's PID 1 (log: %s)" % self.logfile)
        # systemd's bus first (it is PID 1 before it listens), then the boot:
        # is-system-running --wait returns once the start jobs end.
        lib.wait_until(lambda: self.exec(["test", "-S", "/run/systemd/private"],
                                         check=False)[0] == 0, 30, interval=0.2,
                       what="systemd's bus (log: %s)" % self.logfile)
        rc, out, err = self.sh("systemctl is-system-running --wait", check=False, timeout=90)
        self.state = out.strip()
        if self.state not in ("running", "degraded"):
            raise AssertionError("systemd did not finish booting: %r %s\n%s" % (
                self.state, err, self.boot_log()))
        # The machine's eth0: one end of a veth pair whose other end stays
        # inside too (a link that is up and carries the default route),
        # made with this machine's ip in the machine's namespace (minbase
        # has no iproute2).
        ip = ["nsenter", "-t", str(self.leader), "-n", "ip"]
        for argv in (["link", "add", "eth0", "type", "veth", "peer", "name", "peer0"],
                     ["addr", "add", ADDR + "/24", "dev", "eth0"],
                     ["link", "set", "peer0", "up"],
                     ["link", "set", "eth0", "up"],
                     ["route", "add", "default", "dev", "eth0"]):
            lib.run(ip + argv, timeout=10)

    def _find_leader(self):
        if self.proc.poll() is not None:
            raise Skip("systemd-nspawn -b exited %d before systemd ran: %s" % (
                self.proc.returncode, self.boot_log()[-1500:]))
        # nspawn's child is the container's PID 1: systemd once it has exec'd.
        for task in os.listdir("/proc/%d/task" % self.proc.pid):
            try:
                kids = open("/proc/%d/task/%s/children" % (self.proc.pid, task)).read().split()
            except OSError:
                continue
            for k in kids:
                try:
                    exe = os.readlink("/proc/%s/exe" % k)
                except OSError:
                    continue
                if exe.endswith("/systemd"):
                    return int(k)
        return None

    def boot_log(self):
        try:
            return open(self.logfile, errors="replace").read()
        except OSError:
            return ""

    def exec(self, argv, check=True, timeout=60):
        """argv inside the machine, as root at a shell there would run it."""
        assert self.leader
        return lib.run(["nsenter", "-t", str(self.leader), "-m", "-u", "-i", "-n", "-p",
                        "-r", "-w", "--", "/usr/bin/env", "-i", "PATH=" + PATH,
                        "HOME=/root", "LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive"] + argv,
                       check=check, timeout=timeout)

    def sh(self, script, check=True, timeout=60):
        return self.exec(["/bin/sh", "-c", script], check=check, timeout=timeout)

    def close(self):
        if self.proc and self.proc.poll() is None:
            if self.leader:
                subprocess.run(["nsenter", "-t", str(self.leader), "-m", "-p", "-r", "-w",
                                "--", "/bin/systemctl", "poweroff", "--no-block"],
                               capture_output=True, timeout=15)
            try:
                self.proc.wait(45)
            except subprocess.TimeoutExpired:
                # nspawn turns SIGTERM into a poweroff request, then SIGKILL.
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(15)
                except subprocess.TimeoutExpired:
                    if self.leader:
                        try:
                            os.kill(self.leader, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                    self.proc.kill()
                    self.proc.wait(15)
        self.powered_off = self.proc is not None and self.proc.poll() is not None
        if getattr(self, "log", None):
            self.log.close()
