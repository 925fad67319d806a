"""Root CA rotation (issue 10) on a lab of 2 managers and a worker running
a service, with the stock docker CLI: `docker swarm ca --rotate` moves
every node to a new root without restarting a task, changes the join
tokens, leaves every node trusting the new root only (swarm-root-ca.crt,
TLSInfo), and a certificate of the old root is refused afterwards; a node
that is down holds the rotation until it is back; `--ca-cert/--ca-key`
rotates to a root of one's own, checked with swarmkit's messages."""

import os
import shutil
import subprocess
import time

from lib import HALab, ServiceLab, ha_hosts, timeout, wait_until
from test_security import request

MANAGERS = ["m1", "m2"]
WORKERS = ["w1"]
HOSTS = MANAGERS + WORKERS


class RootLab(ServiceLab, HALab):
    """Managers and a worker (HALab) pulling from the lab's registry."""


def swarm(lab, host="m1"):
    st, body = lab.api(host, "GET", "/swarm")
    assert st == 200, (st, body)
    return body


def ca_out(lab, host="m1"):
    return lab.docker(host, "swarm", "ca")[1].strip()


def root_file(lab, host):
    with open(lab.certs(host)[2]) as f:
        return f.read().strip()


def tls_infos(lab):
    """{hostname: Description.TLSInfo} from node ls."""
    return {n["Description"]["Hostname"]: n["Description"].get("TLSInfo") or {}
            for n in lab.nodes("m1")}


def containers(lab):
    return {h: sorted(lab.docker(h, "ps", "-q", "--no-trunc")[1].split()) for h in HOSTS}


def tasks(lab):
    st, body = lab.api("m1", "GET", '/tasks?filters={"service":["keep"]}')
    assert st == 200, (st, body)
    return {t["ID"]: t["Status"]["State"] for t in body}


def keep_copy(lab, host, name):
    """A copy of host's current certificate and key (a thief's)."""
    crt, key, _ = lab.certs(host)
    out = []
    for src, ext in ((crt, "crt"), (key, "key")):
        dst = os.path.join(lab.dir, "%s.%s" % (name, ext))
        shutil.copy(src, dst)
        out.append(dst)
    return out


def swarm_port_status(lab, ident, target="m1"):
    """HTTP status of GET /swarm/v1/ca on target's swarm port from w1 with
    ident = (cert, key, root); 0 when the TLS handshake refused it."""
    return request(lab, "w1", target, "/swarm/v1/ca", ident=ident).get("status", 0)


def converged(lab, hosts=HOSTS):
    """Every node's TLSInfo and root file show the cluster's root."""
    s = swarm(lab)
    want = s["TLSInfo"]
    infos = tls_infos(lab)
    return (not s["RootRotationInProgress"] and
            all(i.get("TrustRoot") == want["TrustRoot"] and
                i.get("CertIssuerPublicKey") == want["CertIssuerPublicKey"] and
                i.get("CertIssuerSubject") == want["CertIssuerSubject"]
                for i in infos.values()) and
            all(root_file(lab, h) == want["TrustRoot"].strip() for h in hosts))


