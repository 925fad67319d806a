"""Issue 8, the data plane: tasks on overlay networks across the lab's
hosts, as a user checks them with the stock docker CLI and from inside the
tasks' network namespaces (entered from their node with nsenter; the
node's own tools, curl and iproute2, run there). What is listed on the
node afterwards (links, namespaces, nftables tables) is read with `ip` and
`nft` in the test only; shoald itself speaks netlink."""

import json
import re

from lib import REGISTRY_IP, SEED, ServiceLab, timeout, wait_until
from test_services import container_of, running, wait_running

WELCOME = "Welcome to nginx!"
TWO = {"swarma": SEED["swarma"], "swarmb": SEED["swarmb"]}


def two_nodes(lab, *init_args):
    lab.docker("swarma", "swarm", "init", "--advertise-addr", lab.ip("swarma"), *init_args)
    lab.join("swarmb", lab.token("swarma"))
    wait_until(lambda: sum(r["STATUS"] == "Ready" for r in lab.node_ls("swarma")) == 2, 30,
               what="2 Ready nodes")


def task_addrs(lab, svc):
    """{task ID: {network name: "10.0.1.3/24"}} from `docker inspect` of the
    service's running tasks on the manager, and {task ID: node hostname}."""
    rows = running(lab, svc)
    addrs, where = {}, {}
    for r in rows:
        out = lab.docker("swarma", "inspect", "--format", "{{json .NetworksAttachments}}", r["ID"])[1]
        atts = json.loads(out) or []
        addrs[r["ID"]] = {a["Network"]["Spec"]["Name"]: a["Addresses"][0] for a in atts}
        where[r["ID"]] = r["NODE"]
    return addrs, where


def in_task(lab, row, *cmd, check=False, timeout=20):
    """Runs cmd (a node tool) in the network namespace of the task's
    container, on the task's node."""
    host, name = container_of(lab, row)
    pid = lab.container_pid(host, name)
    return lab.exec(host, "nsenter", "-t", str(pid), "-n", *cmd, check=check, timeout=timeout)


def curl(lab, row, url, secs=3):
    return in_task(lab, row, "curl", "-s", "-m", str(secs), url)


def ip_of(cidr):
    return cidr.split("/")[0]


