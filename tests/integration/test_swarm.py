"""Sections 2.1 and 2.2 of the seed as a user checks them with the stock
docker CLI: init, join tokens, join, node ls/inspect/update/rm, info, leave,
down detection and restarts. Expected texts are the docker CLI 28.x's and
dockerd/swarmkit's."""

import re
import time

from lib import NODE_ID, SEED, TOKEN, Lab, parse_pretty, parse_table, timeout, wait_until

MULTI_ADDR = ("could not choose an IP address to advertise since this system has multiple "
              "addresses on different interfaces (10.0.2.15 on eth0 and 192.168.33.10 on eth1)")


def join_command(role, token, addr):
    return ("To add a %s to this swarm, run the following command:\n\n"
            "    docker swarm join --token %s %s\n\n" % (role, token, addr))


def test_init_without_advertise_addr_on_two_interfaces():
    with Lab({"swarma": SEED["swarma"]}) as lab:
        rc, out, err = lab.docker("swarma", "swarm", "init", check=False)
        assert rc == 1, (rc, out, err)
        # The daemon's message; the CLI appends the hint.
        assert err.strip() == ("Error response from daemon: " + MULTI_ADDR
                               + " - specify one with --advertise-addr"), err
        # Nothing was created: still inactive, and a retry with the flag works.
        st, body = lab.api("swarma", "GET", "/info")
        assert st == 200 and body["Swarm"]["LocalNodeState"] == "inactive", body
        st, body = lab.api("swarma", "POST", "/swarm/init", {"ListenAddr": "0.0.0.0:2377"})
        assert st == 400 and body["message"] == MULTI_ADDR, (st, body)
        lab.init("swarma")


def test_init_prints_node_id_and_join_command():
    with Lab({"swarma": SEED["swarma"]}) as lab:
        _, out, err = lab.docker("swarma", "swarm", "init", "--advertise-addr", "192.168.33.10")
        m = re.fullmatch(
            r"Swarm initialized: current node \((%s)\) is now a manager\.\n\n"
            r"To add a worker to this swarm, run the following command:\n\n"
            r"    docker swarm join --token (%s) 192\.168\.33\.10:2377\n\n"
            r"To add a manager to this swarm, run 'docker swarm join-token manager' "
            r"and follow the instructions\.\n" % (NODE_ID, TOKEN), out)
        assert m, "init output:\n" + out
        node_id, token = m.groups()
        assert lab.node_id("swarma") == node_id
        assert lab.token("swarma", "worker") == token
        # Initialising twice is refused like dockerd.
        rc, _, err = lab.docker("swarma", "swarm", "init", "--advertise-addr", "192.168.33.10",
                                check=False)
        assert rc == 1 and "This node is already part of a swarm" in err, err


def test_init_autolock_and_external_ca_work_or_are_refused_by_name():
    with Lab({"swarma": SEED["swarma"]}) as lab:
        for flags, word in ((["--autolock"], "autolock"),
                            (["--external-ca", "protocol=cfssl,url=https://ca.example.com"], "external")):
            rc, out, err = lab.docker("swarma", "swarm", "init", "--advertise-addr", "192.168.33.10",
                                      *flags, check=False)
            if rc == 0:
                assert "is now a manager" in out, out
                if word == "autolock":
                    assert "docker swarm unlock" in out and re.search(r"SWMKEY-1-\S+", out), out
                lab.docker("swarma", "swarm", "leave", "--force")
            else:
                assert rc == 1 and word in err.lower(), "refusal of %s does not name it: %s" % (flags, err)
                st, info = lab.api("swarma", "GET", "/info")
                assert info["Swarm"]["LocalNodeState"] == "inactive", info


