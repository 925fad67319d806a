"""Encryption at rest (issue 10) on a one-manager lab, with the stock docker
CLI: the raft directory (log segments and snapshots) shows neither the
names in the store nor the CA key, and a restarted manager reads it all
back with the key in its key file."""

import os

import re

from lib import DOCKER, Lab, run, timeout, wait_until

HOSTS = {"m1": "192.168.33.10"}
SERVICE = "atrestsvcmarker7q"
LABEL = "atrestlabelmarker3z"


def swarm_dir(lab):
    return os.path.join(lab.dir, "m1", "data", "swarm")


def raft_files_contain(lab, needle):
    """Names of the raft directory's files holding needle (bytes)."""
    d = os.path.join(swarm_dir(lab), "raft")
    hits = []
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), "rb") as f:
            if needle in f.read():
                hits.append(name)
    return hits


@timeout(150)
def test_raft_data_is_encrypted_at_rest():
    with Lab(HOSTS) as lab:
        node = lab.init("m1")
        lab.docker("m1", "node", "update", "--label-add", "marker=" + LABEL, node)
        lab.docker("m1", "service", "create", "--detach", "--no-resolve-image",
                   "--replicas", "0", "--name", SERVICE, "busybox", timeout=60)
        # The key file carries the DEK in a PEM header, as swarmkit's.
        with open(os.path.join(swarm_dir(lab), "certificates", "swarm-node.key")) as f:
            key = f.read()
        assert "raft-dek: " in key, key.splitlines()[:2]
        lab.restart("m1")
        wait_until(lambda: LABEL in lab.docker("m1", "node", "inspect", node, check=False)[1],
                   timeout=30, what="node labels after a restart")
        _, out, _ = lab.docker("m1", "service", "ls", "--format", "{{.Name}}")
        assert SERVICE in out.split(), out
        for needle in (SERVICE.encode(), LABEL.encode(), b"PRIVATE KEY", b"BEGIN CERTIFICATE"):
            assert raft_files_contain(lab, needle) == [], needle


LOCKED = ('Swarm is encrypted and needs to be unlocked before it can be used. '
          'Please use "docker swarm unlock" to unlock it.')
WRONG_KEY = "swarm could not be unlocked: invalid key provided"
KEY_RE = r"SWMKEY-1-[A-Za-z0-9+/]{43}"


def unlock(lab, key, check=True):
    """docker swarm unlock, the key on stdin as a user pastes it."""
    return run([DOCKER, "-H", "unix://" + lab.sock("m1"), "swarm", "unlock"], check=check,
               timeout=30, input=key + "\n")


def restart_locked(lab):
    lab.restart("m1")
    wait_until(lambda: "Swarm: locked" in lab.docker("m1", "info", check=False)[1],
               timeout=30, what="docker info: Swarm: locked")
    rc, out, errout = lab.docker("m1", "node", "ls", check=False)
    assert rc != 0 and LOCKED in errout, (rc, out, errout)