@timeout(300)
def test_tasks_talk_across_nodes_isolated_per_network_with_egress():
    with ServiceLab(TWO) as lab:
        two_nodes(lab)
        lab.docker("swarma", "network", "create", "-d", "overlay", "--subnet", "10.0.9.0/24", "front")
        lab.docker("swarma", "network", "create", "-d", "overlay", "back")
        lab.service("swarma", "create", "--detach", "--name", "web", "--mode", "global",
                    "--network", "front", "nginx")
        lab.service("swarma", "create", "--detach", "--name", "db", "--mode", "global",
                    "--network", "back", "nginx")
        web = wait_running(lab, "web", 2, 90)
        db = wait_running(lab, "db", 2, 90)

        # Each task has an address on its network, shown in docker inspect
        # of the task, and the same on eth0 in its namespace with Docker's
        # MAC (02:42 + the address).
        addrs, where = task_addrs(lab, "web")
        for r in web:
            cidr = addrs[r["ID"]]["front"]
            assert cidr.startswith("10.0.9.") and cidr.endswith("/24"), addrs
            _, out, _ = in_task(lab, r, "ip", "-o", "addr", "show", "dev", "eth0", check=True)
            assert " %s " % cidr in out, out
            mac = "02:42:" + ":".join("%02x" % int(b) for b in ip_of(cidr).split("."))
            _, link, _ = in_task(lab, r, "ip", "-o", "link", "show", "dev", "eth0", check=True)
            assert mac in link and "mtu 1450" in link, link
            # docker inspect of the container names the network and address.
            host, name = container_of(lab, r)
            nets = json.loads(lab.docker(host, "inspect", "--format",
                                         "{{json .NetworkSettings.Networks}}", name)[1])
            assert ip_of(cidr) == nets["front"]["IPAddress"], nets
            assert "docker_gwbridge" not in nets or nets["docker_gwbridge"]["IPAddress"].startswith("172.18."), nets

        # Across nodes over VXLAN: each web task reaches the other's page.
        assert len({where[r["ID"]] for r in web}) == 2, where
        for r in web:
            other = [x for x in web if x["ID"] != r["ID"]][0]
            page = curl(lab, r, "http://%s/" % ip_of(addrs[other["ID"]]["front"]))[1]
            assert WELCOME in page, (r["NODE"], other["NODE"], page[:200])

        # The other network is not reachable from front, on either node.
        db_addrs, _ = task_addrs(lab, "db")
        for r in web:
            for d in db:
                rc, page, _ = curl(lab, r, "http://%s/" % ip_of(db_addrs[d["ID"]]["back"]), secs=2)
                assert WELCOME not in page, (r["NODE"], d["NODE"])

        # Egress through docker_gwbridge (masqueraded): the registry host is
        # in the lab but not in the swarm.
        for r in web:
            rc, out, _ = curl(lab, r, "http://%s:5000/v2/" % REGISTRY_IP)
            assert rc == 0 and out.strip() == "{}", (r["NODE"], rc, out)

        # network inspect on a node: its own endpoints, and the nodes that
        # hold the network.
        ins = json.loads(lab.docker("swarma", "network", "inspect", "front")[1])[0]
        mine = [r for r in web if r["NODE"] == "swarma"][0]
        ctrs = list(ins["Containers"].values())
        assert [c["Name"] for c in ctrs] == ["%s.%s" % (mine["NAME"], mine["ID"])], ins["Containers"]
        assert ctrs[0]["IPv4Address"] == addrs[mine["ID"]]["front"], ctrs
        assert sorted(p["IP"] for p in ins["Peers"]) == [lab.ip("swarma"), lab.ip("swarmb")], ins["Peers"]

        # --network-add: the tasks are replaced by ones on both networks,
        # which reach db; --network-rm takes front away again.
        lab.service("swarma", "update", "--network-add", "back", "web")
        def on_both():
            a, _ = task_addrs(lab, "web")
            rows = running(lab, "web")
            ok = len(rows) == 2 and all(set(a.get(r["ID"], {})) == {"front", "back"} for r in rows)
            return rows if ok else None
        web = wait_until(on_both, 90, what="web on front and back")
        for r in web:
            for d in db:
                page = curl(lab, r, "http://%s/" % ip_of(db_addrs[d["ID"]]["back"]))[1]
                assert WELCOME in page, (r["NODE"], d["NODE"], page[:200])
        lab.service("swarma", "update", "--network-rm", "front", "web")
        def on_back():
            a, _ = task_addrs(lab, "web")
            rows = running(lab, "web")
            ok = len(rows) == 2 and all(set(a.get(r["ID"], {})) == {"back"} for r in rows)
            return rows if ok else None
        wait_until(on_back, 90, what="web on back only")
        lab.service("swarma", "update", "--network-add", "front", "web")

        # network rm while in use: Docker's message; the service keeps it.
        rc, _, err = lab.docker("swarma", "network", "rm", "front", check=False)
        fid = lab.docker("swarma", "network", "inspect", "-f", "{{.Id}}", "front")[1].strip()
        sid = lab.service("swarma", "inspect", "-f", "{{.ID}}", "web")[1].strip()
        assert rc != 0 and "network %s is in use by service %s" % (fid, sid) in err, err


@timeout(300)
def test_host_network_host_mode_publish_and_node_state_follows_tasks():
    with ServiceLab(TWO) as lab:
        two_nodes(lab)
        # --network host: the task is in the node's own namespace.
        lab.service("swarma", "create", "--detach", "--name", "hostnet", "--mode", "global",
                    "--network", "host", "nginx")
        wait_running(lab, "hostnet", 2, 90)
        for h in TWO:
            rc, page, _ = lab.exec("registry", "curl", "-s", "-m", "5", "http://%s/" % lab.ip(h), check=False)
            assert WELCOME in page, (h, rc, page[:200])
        lab.service("swarma", "rm", "hostnet")
        wait_until(lambda: lab.exec("registry", "curl", "-s", "-m", "2", "http://%s/" % lab.ip("swarmb"),
                                    check=False)[0] != 0, 30, what="host nginx gone")

        # mode=host publishing: that node's port reaches its task.
        lab.service("swarma", "create", "--detach", "--name", "hp", "--replicas", "1",
                    "--constraint", "node.hostname==swarmb",
                    "--publish", "mode=host,target=80,published=8081", "nginx")
        wait_running(lab, "hp", 1, 90)
        wait_until(lambda: WELCOME in lab.exec("registry", "curl", "-s", "-m", "3",
                                               "http://%s:8081/" % lab.ip("swarmb"), check=False)[1],
                   20, what="host-mode port 8081 on swarmb")

        # A worker holds no namespace for a network until a task of it lands
        # there, and drops it when the last one goes.
        lab.docker("swarma", "network", "create", "-d", "overlay", "solo")
        nid = lab.docker("swarma", "network", "inspect", "-f", "{{.Id}}", "solo")[1].strip()
        ns = "1-" + nid[:10]
        netns_dir = "%s/swarmb/exec/netns" % lab.dir

        def swarmb_netns():
            return lab.exec("swarmb", "ls", netns_dir, check=False)[1].split()
        assert ns not in swarmb_netns()
        lab.service("swarma", "create", "--detach", "--name", "s", "--replicas", "1",
                    "--constraint", "node.hostname==swarmb", "--network", "solo", "nginx")
        wait_running(lab, "s", 1, 90)
        assert ns in swarmb_netns()
        lab.service("swarma", "rm", "s")
        wait_until(lambda: ns not in swarmb_netns(), 30, what="network namespace gone from swarmb")