def test_join_token_show_quiet_rotate():
    with Lab(SEED) as lab:
        lab.init("swarma")
        wtok, mtok = lab.token("swarma", "worker"), lab.token("swarma", "manager")
        assert wtok != mtok
        # Both tokens carry the same CA digest, different secrets.
        assert wtok.split("-")[2] == mtok.split("-")[2] and wtok.split("-")[3] != mtok.split("-")[3]
        _, out, _ = lab.docker("swarma", "swarm", "join-token", "worker")
        assert out == join_command("worker", wtok, "192.168.33.10:2377"), out
        _, out, _ = lab.docker("swarma", "swarm", "join-token", "manager")
        assert out == join_command("manager", mtok, "192.168.33.10:2377"), out
        rc, _, err = lab.docker("swarma", "swarm", "join-token", "boss", check=False)
        assert rc != 0 and "unknown role boss" in err, err

        _, out, _ = lab.docker("swarma", "swarm", "join-token", "--rotate", "worker")
        assert out.startswith("Successfully rotated worker join token.\n\n"), out
        new = lab.token("swarma", "worker")
        assert new != wtok and new.split("-")[2] == wtok.split("-")[2]
        assert join_command("worker", new, "192.168.33.10:2377") in out, out
        assert lab.token("swarma", "manager") == mtok, "worker rotation changed the manager token"
        _, out, _ = lab.docker("swarma", "swarm", "join-token", "-q", "--rotate", "manager")
        assert re.fullmatch(TOKEN + r"\n", out) and out.strip() != mtok, out
        mtok2 = out.strip()

        # The old worker token no longer admits anyone; the new one does.
        rc, _, err = lab.join("swarmb", wtok, check=False)
        assert rc == 1, err
        assert "A valid join token is necessary to join this cluster" in err, err
        _, out, _ = lab.join("swarmb", new)
        assert out.strip() == "This node joined a swarm as a worker.", out
        # POST /swarm/update?rotateWorkerToken=true does the same.
        st, sw = lab.api("swarma", "GET", "/swarm")
        assert st == 200, sw
        st, body = lab.api("swarma", "POST", "/swarm/update?version=%d&rotateWorkerToken=true"
                           % sw["Version"]["Index"], sw["Spec"])
        assert st == 200, (st, body)
        assert lab.token("swarma", "worker") not in (new, wtok)
        assert lab.token("swarma", "manager") == mtok2
        rc, _, err = lab.join("moby", new, check=False)
        assert rc == 1 and "A valid join token is necessary" in err, err


