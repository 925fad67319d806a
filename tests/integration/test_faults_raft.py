"""Raft storage faults (issue 7, items 4 and 6) as a user meets them with the
stock docker CLI on a one-manager lab: a full disk under --data-root (the
write fails naming the cause, works again once space is freed, and the
daemon restarts on a nearly full disk), a raft segment torn by a crash
(the daemon starts with the state committed before the tear), and a
damaged closed segment (a clean error naming the file, never a crash)."""

import base64
import json
import os
import re
import struct
import urllib.parse

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lib import Lab, timeout, wait_until

HOSTS = {"m1": "192.168.33.10"}
NOSPACE = "no space left on device"


# ---- helpers ----

def data_root(lab):
    return os.path.join(lab.dir, "m1", "data")


def raft_dir(lab):
    return os.path.join(data_root(lab), "swarm", "raft")


def mount_tmpfs(lab, size):
    """A tmpfs of size on m1's --data-root, inside m1's mount namespace
    (it goes away with the lab)."""
    lab.exec("m1", "mount", "-t", "tmpfs", "-o", "size=%s,mode=0711" % size, "tmpfs",
             data_root(lab))


def fill(lab, keep_kib=0):
    """Fills m1's data root with a file, leaving about keep_kib KiB free
    (the tmpfs is only visible inside m1)."""
    path = os.path.join(data_root(lab), "fill")
    lab.exec("m1", "dd", "if=/dev/zero", "of=" + path, "bs=64k", check=False, timeout=60)
    if keep_kib:
        lab.exec("m1", "truncate", "-s", "-%dK" % keep_kib, path)


def unfill(lab):
    lab.exec("m1", "rm", os.path.join(data_root(lab), "fill"))


def label(lab, key, value="1", check=True):
    return lab.docker("m1", "node", "update", "--label-add", "%s=%s" % (key, value), lab.node,
                      check=check, timeout=30)


def labels(lab):
    _, out, _ = lab.docker("m1", "node", "inspect", "--format", "{{json .Spec.Labels}}", lab.node)
    return json.loads(out) or {}


def log_count(lab, text):
    return lab.logs("m1").count(text)


def raft_dek(lab):
    """m1's raft data encryption key, from its key file's raft-dek header
    (no autolock here, so stored as it is)."""
    path = os.path.join(data_root(lab), "swarm", "certificates", "swarm-node.key")
    with open(path) as f:
        m = re.search(r"^raft-dek: (\S+)$", f.read(), re.M)
    return base64.b64decode(m.group(1)) if m else None


def entry_data(raw, dek):
    """A framed entry (8-byte length, payload) as shoal writes it: sealed
    with the DEK (magic, nonce, zero, length, tag, AES-256-GCM text; see
    src/raft/atrest.c), or plain from an older shoal."""
    if raw[:8] == b"shoalAE1" and dek:
        (ln,) = struct.unpack_from("<Q", raw, 24)
        try:
            raw = AESGCM(dek).decrypt(raw[8:20], raw[48:48 + ln] + raw[32:48], raw[:32])
        except Exception:
            return ""
    (ln,) = struct.unpack_from("<Q", raw, 0)
    return raw[8:8 + ln].decode(errors="replace")


def holds_text(payload, text):
    """Whether an entry's payload holds text as a string: JSON text
    (quoted) or CBOR (a text string's head, 0x60 + its length, then it;
    what shoal writes once every manager reads it)."""
    assert len(text) < 24
    return '"%s"' % text in payload or chr(0x60 + len(text)) + text in payload


def open_segment(lab):
    """(path, [(start, end, [payload])...]) of the open segment holding
    entries: the on-disk format of libraft 0.15 (format word 1, then
    batches of two crc32s, an entry count, 16-byte entry headers, data)."""
    dek = raft_dek(lab)
    for name in sorted(os.listdir(raft_dir(lab)), key=lambda n: (len(n), n)):
        if not name.startswith("open-"):
            continue
        path = os.path.join(raft_dir(lab), name)
        with open(path, "rb") as f:
            data = f.read()
        if len(data) < 8 or struct.unpack_from("<Q", data, 0)[0] != 1:
            continue
        batches, off = [], 8
        while off + 16 <= len(data):
            n = struct.unpack_from("<Q", data, off + 8)[0]
            if n == 0:
                break
            hdr = off + 16
            sizes = [struct.unpack_from("<I", data, hdr + 16 * i + 12)[0] for i in range(n)]
            p, payloads = hdr + 16 * n, []
            for s in sizes:
                payloads.append(entry_data(data[p:p + s], dek))
                p += s
            batches.append((off, p, payloads))
            off = p
        if batches:
            return path, batches
    return None, []


def kill_and_cut(lab, point):
    """SIGKILLs m1's shoald, cuts the last batch of its open segment at
    point ("data": inside the entry data, "header": inside the checksums
    and entry count); returns the payloads of the batch cut away."""
    lab.stop("m1", "KILL")
    path, batches = open_segment(lab)
    assert batches, "no open segment with entries in %s" % os.listdir(raft_dir(lab))
    start, end, payloads = batches[-1]
    cut = start + 10 if point == "header" else start + 16 + 16 * len(payloads) + 20
    assert cut < end
    os.truncate(path, cut)
    return os.path.basename(path), payloads


