"""ContainerSpec fields applied in the task, read back as a user would
(the task's own output through `docker service logs`): --init (PID 1 is
tini), --dns/--dns-search/--dns-option (/etc/resolv.conf, with and without
the embedded DNS of an overlay network), --sysctl (/proc/sys), --ulimit
(/proc/self/limits), --group (id -G), --read-only (touch / fails),
--isolation default; what stays unsupported is refused with a message."""

import re

from lib import SEED, ServiceLab, timeout, wait_until

SCRIPT = ("printf 'pid1=%s\\n' \"$(tr '\\0' ' ' </proc/1/cmdline)\"; cat /etc/resolv.conf; "
          "echo shmmni=$(cat /proc/sys/kernel/shmmni); echo somaxconn=$(cat "
          "/proc/sys/net/core/somaxconn); grep 'Max open files' /proc/self/limits; "
          "echo groups=$(id -G); if touch /probe 2>/dev/null; then echo root=rw; "
          "else echo root=ro; fi; echo END-$((1+1)); sleep 3600")


def logs_until(lab, svc, word, secs=90):
    def ok():
        _, out, err = lab.service("swarma", "logs", "--raw", svc, check=False)
        out += err
        return out if word in out else None
    return wait_until(ok, secs, interval=1, what="%s logs %r" % (svc, word))


@timeout(300)
def test_spec_fields_applied_inside_the_task():
    with ServiceLab({"swarma": SEED["swarma"]}) as lab:
        lab.init("swarma")
        common = ["--init", "--dns", "192.0.2.53", "--dns-search", "svc.example",
                  "--dns-option", "timeout:3", "--sysctl", "kernel.shmmni=1234",
                  "--sysctl", "net.core.somaxconn=777", "--ulimit", "nofile=1000:2000",
                  "--group", "4242", "--group", "nogroup", "--read-only",
                  "--isolation", "default"]
        lab.service("swarma", "create", "-d", "--name", "fields", *common,
                    "busybox", "sh", "-c", SCRIPT)
        lab.docker("swarma", "network", "create", "-d", "overlay", "appnet")
        lab.service("swarma", "create", "-d", "--name", "onnet", "--network", "appnet",
                    *common, "busybox", "sh", "-c", SCRIPT)
        out = logs_until(lab, "fields", "END-2")
        assert re.search(r"^pid1=/sbin/docker-init -- sh -c ", out, re.M), out
        assert "nameserver 192.0.2.53\nsearch svc.example\noptions timeout:3\n" in out, out
        assert "shmmni=1234\n" in out and "somaxconn=777\n" in out, out
        assert re.search(r"^Max open files\s+1000\s+2000\s+files", out, re.M), out
        assert re.search(r"^groups=0 4242 65534$", out, re.M), out
        assert "root=ro\n" in out, out
        # On an overlay network the embedded DNS answers: it is the only
        # server (192.0.2.53 is its upstream), search and options as given.
        out = logs_until(lab, "onnet", "END-2")
        assert "nameserver 127.0.0.11\nsearch svc.example\noptions timeout:3\n" \
               "options ndots:0\n" in out, out
        assert "nameserver 192.0.2.53" not in out, out
        assert re.search(r"^pid1=/sbin/docker-init -- ", out, re.M), out
        cid = lab.docker("swarma", "ps", "-q", "--no-trunc", "--filter",
                         "name=fields.")[1].split()
        if cid:
            hc = lab.docker("swarma", "inspect", "--format",
                            "{{.HostConfig.Init}} {{.HostConfig.ReadonlyRootfs}} "
                            "{{.HostConfig.Dns}}", cid[0])[1].strip()
            assert hc == "true true [192.0.2.53]", hc

        # Refused with a message, never stored and ignored.
        pre = "Error response from daemon: "
        for flags, want in ((["--sysctl", "vm.swappiness=10"],
                             "sysctl 'vm.swappiness' is not allowed"),
                            (["--isolation", "hyperv"], "--isolation (ContainerSpec.Isolation) "
                                                        "is not supported by shoal yet")):
            rc, _, err = lab.service("swarma", "create", "-d", "--name", "refused", *flags,
                                     "busybox", "true", check=False)
            assert rc == 1 and err.strip() == pre + want, (flags, err)
        names = [s["NAME"] for s in lab.service_ls("swarma")]
        assert "refused" not in names, names
