"""Encryption at rest (issue 10) on a one-manager lab, with the stock docker
CLI: the raft directory (log segments and snapshots) shows neither the
names in the store nor the CA key, and a restarted manager reads it all
back with the key in its key file."""

import os

from lib import Lab, timeout, wait_until

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
