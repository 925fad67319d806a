"""Certificate renewal and rotation (issue 10) on a lab of 3 managers and
a worker running busybox tasks, with the stock docker CLI: `docker swarm
ca --rotate` (ForceRotate, a root CA rotation: test_rootca.py) makes every
node renew its certificate at once, without a task restart, a leader
change or a dropped session, and a manager's swarm port presents the new
certificate; `docker swarm update --cert-expiry 1h` gives the next
certificates 1 h of validity."""

import datetime
import ssl
import subprocess
import time

from lib import HALab, ServiceLab, ha_hosts, timeout, wait_until

MANAGERS = ["m1", "m2", "m3"]
WORKERS = ["w1"]
HOSTS = MANAGERS + WORKERS


class RotationLab(ServiceLab, HALab):
    """Managers and a worker (HALab) pulling from the lab's registry."""


def cert_facts(path):
    """(serial, notBefore, notAfter) of a PEM certificate file, the dates
    as aware datetimes."""
    out = subprocess.run(["openssl", "x509", "-noout", "-serial", "-startdate", "-enddate",
                          "-in", path], check=True, capture_output=True, text=True).stdout
    f = dict(l.split("=", 1) for l in out.strip().splitlines())
    fmt = "%b %d %H:%M:%S %Y %Z"
    when = lambda s: datetime.datetime.strptime(" ".join(s.split()), fmt).replace(
        tzinfo=datetime.timezone.utc)
    return f["serial"], when(f["notBefore"]), when(f["notAfter"])


def serials(lab):
    return {h: cert_facts(lab.certs(h)[0])[0] for h in HOSTS}


def presented_serial(lab, host):
    """Serial of the certificate a new client of host's swarm port gets."""
    crt, key, ca = lab.certs(host)
    script = (
        "import ssl,socket,sys\n"
        "c=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT);c.check_hostname=False\n"
        "c.load_verify_locations(sys.argv[2]);c.load_cert_chain(sys.argv[3],sys.argv[4])\n"
        "t=c.wrap_socket(socket.create_connection((sys.argv[1],2377),timeout=5))\n"
        "sys.stdout.write(ssl.DER_cert_to_PEM_cert(t.getpeercert(True)))\n")
    pem = lab.exec("w1", "python3", "-c", script, lab.ip(host), ca, *lab.certs("w1")[:2])[1]
    out = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=pem, check=True,
                         capture_output=True, text=True).stdout
    return out.strip().split("=", 1)[1]


def containers(lab):
    """{host: sorted running container IDs}."""
    return {h: sorted(lab.docker(h, "ps", "-q", "--no-trunc")[1].split()) for h in HOSTS}


def tasks(lab):
    """{task ID: state} of the service's tasks."""
    st, body = lab.api("m1", "GET", '/tasks?filters={"service":["keep"]}')
    assert st == 200, (st, body)
    return {t["ID"]: t["Status"]["State"] for t in body}


def setup(lab):
    lab.ha_cluster(MANAGERS, WORKERS)
    lab.service("m1", "create", "--detach", "--name", "keep", "--replicas", "4",
                "--stop-grace-period", "1s", "busybox", "sleep", "3600")
    wait_until(lambda: sum(len(c) for c in containers(lab).values()) == 4, 120, interval=1,
               what="4 running containers of keep")


def wait_all_renewed(lab, before, limit=40):
    def renewed():
        now = serials(lab)
        return all(now[h] != before[h] for h in HOSTS)
    wait_until(renewed, limit, interval=0.5, what="every node's certificate renewed")