def links(lab, host):
    return sorted(re.findall(r"^\d+: ([^:@]+)", lab.exec(host, "ip", "-o", "link")[1], re.M))


@timeout(360)
def test_restart_keeps_traffic_leave_cleans_up_and_peers_follow():
    # One session a loop turn in each flush: the peer and mesh changes
    # reach every node across the flush's slices.
    with ServiceLab(TWO, shoald_env={"SHOAL_FLUSH_SLICE_US": "0"}) as lab:
        before = links(lab, "swarmb")
        two_nodes(lab, "--default-addr-pool", "10.20.0.0/16", "--default-addr-pool-mask-length", "26",
                  "--data-path-port", "7789")
        lab.docker("swarma", "network", "create", "-d", "overlay", "pool")
        sub = lab.docker("swarma", "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
                         "pool")[1].strip()
        assert sub == "10.20.0.0/26", sub
        lab.service("swarma", "create", "--detach", "--name", "web", "--mode", "global",
                    "--network", "pool", "nginx")
        web = wait_running(lab, "web", 2, 90)
        addrs, where = task_addrs(lab, "web")
        on = {where[r["ID"]]: r for r in web}
        a_ip = ip_of(addrs[on["swarma"]["ID"]]["pool"])
        b_ip = ip_of(addrs[on["swarmb"]["ID"]]["pool"])
        assert WELCOME in curl(lab, on["swarma"], "http://%s/" % b_ip)[1]

        # VXLAN on the cluster's data-path port.
        nid = lab.docker("swarma", "network", "inspect", "-f", "{{.Id}}", "pool")[1].strip()
        nspath = "%s/swarma/exec/netns/1-%s" % (lab.dir, nid[:10])
        detail = lab.exec("swarma", "nsenter", "--net=" + nspath, "ip", "-d", "link", "show", "vxlan0")[1]
        assert "dstport 7789" in detail, detail

        # The worker's shoald restarts with its task running: traffic keeps
        # flowing, and after it the peers still match.
        cid_before = container_of(lab, on["swarmb"])
        lab.restart("swarmb")
        assert container_of(lab, on["swarmb"]) == cid_before
        assert WELCOME in curl(lab, on["swarma"], "http://%s/" % b_ip)[1]
        assert WELCOME in curl(lab, on["swarmb"], "http://%s/" % a_ip)[1]

        # swarmb leaves: its task container, links, namespaces and nftables
        # tables go; swarma drops its forwarding entries for swarmb.
        fdb = lambda: lab.exec("swarma", "nsenter", "--net=" + nspath, "bridge", "fdb", "show",
                               "dev", "vxlan0")[1]
        assert lab.ip("swarmb") in fdb()
        lab.docker("swarmb", "swarm", "leave")
        assert [r for r in lab.ps("swarmb", "-a") if r["NAMES"].startswith("web.")] == []
        assert links(lab, "swarmb") == before, (before, links(lab, "swarmb"))
        assert lab.exec("swarmb", "ls", "%s/swarmb/exec/netns" % lab.dir, check=False)[1].split() == []
        tables = lab.exec("swarmb", "nft", "list", "tables")[1]
        # docker0 (the bridge network) is the node's and stays, as with dockerd.
        assert [t for t in tables.split("\n") if "shoal" in t] == ["table ip shoal_bridge"], tables
        wait_until(lambda: lab.ip("swarmb") not in fdb(), 30, what="swarma's FDB without swarmb")
