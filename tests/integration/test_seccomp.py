"""Seccomp for task containers, checked as a user would: `docker info`
claims it, a task reads its own seccomp state and tries a syscall, and
the result comes back through `docker service logs`. The docker CLI has
no service flag for ContainerSpec.Privileges.Seccomp, so unconfined and
custom services are made through the Engine API over the unix socket,
as an SDK would."""

import base64
import copy
import json
import re

from lib import SEED, ServiceLab, timeout, wait_until

HOST_PROFILE = "/usr/share/containers/seccomp.json"
# Prints the task's seccomp mode (2: a filter) and whether unshare(2) of a
# user namespace works (it needs no capability without seccomp).
SCRIPT = ("grep Seccomp: /proc/self/status; "
          "if unshare -U true; then echo unshare-ok; else echo unshare-denied; fi; "
          "sleep 3600")


def docker_rule_profile():
    """The daemon's profile with Docker's rule for unshare (moby's
    default.json): allowed only with CAP_SYS_ADMIN, and EPERM for what no
    rule allows (defaultErrnoRet 1)."""
    with open(HOST_PROFILE) as f:
        p = json.load(f)
    p = copy.deepcopy(p)
    p["defaultErrnoRet"] = 1
    for s in p["syscalls"]:
        if not s.get("includes") and not s.get("excludes") and "unshare" in s["names"]:
            s["names"].remove("unshare")
    p["syscalls"].append({"names": ["unshare"], "action": "SCMP_ACT_ALLOW",
                          "includes": {"caps": ["CAP_SYS_ADMIN"]}})
    return p


def spec(name, seccomp=None):
    cs = {"Image": "busybox", "Command": ["sh", "-c", SCRIPT]}
    if seccomp is not None:
        cs["Privileges"] = {"Seccomp": seccomp}
    return {"Name": name, "TaskTemplate": {"ContainerSpec": cs},
            "Mode": {"Replicated": {"Replicas": 1}}}


def b64(obj):
    return base64.b64encode(json.dumps(obj).encode()).decode()


def create(lab, body):
    return lab.api("swarma", "POST", "/v1.47/services/create", body, timeout=60)


def logs_until(lab, svc, *words):
    def ok():
        # The CLI writes the task's stderr to its own stderr.
        _, out, err = lab.service("swarma", "logs", "--raw", svc, check=False)
        out += err
        return out if all(w in out for w in words) else None
    return wait_until(ok, 60, interval=0.5, what="%s in the logs of %s" % (words, svc))


@timeout(300)
def test_seccomp_default_unconfined_custom_and_refusals():
    with ServiceLab({"swarma": SEED["swarma"]}) as lab:
        lab.init("swarma")
        _, out, _ = lab.docker("swarma", "info", "--format", "{{json .SecurityOptions}}")
        assert json.loads(out) == ["name=seccomp,profile=builtin"], out
        _, out, _ = lab.docker("swarma", "info")
        assert "Security Options:\n  seccomp\n   Profile: builtin\n" in out, out

        # default (no Privileges at all, through the docker CLI): the filter
        # is on; the daemon's profile lets unshare(CLONE_NEWUSER) through.
        lab.service("swarma", "create", "-d", "--name", "sc-default", "busybox",
                    "sh", "-c", SCRIPT)
        logs_until(lab, "sc-default", "Seccomp:\t2", "unshare-")

        # unconfined: no filter, the syscall works.
        st, r = create(lab, spec("sc-unconfined", {"Mode": "unconfined"}))
        assert st == 201, (st, r)
        out = logs_until(lab, "sc-unconfined", "Seccomp:\t0", "unshare-ok")
        assert "unshare-denied" not in out, out

        # custom, with Docker's rule for unshare: no CAP_SYS_ADMIN, so EPERM.
        st, r = create(lab, spec("sc-custom", {"Mode": "custom", "Profile": b64(docker_rule_profile())}))
        assert st == 201, (st, r)
        out = logs_until(lab, "sc-custom", "Seccomp:\t2", "unshare-denied")
        assert "Operation not permitted" in out, out
        assert "unshare-ok" not in out, out
        # The spec keeps the profile as given.
        st, svc = lab.api("swarma", "GET", "/v1.47/services/sc-custom")
        assert svc["Spec"]["TaskTemplate"]["ContainerSpec"]["Privileges"]["Seccomp"]["Mode"] == "custom", svc

        # Refused at create and update with a message; nothing stored.
        bad = {"defaultAction": "SCMP_ACT_ERRNO",
               "syscalls": [{"names": ["read"], "action": "SCMP_ACT_SOMETIMES"}]}
        st, r = create(lab, spec("sc-bad", {"Mode": "custom", "Profile": b64(bad)}))
        assert st == 400, (st, r)
        assert r["message"] == ('invalid seccomp profile: syscalls[0].action: '
                                '"SCMP_ACT_SOMETIMES" is not a seccomp action'), r
        st, r = create(lab, spec("sc-bad", {"Mode": "custom"}))
        assert (st, r["message"]) == (400, 'seccomp mode "custom" needs a profile'), (st, r)
        st, r = create(lab, spec("sc-bad", {"Mode": "strict"}))
        assert st == 400 and "invalid seccomp mode \"strict\"" in r["message"], (st, r)
        st, r = create(lab, spec("sc-bad", {"Mode": "custom", "Profile": "{not base64"}))
        assert st == 400 and "illegal base64" in r["message"], (st, r)
        names = [s["NAME"] for s in lab.service_ls("swarma")]
        assert "sc-bad" not in names, names

        st, svc = lab.api("swarma", "GET", "/v1.47/services/sc-unconfined")
        upd = svc["Spec"]
        upd["TaskTemplate"]["ContainerSpec"]["Privileges"] = {
            "Seccomp": {"Mode": "custom", "Profile": b64({"defaultAction": 7})}}
        st, r = lab.api("swarma", "POST", "/v1.47/services/sc-unconfined/update?version=%d"
                        % svc["Version"]["Index"], upd)
        assert (st, r["message"]) == (400, "invalid seccomp profile: defaultAction: not a string"), (st, r)