def test_seed_walkthrough_join_node_ls_info():
    with Lab(SEED) as lab:
        mid = lab.init("swarma")
        rows = lab.node_ls("swarma")
        assert len(rows) == 1, rows
        assert rows[0]["ID"] == mid + " *", rows
        assert rows[0]["HOSTNAME"] == "swarma"
        assert (rows[0]["STATUS"], rows[0]["AVAILABILITY"], rows[0]["MANAGER STATUS"]) == \
            ("Ready", "Active", "Leader"), rows
        assert re.fullmatch(r"\d+\.\d+\.\S*", rows[0]["ENGINE VERSION"]), rows

        tok = lab.token("swarma")
        for w in ("swarmb", "moby"):
            _, out, err = lab.join(w, tok)
            assert out == "This node joined a swarm as a worker.\n", (out, err)
        ids = {h: lab.node_id(h) for h in ("swarma", "swarmb", "moby")}
        assert len(set(ids.values())) == 3, ids

        def all_ready():
            rows = lab.node_ls("swarma")
            return len(rows) == 3 and all(r["STATUS"] == "Ready" for r in rows) and rows
        rows = wait_until(all_ready, 30, what="3 Ready nodes")
        by_host = {r["HOSTNAME"]: r for r in rows}
        assert set(by_host) == {"swarma", "swarmb", "moby"}, rows
        assert by_host["swarma"]["ID"] == ids["swarma"] + " *"
        for w in ("swarmb", "moby"):
            r = by_host[w]
            assert r["ID"] == ids[w], r
            assert (r["AVAILABILITY"], r["MANAGER STATUS"]) == ("Active", ""), r
        # Filters work like dockerd's.
        _, out, _ = lab.docker("swarma", "node", "ls", "--filter", "role=worker", "--format",
                               "{{.Hostname}}")
        assert sorted(out.split()) == ["moby", "swarmb"], out
        _, out, _ = lab.docker("swarma", "node", "ls", "-q", "--filter", "name=swarmb")
        assert out.split() == [ids["swarmb"]], out

        info = lab.swarm_info("swarma")
        expect = {
            "Swarm": "active", "NodeID": ids["swarma"], "Is Manager": "true",
            "Managers": "1", "Nodes": "3", "Task History Retention Limit": "5",
            "Snapshot Interval": "10000", "Heartbeat Tick": "1", "Election Tick": "10",
            "Heartbeat Period": "5 seconds", "Expiry Duration": "3 months",
            "Autolock Managers": "false", "Root Rotation In Progress": "false",
            "Number of Old Snapshots to Retain": "0", "SubnetSize": "24",
            "Node Address": "192.168.33.10",
        }
        for k, v in expect.items():
            assert info.get(k) == v, "info %s = %r, want %r\n%r" % (k, info.get(k), v, info)
        assert re.fullmatch(NODE_ID, info.get("ClusterID", "")), info
        assert info.get("Default Address Pool", "").split() == ["10.0.0.0/8"], info
        assert info.get("Manager Addresses") == ["192.168.33.10:2377"], info
        # Node-to-node HTTP (join, sessions, heartbeats) is http/client.c on
        # libuv and OpenSSL: no daemon has mapped libcurl (only registry
        # pulls load it).
        for h in ("swarma", "swarmb", "moby"):
            with open("/proc/%d/maps" % lab.pid(h)) as f:
                maps = f.read()
            assert "libcurl" not in maps, "%s's shoald loaded libcurl" % h

        winfo = lab.swarm_info("swarmb")
        assert winfo["Swarm"] == "active" and winfo["Is Manager"] == "false", winfo
        assert winfo["NodeID"] == ids["swarmb"] and winfo["Node Address"] == "192.168.33.11", winfo
        assert winfo.get("Manager Addresses") == ["192.168.33.10:2377"], winfo
        assert "ClusterID" not in winfo, winfo
        # A worker cannot manage the cluster.
        rc, _, err = lab.docker("swarmb", "node", "ls", check=False)
        assert rc == 1 and "This node is not a swarm manager. Worker nodes can't be used to " \
            "view or modify cluster state." in err, err


@timeout(240)
def test_init_flags_visible_and_kept_across_manager_restart():
    with Lab({"swarma": SEED["swarma"], "swarmb": SEED["swarmb"]}) as lab:
        mid = lab.init("swarma", "--cert-expiry", "48h", "--dispatcher-heartbeat", "2s",
                       "--task-history-limit", "7", "--default-addr-pool", "10.20.0.0/16")
        lab.join("swarmb", lab.token("swarma"))
        wid = lab.node_id("swarmb")

        def check(info):
            for k, v in {"Task History Retention Limit": "7", "Heartbeat Period": "2 seconds",
                         "Expiry Duration": "2 days", "Snapshot Interval": "10000",
                         "Nodes": "2", "Managers": "1", "NodeID": mid}.items():
                assert info.get(k) == v, "info %s = %r, want %r" % (k, info.get(k), v)
            assert info.get("Default Address Pool", "").split() == ["10.20.0.0/16"], info

        before = lab.swarm_info("swarma")
        check(before)
        # The API's Swarm object carries the same values (durations in ns).
        st, sw = lab.api("swarma", "GET", "/swarm")
        assert st == 200, sw
        spec = sw["Spec"]
        assert (spec["CAConfig"]["NodeCertExpiry"], spec["Dispatcher"]["HeartbeatPeriod"],
                spec["Orchestration"]["TaskHistoryRetentionLimit"]) == (48 * 3600 * 10**9, 2 * 10**9, 7), spec
        # From the worker: its heartbeats follow the cluster's 2 s period,
        # so it stays Ready while beating at that rate (checked below after
        # the restart too); the worker's own info names its manager.
        winfo = lab.swarm_info("swarmb")
        assert winfo.get("Is Manager") == "false" and "192.168.33.10:2377" in lab.docker(
            "swarmb", "info")[1], winfo
        tokens = (lab.token("swarma", "worker"), lab.token("swarma", "manager"))

        lab.restart("swarma")
        after = wait_until(lambda: lab.swarm_info("swarma").get("Nodes") and lab.swarm_info("swarma"),
                           30, what="manager back with its cluster")
        check(after)
        assert after["ClusterID"] == before["ClusterID"], (before, after)
        assert (lab.token("swarma", "worker"), lab.token("swarma", "manager")) == tokens
        wait_until(lambda: lab.node_status("swarma", wid) == ("ready", "active"), 30,
                   what="worker Ready after manager restart")
        # swarm update changes them, and the change survives another restart.
        lab.docker("swarma", "swarm", "update", "--task-history-limit", "3",
                   "--dispatcher-heartbeat", "4s", "--cert-expiry", "72h")
        lab.restart("swarma")
        info = wait_until(lambda: lab.swarm_info("swarma").get("Nodes") and lab.swarm_info("swarma"),
                          30, what="manager back")
        assert (info["Task History Retention Limit"], info["Heartbeat Period"],
                info["Expiry Duration"]) == ("3", "4 seconds", "3 days"), info