@timeout(170)
def test_autolock_init_restart_unlock_rotate():
    with Lab(HOSTS) as lab:
        _, out, _ = lab.docker("m1", "swarm", "init", "--autolock", "--advertise-addr",
                               lab.ip("m1"))
        # The CLI prints the key as Docker does, from GET /swarm/unlockkey.
        assert "docker swarm unlock" in out, out
        keys = re.findall(KEY_RE, out)
        assert len(keys) == 1, out
        key = keys[0]
        assert lab.docker("m1", "swarm", "unlock-key", "-q")[1].strip() == key
        # Not in info nor in inspect.
        assert key not in lab.docker("m1", "info")[1]
        assert key not in repr(lab.api("m1", "GET", "/swarm")[1])
        node = lab.docker("m1", "info", "--format", "{{.Swarm.NodeID}}")[1].strip()
        lab.docker("m1", "service", "create", "--detach", "--no-resolve-image",
                   "--replicas", "0", "--name", SERVICE, "busybox", timeout=60)
        with open(os.path.join(swarm_dir(lab), "certificates", "swarm-node.key")) as f:
            assert "ENCRYPTED PRIVATE KEY" in f.read()

        restart_locked(lab)
        rc, _, errout = unlock(lab, "SWMKEY-1-" + "A" * 43, check=False)
        assert rc != 0 and WRONG_KEY in errout, errout
        unlock(lab, key)
        wait_until(lambda: lab.docker("m1", "node", "ls", check=False)[0] == 0,
                   timeout=30, what="node ls after unlock")
        assert node in lab.docker("m1", "node", "ls", "-q")[1]
        assert SERVICE in lab.docker("m1", "service", "ls", "--format", "{{.Name}}")[1]

        # Rotation: the new key unlocks, the old one no longer does.
        _, out, _ = lab.docker("m1", "swarm", "unlock-key", "--rotate")
        new = re.findall(KEY_RE, out)
        assert len(new) == 1 and new[0] != key, out
        wait_until(lambda: "sealed again" in lab.logs("m1"), timeout=15,
                   what="key file sealed under the new key")
        restart_locked(lab)
        rc, _, errout = unlock(lab, key, check=False)
        assert rc != 0 and WRONG_KEY in errout, errout
        unlock(lab, new[0])
        wait_until(lambda: lab.docker("m1", "node", "ls", check=False)[0] == 0,
                   timeout=30, what="node ls after unlock with the new key")
        assert SERVICE in lab.docker("m1", "service", "ls", "--format", "{{.Name}}")[1]

        # Off again: the key file is open, a restart needs no key.
        lab.docker("m1", "swarm", "update", "--autolock=false")
        wait_until(lambda: "no longer sealed" in lab.logs("m1"), timeout=15,
                   what="key file opened")
        lab.restart("m1")
        wait_until(lambda: lab.docker("m1", "node", "ls", check=False)[0] == 0,
                   timeout=30, what="node ls after a restart without autolock")
        for needle in (SERVICE.encode(), b"PRIVATE KEY", new[0].encode()):
            assert raft_files_contain(lab, needle) == [], needle
        assert new[0] not in lab.logs("m1")


def key_file(lab, host):
    with open(os.path.join(lab.dir, host, "data", "swarm", "certificates",
                           "swarm-node.key")) as f:
        return f.read()


@timeout(170)
def test_autolock_rotation_reaches_every_manager():
    from lib import HALab, ha_hosts
    with HALab(ha_hosts(3)) as lab:
        lab.ha_cluster(["m1", "m2", "m3"])
        # On through an update on a follower's API (forwarded to the leader).
        _, out, _ = lab.docker("m2", "swarm", "update", "--autolock=true")
        first = re.findall(KEY_RE, out)
        assert len(first) == 1, out
        wait_until(lambda: all("ENCRYPTED PRIVATE KEY" in key_file(lab, h)
                               for h in ("m1", "m2", "m3")),
                   timeout=20, what="every manager's key file sealed")
        before = {h: key_file(lab, h) for h in ("m1", "m2", "m3")}
        _, out, _ = lab.docker("m1", "swarm", "unlock-key", "--rotate")
        new = re.findall(KEY_RE, out)
        assert len(new) == 1 and new[0] != first[0], out
        wait_until(lambda: all(key_file(lab, h) != before[h] for h in ("m1", "m2", "m3")),
                   timeout=20, what="every manager's key file sealed under the new key")
        # A restarted follower is locked; the old key no longer opens it.
        lab.restart("m3")
        wait_until(lambda: "Swarm: locked" in lab.docker("m3", "info", check=False)[1],
                   timeout=30, what="m3 locked")
        run_unlock = lambda k: run([DOCKER, "-H", "unix://" + lab.sock("m3"), "swarm", "unlock"],
                                   check=False, timeout=30, input=k + "\n")
        rc, _, errout = run_unlock(first[0])
        assert rc != 0 and WRONG_KEY in errout, errout
        rc, _, errout = run_unlock(new[0])
        assert rc == 0, errout
        wait_until(lambda: len(lab.nodes("m3")) == 3, timeout=30, what="m3 serves node ls")
        for h in ("m1", "m2", "m3"):
            assert new[0] not in lab.logs(h)