CAPS = ("grep -E 'CapEff|NoNewPrivs' /proc/self/status; "
        "if ip addr add 10.9.9.9/32 dev lo; then echo netadmin-ok; else echo netadmin-denied; fi; "
        "if chown 1 /tmp; then echo chown-ok; else echo chown-denied; fi; sleep 3600")


@timeout(240)
def test_capabilities_and_no_new_privileges_are_applied():
    with ServiceLab({"swarma": SEED["swarma"]}) as lab:
        lab.init("swarma")
        # Docker's defaults: no NET_ADMIN, CHOWN allowed.
        lab.service("swarma", "create", "-d", "--name", "caps-default", "busybox",
                    "sh", "-c", CAPS)
        out = logs_until(lab, "caps-default", "netadmin-", "chown-")
        assert "netadmin-denied" in out and "chown-ok" in out, out
        assert "CapEff:\t00000000a80425fb" in out, out
        # --cap-add / --cap-drop, as the CLI sends them.
        lab.service("swarma", "create", "-d", "--name", "caps", "--cap-add", "NET_ADMIN",
                    "--cap-drop", "CHOWN", "busybox", "sh", "-c", CAPS)
        out = logs_until(lab, "caps", "netadmin-", "chown-")
        assert "netadmin-ok" in out and "chown-denied" in out, out
        assert "NoNewPrivs:\t0" in out, out
        rc, _, err = lab.service("swarma", "create", "-d", "--name", "caps-bad", "--cap-add",
                                 "NOPE", "busybox", "true", check=False)
        assert rc == 1 and 'unknown capability: "CAP_NOPE"' in err, err
        # NoNewPrivileges through the API (the CLI has no service flag).
        body = {"Name": "nnp", "TaskTemplate": {"ContainerSpec": {
            "Image": "busybox", "Command": ["sh", "-c", CAPS],
            "Privileges": {"NoNewPrivileges": True}}}, "Mode": {"Replicated": {"Replicas": 1}}}
        st, r = create(lab, body)
        assert st == 201, (st, r)
        logs_until(lab, "nnp", "NoNewPrivs:\t1")
        # What shoal does not apply is refused, not stored.
        body["Name"] = "aa"
        body["TaskTemplate"]["ContainerSpec"]["Privileges"] = {"AppArmor": {"Mode": "default"}}
        st, r = create(lab, body)
        assert st == 501 and "AppArmor" in r["message"], (st, r)
        names = [s["NAME"] for s in lab.service_ls("swarma")]
        assert "aa" not in names and "caps-bad" not in names, names


@timeout(180)
def test_container_spec_fields_applied_or_refused():
    """Every ContainerSpec field is applied or refused with a message,
    never stored and ignored."""
    with ServiceLab({"swarma": SEED["swarma"]}) as lab:
        lab.init("swarma")
        lab.service("swarma", "create", "-d", "--name", "hosts", "--host", "db.local:10.1.2.3",
                    "busybox", "sh", "-c",
                    "cat /etc/hosts; cat /proc/self/oom_score_adj; sleep 3600")
        out = logs_until(lab, "hosts", "db.local")
        assert re.search(r"^10\.1\.2\.3\s+db\.local$", out, re.M), out
        pre = "Error response from daemon: "
        for flags, what in ((["--log-driver", "syslog"],
                             "--log-driver other than json-file (TaskTemplate.LogDriver)"),):
            rc, _, err = lab.service("swarma", "create", "-d", "--name", "refused", *flags,
                                     "busybox", "true", check=False)
            assert rc == 1 and err.strip() == pre + what + " is not supported by shoal yet", \
                (flags, err)
        # Ports out of range and protocols shoal does not know: clear errors.
        for port, want in (({"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 70000},
                            (400, "invalid port tcp 70000:80 (ports are 1-65535)")),
                           ({"Protocol": "icmp", "TargetPort": 80, "PublishedPort": 8080},
                            (400, "invalid protocol icmp 8080:80 (ports are 1-65535)")),
                           ({"Protocol": "sctp", "TargetPort": 80, "PublishedPort": 8080},
                            (501, "SCTP ports are not supported by shoal yet"))):
            st, r = create(lab, {"Name": "p", "TaskTemplate": {"ContainerSpec": {
                "Image": "busybox", "Command": ["true"]}}, "EndpointSpec": {"Ports": [port]}})
            assert (st, r["message"]) == want, (port, st, r)
        # --no-healthcheck: accepted (the image's check is off).
        lab.service("swarma", "create", "-d", "--name", "nohc", "--no-healthcheck", "busybox",
                    "sleep", "600")
        names = [s["NAME"] for s in lab.service_ls("swarma")]
        assert "refused" not in names and "nohc" in names, names