def test_node_update_availability_and_labels():
    with Lab({"swarma": SEED["swarma"], "swarmb": SEED["swarmb"]}) as lab:
        ids = lab.cluster(workers=("swarmb",))
        wid = ids["swarmb"]
        for avail in ("drain", "pause", "active"):
            _, out, _ = lab.docker("swarma", "node", "update", "--availability", avail, wid)
            assert out.strip() == wid, out
            assert lab.node_status("swarma", wid) == ("ready", avail)
            row = [r for r in lab.node_ls() if r["ID"] == wid][0]
            assert row["AVAILABILITY"] == avail.capitalize(), row
        # By hostname too, as dockerd resolves names.
        lab.docker("swarma", "node", "update", "--label-add", "zone=east", "--label-add", "ssd", "swarmb")
        _, out, _ = lab.docker("swarma", "node", "inspect", "--format", "{{json .Spec.Labels}}", wid)
        assert out.strip() == '{"ssd":"","zone":"east"}', out
        lab.docker("swarma", "node", "update", "--label-rm", "zone", wid)
        _, out, _ = lab.docker("swarma", "node", "inspect", "--format", "{{json .Spec.Labels}}", wid)
        assert out.strip() == '{"ssd":""}', out
        rc, _, err = lab.docker("swarma", "node", "update", "--availability", "sideways", wid,
                                check=False)
        assert rc != 0 and "sideways" in err, err
        # Version moves on with each update.
        _, out, _ = lab.docker("swarma", "node", "inspect", "--format", "{{.Version.Index}}", wid)
        v1 = int(out)
        lab.docker("swarma", "node", "update", "--availability", "drain", wid)
        _, out, _ = lab.docker("swarma", "node", "inspect", "--format", "{{.Version.Index}}", wid)
        assert int(out) > v1


def test_node_inspect_pretty_and_json():
    with Lab({"swarma": SEED["swarma"], "swarmb": SEED["swarmb"]}) as lab:
        ids = lab.cluster(workers=("swarmb",))
        lab.docker("swarma", "node", "update", "--label-add", "zone=east", ids["swarmb"])
        _, out, _ = lab.docker("swarma", "node", "inspect", "--pretty", "self")
        p = parse_pretty(out)
        assert p["ID"] == ids["swarma"], out
        assert p["Hostname"] == "swarma", out
        assert p["Status.State"] == "Ready" and p["Status.Availability"] == "Active", out
        assert p["Status.Address"] == "192.168.33.10", out
        assert p["Manager Status.Address"] == "192.168.33.10:2377", out
        assert p["Manager Status.Raft Status"] == "Reachable", out
        assert p["Manager Status.Leader"] == "Yes", out
        assert p["Platform.Operating System"] == "linux", out
        assert p["Platform.Architecture"] in ("x86_64", "aarch64"), out
        assert p.get("Engine Version"), out
        assert "TLS Info:" in out and "Issuer Subject:" in out, out

        _, out, _ = lab.docker("swarma", "node", "inspect", "--pretty", "swarmb")
        p = parse_pretty(out)
        assert p["ID"] == ids["swarmb"] and p["Hostname"] == "swarmb", out
        assert p["Labels"] == ["zone=east"], out
        assert p["Status.Address"] == "192.168.33.11", out
        assert "Manager Status:" not in out, out

        _, out, _ = lab.docker("swarma", "node", "inspect", "--format",
                               "{{.Spec.Role}} {{.Description.Hostname}} {{.Status.Addr}} "
                               "{{.ManagerStatus.Leader}} {{.ManagerStatus.Addr}}", "self")
        assert out.split() == ["manager", "swarma", "192.168.33.10", "true", "192.168.33.10:2377"], out
        rc, _, err = lab.docker("swarma", "node", "inspect", "nosuchnode", check=False)
        assert rc == 1 and ("No such node: nosuchnode" in err or "nosuchnode not found" in err), err