@timeout(420)
def test_root_rotation_moves_every_node():
    with RootLab(ha_hosts(2, 1)) as lab:
        lab.ha_cluster(MANAGERS, WORKERS)
        lab.service("m1", "create", "--detach", "--name", "keep", "--replicas", "3",
                    "--stop-grace-period", "1s", "busybox", "sleep", "3600")
        wait_until(lambda: sum(len(c) for c in containers(lab).values()) == 3, 120,
                   interval=1, what="3 running containers of keep")
        old_root = ca_out(lab)
        assert old_root.startswith("-----BEGIN CERTIFICATE-----"), old_root
        before = swarm(lab)
        assert before["RootRotationInProgress"] is False
        tokens = before["JoinTokens"]
        ctrs, tk = containers(lab), tasks(lab)
        # Nodes report what their certificate says (TLSInfo), the old root.
        wait_until(lambda: converged(lab), 20, what="TLSInfo reported by every node")
        old_cert = keep_copy(lab, "w1", "w1-old")
        assert swarm_port_status(lab, (old_cert[0], old_cert[1], lab.certs("w1")[2])) == 200

        rc, out, err = lab.docker("m1", "swarm", "ca", "--rotate", timeout=180)
        new_root = ca_out(lab)
        assert new_root != old_root
        # The CLI waited for both progress bars, then printed the new root.
        assert out.strip().endswith(new_root), (out, err)
        after = swarm(lab)
        assert after["RootRotationInProgress"] is False
        assert after["TLSInfo"]["TrustRoot"].strip() == new_root
        for kind in ("Worker", "Manager"):
            assert after["JoinTokens"][kind] != tokens[kind], kind
        assert "Root Rotation In Progress: false" in lab.docker("m2", "info")[1]
        # Every node trusts the new root only and reports a certificate
        # from it; the CLI only returned once all had.
        assert converged(lab), (swarm(lab), tls_infos(lab))
        for h in HOSTS:
            crt, _, ca = lab.certs(h)
            subprocess.run(["openssl", "verify", "-CAfile", ca, crt], check=True,
                           capture_output=True)
        # No task restarted.
        assert containers(lab) == ctrs, (ctrs, containers(lab))
        assert tasks(lab) == tk, (tk, tasks(lab))
        # The old root's certificate is refused now; the new one works.
        ident_old = (old_cert[0], old_cert[1], lab.certs("w1")[2])
        for m in MANAGERS:
            assert swarm_port_status(lab, ident_old, m) == 0, m
            assert swarm_port_status(lab, lab.certs("w1"), m) == 200, m
        # The new tokens work: a service update still reaches the worker.
        lab.service("m2", "scale", "--detach", "keep=4")
        wait_until(lambda: sum(len(c) for c in containers(lab).values()) == 4, 60,
                   interval=1, what="4 running containers of keep")


@timeout(300)
def test_down_node_holds_rotation_and_own_root():
    with HALab(ha_hosts(1, 1)) as lab:
        lab.ha_cluster(["m1"], ["w1"])
        wait_until(lambda: all(i.get("CertIssuerPublicKey") for i in tls_infos(lab).values()),
                   20, what="TLSInfo reported")
        old_root = ca_out(lab)
        lab.stop("w1")
        lab.docker("m1", "swarm", "ca", "--rotate", "--detach")
        # swarmkit's rule: every node in the store must move, down or not.
        time.sleep(3)
        s = swarm(lab)
        assert s["RootRotationInProgress"] is True, s
        assert "Root Rotation In Progress: true" in lab.docker("m1", "info")[1]
        assert ca_out(lab) == old_root
        lab.start("w1")
        small = ["m1", "w1"]
        wait_until(lambda: converged(lab, small), 60, what="rotation complete once w1 is back")
        assert ca_out(lab) != old_root

        # A root of one's own: swarmkit's checks, then the rotation to it.
        d = lab.dir
        key, crt = os.path.join(d, "my-ca.key"), os.path.join(d, "my-ca.crt")
        other = os.path.join(d, "other.key")
        for k in (key, other):
            subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout",
                            "-out", k], check=True, capture_output=True)
        subprocess.run(["openssl", "req", "-x509", "-new", "-key", key, "-subj", "/CN=my-ca",
                        "-days", "3650", "-addext", "basicConstraints=critical,CA:TRUE",
                        "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", crt],
                       check=True, capture_output=True)
        rc, out, err = lab.docker("m1", "swarm", "ca", "--rotate", "--ca-cert", crt,
                                  "--ca-key", other, check=False)
        assert rc != 0 and "certificate key mismatch" in err, (rc, out, err)
        rc, out, err = lab.docker("m1", "swarm", "ca", "--rotate", "--ca-key", key,
                                  check=False)
        assert rc != 0 and "if a signing CA key is provided, the signing CA cert must also " \
            "be provided" in err, (rc, out, err)
        assert swarm(lab)["RootRotationInProgress"] is False
        rc, out, err = lab.docker("m1", "swarm", "ca", "--rotate", "--ca-cert", crt,
                                  "--ca-key", key, timeout=180)
        with open(crt) as f:
            mine = f.read().strip()
        assert ca_out(lab) == mine
        assert out.strip().endswith(mine), (out, err)
        assert converged(lab, small), (swarm(lab), tls_infos(lab))
        # The key is never shown.
        st, body = lab.api("m1", "GET", "/swarm")
        assert "PRIVATE KEY" not in str(body), body
        assert not body["Spec"]["CAConfig"].get("SigningCAKey")