@timeout(300)
def test_force_rotate_renews_every_node_without_restart():
    with RotationLab(ha_hosts(3, 1)) as lab:
        setup(lab)
        leader = lab.wait_leader(MANAGERS, 20)
        before, ctrs, tk = serials(lab), containers(lab), tasks(lab)
        force = lab.api("m1", "GET", "/swarm")[1]["Spec"]["CAConfig"].get("ForceRotate", 0)

        old_root = lab.docker("m1", "swarm", "ca")[1]
        rc, out, err = lab.docker("m2", "swarm", "ca", "--rotate", timeout=120)
        assert "-----BEGIN CERTIFICATE-----" in out, (out, err)
        # A new root: the CLI waited for the rotation to complete.
        assert out.strip().endswith(lab.docker("m1", "swarm", "ca")[1].strip()), out
        assert lab.docker("m1", "swarm", "ca")[1] != old_root
        spec = lab.api("m1", "GET", "/swarm")[1]["Spec"]["CAConfig"]
        assert spec.get("ForceRotate") == force + 1, spec
        wait_all_renewed(lab, before)

        after = serials(lab)
        for h in HOSTS:
            # Still this cluster's node, same role, chained to the root.
            crt, _, ca = lab.certs(h)
            subprocess.run(["openssl", "verify", "-CAfile", ca, crt], check=True,
                           capture_output=True)
        # New clients of every manager's swarm port get the new certificate.
        wait_until(lambda: all(presented_serial(lab, m) == after[m] for m in MANAGERS), 10,
                   what="managers presenting their new certificates")
        # Nothing restarted, nobody lost the leader, every node stays ready.
        assert containers(lab) == ctrs, (ctrs, containers(lab))
        assert tasks(lab) == tk, (tk, tasks(lab))
        assert lab.wait_leader(MANAGERS, 10) == leader
        states = {n["Description"]["Hostname"]: n["Status"]["State"] for n in lab.nodes("m1")}
        assert all(states[h] == "ready" for h in HOSTS), states
        # Raft still replicates: a write on a follower shows on every manager.
        follower = next(m for m in MANAGERS if m != leader)
        lab.service(follower, "scale", "--detach", "keep=5")
        for m in MANAGERS:
            wait_until(lambda: lab.api(m, "GET", "/services/keep")[1]["Spec"]["Mode"]
                       ["Replicated"]["Replicas"] == 5, 10, what="scale seen on " + m)
        # Managers' logs say why.
        assert "renewing this node's certificate" in lab.logs("m3")


@timeout(240)
def test_cert_expiry_applies_to_next_renewal():
    with RotationLab(ha_hosts(3, 1)) as lab:
        lab.ha_cluster(MANAGERS, WORKERS)
        rc, out, err = lab.docker("m1", "swarm", "update", "--cert-expiry", "30m", check=False)
        assert rc != 0 and "minimum certificate expiry time is: 1h0m0s" in err, (rc, out, err)
        lab.docker("m1", "swarm", "update", "--cert-expiry", "1h")
        assert lab.api("m2", "GET", "/swarm")[1]["Spec"]["CAConfig"]["NodeCertExpiry"] == \
            3600 * 10**9
        # A node certificate is no root of one's own (swarmkit checks its
        # lifetime first: a root must last a year more); its key must not
        # end up in the spec.
        crt, key, _ = lab.certs("m1")
        rc, out, err = lab.docker("m1", "swarm", "ca", "--rotate", "--detach", "--ca-cert", crt,
                                  "--ca-key", key, check=False)
        assert rc != 0 and "CA certificate expires too soon" in err, (rc, out, err)
        ca_config = lab.api("m1", "GET", "/swarm")[1]["Spec"]["CAConfig"]
        assert not ca_config.get("SigningCAKey") and not ca_config.get("SigningCACert"), ca_config
        before = serials(lab)
        lab.docker("m1", "swarm", "ca", "--rotate", "--detach")
        wait_all_renewed(lab, before)
        now = datetime.datetime.now(datetime.timezone.utc)
        for h in HOSTS:
            _, nb, na = cert_facts(lab.certs(h)[0])
            left = (na - now).total_seconds()
            assert 3400 < left <= 3660, (h, na, now)
            # Backdated an hour as swarmkit does.
            assert abs((na - nb).total_seconds() - 7200) < 120, (h, nb, na)


@timeout(150)
def test_node_down_during_force_rotate_renews_on_return():
    with HALab(ha_hosts(1, 1)) as lab:
        lab.ha_cluster(["m1"], ["w1"])
        before = cert_facts(lab.certs("w1")[0])[0]
        lab.stop("w1")
        lab.docker("m1", "swarm", "ca", "--rotate", "--detach")
        time.sleep(2)
        assert cert_facts(lab.certs("w1")[0])[0] == before
        lab.start("w1")
        wait_until(lambda: cert_facts(lab.certs("w1")[0])[0] != before, 30,
                   what="w1 renewed after its restart")
        # Once renewed for this ForceRotate, a restart renews no more.
        renewed = cert_facts(lab.certs("w1")[0])[0]
        lab.restart("w1")
        time.sleep(8)  # a session and its node message, several times over
        assert cert_facts(lab.certs("w1")[0])[0] == renewed
        assert lab.node_status("m1", lab.node_id("w1"))[0] == "ready"