@timeout(240)
def test_node_rm_down_worker_and_ready_worker_needs_force():
    with Lab(SEED) as lab:
        ids = lab.cluster(workers=("swarmb", "moby"), manager="swarma")
        rc, _, err = lab.docker("swarma", "node", "rm", ids["swarmb"], check=False)
        assert rc == 1, err
        assert "node %s is not down and can't be removed" % ids["swarmb"] in err, err
        rc, _, err = lab.docker("swarma", "node", "rm", ids["swarma"], check=False)
        assert rc == 1 and "is a cluster manager and is a member of the raft cluster" in err, err

        # A worker whose daemon is gone goes Down and can then be removed.
        lab.stop("moby", "KILL")
        wait_until(lambda: lab.node_status("swarma", ids["moby"])[0] == "down", 60,
                   what="moby Down")
        _, out, _ = lab.docker("swarma", "node", "rm", ids["moby"])
        assert out.strip() == ids["moby"], out
        # A Ready one goes with --force.
        _, out, _ = lab.docker("swarma", "node", "rm", "--force", ids["swarmb"])
        assert out.strip() == ids["swarmb"], out
        rows = lab.node_ls()
        assert [r["HOSTNAME"] for r in rows] == ["swarma"], rows
        rc, _, err = lab.docker("swarma", "node", "inspect", ids["swarmb"], check=False)
        assert rc == 1, err


@timeout(240)
def test_worker_leave_then_down_on_manager():
    with Lab({"swarma": SEED["swarma"], "swarmb": SEED["swarmb"]}) as lab:
        ids = lab.cluster(workers=("swarmb",))
        _, out, _ = lab.docker("swarmb", "swarm", "leave")
        assert out.strip() == "Node left the swarm.", out
        st, body = lab.api("swarmb", "GET", "/info")
        assert body["Swarm"]["LocalNodeState"] == "inactive", body
        wait_until(lambda: lab.node_status("swarma", ids["swarmb"])[0] == "down", 60,
                   what="swarmb Down on the manager")
        row = [r for r in lab.node_ls() if r["ID"] == ids["swarmb"]][0]
        assert row["STATUS"] == "Down", row
        # The last manager must not leave without --force.
        rc, _, err = lab.docker("swarma", "swarm", "leave", check=False)
        assert rc == 1 and "Use `--force` to ignore this message." in err, err
        # The worker can join again as a new node.
        lab.join("swarmb", lab.token("swarma"))
        assert lab.node_id("swarmb") != ids["swarmb"]
        _, out, _ = lab.docker("swarma", "swarm", "leave", "--force")
        assert out.strip() == "Node left the swarm.", out


@timeout(240)
def test_stopped_worker_goes_down_and_comes_back():
    with Lab({"swarma": SEED["swarma"], "swarmb": SEED["swarmb"]}) as lab:
        ids = lab.cluster(("swarmb",), "swarma", "--dispatcher-heartbeat", "2s")
        wid = ids["swarmb"]
        wait_until(lambda: lab.node_status("swarma", wid)[0] == "ready", 20, what="Ready")
        lab.stop("swarmb", "STOP")
        try:
            t0 = time.monotonic()
            wait_until(lambda: lab.node_status("swarma", wid)[0] == "down", 40,
                       what="stopped worker Down")
            took = time.monotonic() - t0
            assert took >= 2, "marked Down after %.1fs, before one heartbeat period" % took
            _, out, _ = lab.docker("swarma", "node", "inspect", "--format", "{{.Status.Message}}", wid)
            assert "heartbeat failure" in out, out
        finally:
            lab.stop("swarmb", "CONT")
        wait_until(lambda: lab.node_status("swarma", wid)[0] == "ready", 40,
                   what="worker Ready again")
        assert lab.node_id("swarmb") == wid