# ---- tests ----

@timeout(240)
def test_full_disk_names_the_cause_and_recovers_without_restart():
    with Lab(HOSTS, start=False) as lab:
        mount_tmpfs(lab, "24m")
        lab.start("m1")
        lab.node = lab.init("m1")
        label(lab, "before")
        fill(lab)
        # Open segments are preallocated: writes fill them before the disk
        # matters. Large labels get there in a few dozen writes.
        big = "x" * 100000
        err = None
        for i in range(80):
            rc, _, err = label(lab, "big", "%d%s" % (i, big), check=False)
            if rc != 0:
                break
        assert rc != 0, "80 writes of 100 kB on a full 24 MiB tmpfs all succeeded"
        assert NOSPACE in err, err
        assert raft_dir(lab) in err, err
        # The same burst: each write fails the same way, one log line.
        for _ in range(3):
            rc, _, err2 = label(lab, "more", check=False)
            assert rc != 0 and NOSPACE in err2, err2
        assert log_count(lab, NOSPACE) == 1, lab.logs("m1")
        unfill(lab)
        label(lab, "after")
        got = labels(lab)
        assert got.get("before") == "1" and got.get("after") == "1", got
        assert "writes work again" in lab.logs("m1"), lab.logs("m1")

        # A restart on a nearly full disk: 2 MiB free is enough.
        lab.stop("m1")
        fill(lab, keep_kib=2048)
        lab.start("m1")
        wait_until(lambda: lab.docker("m1", "node", "ls", check=False)[0] == 0, 20,
                   what="node ls after a restart on a nearly full disk")
        label(lab, "restarted")
        assert labels(lab).get("restarted") == "1"


@timeout(240)
def test_torn_open_segment_starts_with_the_committed_state():
    with Lab(HOSTS, start=["m1"]) as lab:
        lab.node = lab.init("m1")
        for i in range(5):
            label(lab, "l%d" % i)
        kept = ["l%d" % i for i in range(5)]
        # Two crashes, each tearing the newest open segment at another point.
        for rnd, point in enumerate(("data", "header")):
            label(lab, "last%d" % rnd)
            seg, lost = kill_and_cut(lab, point)
            lab.start("m1")
            wait_until(lambda: lab.docker("m1", "node", "ls", check=False)[0] == 0, 20,
                       what="node ls after a torn %s" % point)
            logs = lab.logs("m1")
            assert re.search(r"raft storage: \S+/%s: torn write" % re.escape(seg), logs), logs
            got = labels(lab)
            for k in kept:
                assert got.get(k) == "1", (k, got)
            # What the cut batch held is gone; what came before it stays.
            cut_last = any(holds_text(p, "last%d" % rnd) for p in lost)
            assert ("last%d" % rnd in got) != cut_last, (rnd, lost, got)
            if not cut_last:
                kept.append("last%d" % rnd)
            # And the log takes writes again.
            label(lab, "after%d" % rnd)
            kept.append("after%d" % rnd)
        assert set(kept) <= set(labels(lab)), (kept, labels(lab))


@timeout(180)
def test_cut_closed_segment_is_a_clean_error_naming_the_file():
    with Lab(HOSTS, start=["m1"]) as lab:
        lab.node = lab.init("m1")
        for i in range(3):
            label(lab, "c%d" % i)
        # A clean stop finalizes the open segment into a closed one.
        lab.stop("m1")
        closed = sorted(n for n in os.listdir(raft_dir(lab)) if re.fullmatch(r"\d{16}-\d{16}", n))
        assert closed, os.listdir(raft_dir(lab))
        seg = os.path.join(raft_dir(lab), closed[-1])
        size = os.path.getsize(seg)
        os.truncate(seg, size - 12)
        lab.start("m1")
        # The daemon runs and says why the swarm is not back; nothing was
        # changed on disk.
        _, out, _ = lab.docker("m1", "info", "--format", "{{.Swarm.LocalNodeState}}|{{.Swarm.Error}}")
        state, _, error = out.strip().partition("|")
        assert state == "error", out
        assert closed[-1] in error and "closed segment damaged" in error, out
        assert "could not rejoin the swarm: raft storage: %s" % seg in lab.logs("m1"), lab.logs("m1")
        assert os.path.getsize(seg) == size - 12
        assert lab.pid("m1") > 0