@timeout(240)
def test_worker_restart_keeps_node_id():
    with Lab({"swarma": SEED["swarma"], "swarmb": SEED["swarmb"]}) as lab:
        ids = lab.cluster(workers=("swarmb",))
        lab.restart("swarmb")
        info = wait_until(lambda: lab.swarm_info("swarmb")["Swarm"] == "active" and lab.swarm_info("swarmb"),
                          30, what="worker back in the swarm")
        assert info["NodeID"] == ids["swarmb"], info
        wait_until(lambda: lab.node_status("swarma", ids["swarmb"]) == ("ready", "active"), 40,
                   what="worker Ready after restart")
        rows = lab.node_ls()
        assert sorted(r["ID"].rstrip(" *") for r in rows) == sorted(ids.values()), rows


def test_join_refused_wrong_secret_other_ca_bad_token():
    with Lab(SEED) as lab:
        lab.init("swarma")
        tok = lab.token("swarma")
        parts = tok.split("-")
        secret = parts[3]
        wrong = "-".join(parts[:3] + [("0" if secret[0] != "0" else "1") + secret[1:]])
        rc, _, err = lab.join("swarmb", wrong, check=False)
        assert rc == 1, err
        assert "A valid join token is necessary to join this cluster" in err, err
        # moby runs a swarm of its own: its token names another CA.
        lab.init("moby")
        other = lab.token("moby")
        rc, _, err = lab.join("swarmb", other, manager="swarma", check=False)
        assert rc == 1, err
        assert "remote CA does not match fingerprint" in err, err
        rc, _, err = lab.join("swarmb", "SWMTKN-1-nonsense", check=False)
        assert rc == 1 and "invalid join token" in err, err
        # After all that, swarmb is still free to join with the right token.
        st, body = lab.api("swarmb", "GET", "/info")
        assert body["Swarm"]["LocalNodeState"] == "inactive", body
        _, out, _ = lab.join("swarmb", tok)
        assert out.strip() == "This node joined a swarm as a worker.", out
        assert len(lab.node_ls("swarma")) == 2 and len(lab.node_ls("moby")) == 1


def test_shoal_cli_prints_what_docker_prints():
    with Lab({"swarma": SEED["swarma"], "swarmb": SEED["swarmb"]}) as lab:
        rc, out, err = lab.shoal("swarma", "swarm", "init", check=False)
        assert rc == 1 and err.strip() == ("Error response from daemon: " + MULTI_ADDR
                                           + " - specify one with --advertise-addr"), err
        _, out, _ = lab.shoal("swarma", "swarm", "init", "--advertise-addr", "192.168.33.10")
        assert re.match(r"Swarm initialized: current node \(%s\) is now a manager\.\n\n" % NODE_ID, out), out
        tok = lab.shoal("swarma", "swarm", "join-token", "-q", "worker")[1].strip()
        assert tok == lab.token("swarma")
        _, out, _ = lab.shoal("swarmb", "swarm", "join", "--token", tok, "192.168.33.10:2377")
        assert out == "This node joined a swarm as a worker.\n", out
        for args in (("node", "ls"), ("swarm", "join-token", "worker"), ("swarm", "join-token", "manager"),
                     ("node", "inspect", "--pretty", "self"), ("info", "--format", "{{.Swarm.NodeID}}")):
            d = lab.docker("swarma", *args)[1]
            # The printed join command names the CLI that printed it.
            s = lab.shoal("swarma", *args)[1].replace("    shoal swarm join ", "    docker swarm join ")
            assert s == d, "%s:\n--- docker\n%s--- shoal\n%s" % (" ".join(args), d, s)
        parse_table(lab.shoal("swarma", "node", "ls")[1],
                    ["ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER STATUS", "ENGINE VERSION"])