@timeout(240)
def test_snapshot_interval_takes_effect_and_a_restart_restores_from_it():
    """`swarm update --snapshot-interval` changes when raft snapshots are
    taken, at once and after a restart (swarmkit reads it at each check);
    the daemon then starts from the snapshot with every write in it."""
    with Lab(HOSTS, start=["m1"]) as lab:
        lab.node = lab.init("m1")

        def snapshots():
            return [n for n in os.listdir(raft_dir(lab))
                    if n.startswith("snapshot-") and not n.endswith(".meta")]

        assert snapshots() == [], snapshots()
        # Tasks that stay pending (no node fits): in the snapshot they name
        # their service's template, and come back from it with their spec.
        lab.docker("m1", "service", "create", "--detach", "--no-resolve-image", "--name", "snapsvc",
                   "--replicas", "3", "--constraint", "node.labels.nowhere==1",
                   "--publish", "published=8089,target=80,mode=host", "busybox", "sleep", "1d")

        def task_specs():
            st, tasks = lab.api("m1", "GET", "/v1.47/tasks?filters=%s" % urllib.parse.quote(json.dumps({"service": ["snapsvc"]})))
            return [t["Spec"] for t in tasks] if st == 200 else []
        wait_until(lambda: len(task_specs()) == 3, 20, what="3 tasks of snapsvc")
        lab.docker("m1", "swarm", "update", "--snapshot-interval", "20")
        _, out, _ = lab.docker("m1", "info", "--format", "{{.Swarm.Cluster.Spec.Raft.SnapshotInterval}}")
        assert out.strip() == "20", out
        for i in range(30):
            label(lab, "s%d" % i)
        wait_until(lambda: snapshots(), 20, what="a raft snapshot after 20 entries")
        assert "raft snapshot:" in lab.logs("m1"), lab.logs("m1")
        lab.stop("m1")
        lab.start("m1")
        wait_until(lambda: lab.docker("m1", "node", "ls", check=False)[0] == 0, 30,
                   what="node ls after a restart")
        got = labels(lab)
        assert all(got.get("s%d" % i) == "1" for i in range(30)), got
        template = lab.api("m1", "GET", "/v1.47/services/snapsvc")[1]["Spec"]["TaskTemplate"]
        specs = task_specs()
        assert len(specs) == 3 and all(sp == template for sp in specs), (template, specs)
        assert template["ContainerSpec"]["Args"] == ["sleep", "1d"], template
        snap = max(snapshots(), key=lambda n: os.path.getmtime(os.path.join(raft_dir(lab), n)))
        with open(os.path.join(raft_dir(lab), snap), "rb") as f:
            raw = f.read()
        raw = raw[raw.find(b"shoalAE1"):]  # after libraft's own header
        (ln,) = struct.unpack_from("<Q", raw, 24)
        payload = AESGCM(raft_dek(lab)).decrypt(raw[8:20], raw[48:48 + ln] + raw[32:48],
                                                raw[:32])
        # CBOR, which every manager here reads (a map: major type 5); its
        # text strings are their bytes as they are.
        assert payload[0] >> 5 == 5, payload[:200]
        assert payload.count(b"_Template") == 3 and payload.count(b"sleep") == 1, payload[:2000]
        # Still 20 after the restart: 30 more writes take another snapshot.
        first = set(snapshots())
        for i in range(30):
            label(lab, "t%d" % i)
        wait_until(lambda: set(snapshots()) - first, 20, what="a new snapshot after the restart")
        # The newest snapshot and the one before it stay (KeepOldSnapshots
        # 0 or 1); asking to keep more is refused by name, the spec intact.
        for i in range(45):
            label(lab, "u%d" % i)
        wait_until(lambda: len(set(snapshots()) - first) >= 2, 20, what="two more snapshots")
        wait_until(lambda: len(snapshots()) <= 2, 10, what="at most two snapshots on disk")
        st, sw = lab.api("m1", "GET", "/swarm")
        spec = sw["Spec"]
        spec["Raft"]["KeepOldSnapshots"] = 3
        st, body = lab.api("m1", "POST", "/swarm/update?version=%d" % sw["Version"]["Index"], spec)
        assert st == 501 and "KeepOldSnapshots" in body["message"], (st, body)
        st, sw = lab.api("m1", "GET", "/swarm")
        assert sw["Spec"]["Raft"].get("KeepOldSnapshots", 0) == 0, sw["Spec"]["Raft"]
        # ElectionTick and HeartbeatTick (API only, as in Docker) take effect
        # at once and after a restart; an election tick not above the
        # heartbeat tick is refused.
        spec = sw["Spec"]
        spec["Raft"].update(KeepOldSnapshots=0, ElectionTick=2, HeartbeatTick=2)
        st, body = lab.api("m1", "POST", "/swarm/update?version=%d" % sw["Version"]["Index"], spec)
        assert st == 400 and "must be greater than HeartbeatTick" in body["message"], (st, body)
        spec["Raft"].update(ElectionTick=20, HeartbeatTick=2)
        st, body = lab.api("m1", "POST", "/swarm/update?version=%d" % sw["Version"]["Index"], spec)
        assert st == 200, (st, body)
        applied = "raft: heartbeats every 120 ms, election timeout 1200 ms"
        wait_until(lambda: applied in lab.logs("m1"), 10, what="the new ticks applied")
        lab.stop("m1")
        lab.start("m1")
        wait_until(lambda: lab.logs("m1").count(applied) >= 2, 30,
                   what="the ticks applied again after a restart")
        _, out, _ = lab.docker("m1", "info", "--format",
                               "{{.Swarm.Cluster.Spec.Raft.ElectionTick}} "
                               "{{.Swarm.Cluster.Spec.Raft.HeartbeatTick}}")
        assert out.split() == ["20", "2"], out
