"""Networks as a user checks them with the stock docker CLI (issue 8, the
control plane): the seed's `network ls` and `network inspect ingress` on a
manager, overlay networks created, inspected, listed with filters and
removed, with dockerd's and swarmkit's errors for bad input; a service's
networks resolved to IDs as moby does (the data plane is test_overlay.py)."""

import json
import re

from lib import SEED, Lab, parse_table, timeout, wait_until

NETWORK_LS = ["NETWORK ID", "NAME", "DRIVER", "SCOPE"]
SWARM_ID = r"[0-9a-z]{25}"
LOCAL_ID = r"[0-9a-f]{64}"


def seed_manager(lab):
    lab.init("swarma")


def net_ls(lab, host, *flags):
    return parse_table(lab.docker(host, "network", "ls", *flags)[1], NETWORK_LS)


def err_of(lab, host, *args):
    rc, out, err = lab.docker(host, *args, check=False)
    assert rc != 0, (args, out)
    return err.strip()


@timeout(120)
def test_seed_network_ls_and_inspect_ingress():
    with Lab({"swarma": SEED["swarma"], "swarmb": SEED["swarmb"]}) as lab:
        seed_manager(lab)
        rows = net_ls(lab, "swarma")
        got = {r["NAME"]: (r["DRIVER"], r["SCOPE"]) for r in rows}
        assert got == {"bridge": ("bridge", "local"), "docker_gwbridge": ("bridge", "local"),
                       "host": ("host", "local"), "ingress": ("overlay", "swarm"),
                       "none": ("null", "local")}, rows
        ids = {r["NAME"]: r["NETWORK ID"] for r in rows}
        assert re.fullmatch(r"[0-9a-z]{12}", ids["ingress"]), ids
        assert re.fullmatch(r"[0-9a-f]{12}", ids["host"]), ids

        _, out, _ = lab.docker("swarma", "network", "inspect", "ingress", "--format",
                               "{{.Name}} {{.Scope}} {{.Driver}} {{.Ingress}} {{.Attachable}} "
                               "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}} "
                               "{{index .Options \"com.docker.network.driver.overlay.vxlanid_list\"}}")
        assert out.strip() == "ingress swarm overlay true false 10.255.0.0/16 10.255.0.1 4096", out
        full = lab.docker("swarma", "network", "inspect", "--format", "{{.Id}}", "ingress")[1].strip()
        assert re.fullmatch(SWARM_ID, full) and full.startswith(ids["ingress"]), full
        # The same network by ID prefix; local IDs stay the same after a restart.
        assert lab.docker("swarma", "network", "inspect", "-f", "{{.Name}}", full[:5])[1] == "ingress\n"
        host_id = lab.docker("swarma", "network", "inspect", "-f", "{{.Id}}", "host")[1].strip()
        assert re.fullmatch(LOCAL_ID, host_id), host_id
        lab.restart("swarma")
        assert lab.docker("swarma", "network", "inspect", "-f", "{{.Id}}", "host")[1].strip() == host_id

        # docker_gwbridge as the seed shows it: a local bridge Docker's
        # way, masqueraded, no traffic between its containers.
        _, out, _ = lab.docker("swarma", "network", "inspect", "docker_gwbridge", "--format",
                               "{{.Scope}} {{.Driver}} {{range .IPAM.Config}}{{.Subnet}} "
                               "{{.Gateway}}{{end}} {{json .Options}}")
        assert out.strip() == (
            'local bridge 172.18.0.0/16 172.18.0.1 {"com.docker.network.bridge.enable_icc":"false",'
            '"com.docker.network.bridge.enable_ip_masquerade":"true",'
            '"com.docker.network.bridge.name":"docker_gwbridge"}'), out
        link = lab.exec("swarma", "ip", "-o", "addr", "show", "dev", "docker_gwbridge")[1]
        assert " 172.18.0.1/16 " in link, link

        # bridge is the node's docker0, as dockerd makes it at start.
        _, out, _ = lab.docker("swarma", "network", "inspect", "bridge", "--format",
                               "{{.Scope}} {{.Driver}} {{range .IPAM.Config}}{{.Subnet}} "
                               "{{.Gateway}}{{end}} {{index .Options "
                               "\"com.docker.network.bridge.name\"}} {{index .Options "
                               "\"com.docker.network.bridge.default_bridge\"}}")
        assert out.strip() == "local bridge 172.17.0.0/16 172.17.0.1 docker0 true", out
        link = lab.exec("swarma", "ip", "-o", "addr", "show", "dev", "docker0")[1]
        assert " 172.17.0.1/16 " in link, link
        assert "ip saddr 172.17.0.0/16 oifname != \"docker0\" masquerade" in \
            lab.exec("swarma", "nft", "list", "table", "ip", "shoal_bridge")[1]
        assert err_of(lab, "swarma", "network", "rm", "bridge").splitlines()[0] == \
            "Error response from daemon: bridge is a pre-defined network and cannot be removed"

        # The node's hidden ingress sandbox, on both networks, as the seed
        # shows it: ingress-endpoint on ingress, gateway_ingress-sbox.
        def sbox(host, net):
            ins = json.loads(lab.docker(host, "network", "inspect", net)[1])[0]
            return ins["Containers"].get("ingress-sbox"), ins
        ep, _ = wait_until(lambda: sbox("swarma", "ingress") if sbox("swarma", "ingress")[0] else None,
                           15, what="ingress-sbox on ingress")
        assert ep["Name"] == "ingress-endpoint", ep
        m = re.fullmatch(r"10\.255\.(\d+)\.(\d+)/16", ep["IPv4Address"])
        assert m, ep
        assert ep["MacAddress"] == "02:42:0a:ff:%02x:%02x" % (int(m.group(1)), int(m.group(2))), ep
        gw, _ = sbox("swarma", "docker_gwbridge")
        assert gw["Name"] == "gateway_ingress-sbox" and gw["IPv4Address"] == "172.18.0.2/16", gw

        # A worker that joined shows ingress and its own docker_gwbridge,
        # and cannot create overlays.
        lab.join("swarmb", lab.token("swarma"))
        wait_until(lambda: {r["NAME"] for r in net_ls(lab, "swarmb")} ==
                   {"bridge", "docker_gwbridge", "host", "ingress", "none"}, 15,
                   what="swarmb's networks")
        ing = lab.docker("swarmb", "network", "inspect", "-f", "{{.Id}} {{.Scope}}", "ingress")[1].split()
        assert ing == [full, "swarm"], ing
        # Its own sandbox with another address; each node lists both as Peers.
        epb, insb = wait_until(lambda: sbox("swarmb", "ingress") if sbox("swarmb", "ingress")[0] else None,
                               15, what="swarmb's ingress-sbox")
        assert epb["IPv4Address"] != ep["IPv4Address"] and epb["IPv4Address"].startswith("10.255."), epb
        wait_until(lambda: sorted(p["IP"] for p in sbox("swarma", "ingress")[1].get("Peers") or []) ==
                   [lab.ip("swarma"), lab.ip("swarmb")], 15, what="both nodes in swarma's ingress Peers")
        # Over VXLAN, one sandbox reaches the other.
        sb = "%s/swarma/exec/netns/ingress_sbox" % lab.dir
        rc, out, _ = lab.exec("swarma", "nsenter", "--net=" + sb, "ping", "-c", "1", "-W", "2",
                              epb["IPv4Address"].split("/")[0], check=False)
        assert rc == 0, out
        assert err_of(lab, "swarmb", "network", "create", "-d", "overlay", "x") == (
            'Error response from daemon: This node is not a swarm manager. Use "docker swarm '
            'init" or "docker swarm join" to connect this node to swarm and try again.')


@timeout(120)
def test_overlay_create_inspect_filters_and_remove():
    with Lab({"swarma": SEED["swarma"]}) as lab:
        seed_manager(lab)
        nid = lab.docker("swarma", "network", "create", "-d", "overlay", "--attachable",
                         "--subnet", "10.20.0.0/24", "--label", "team=web", "-o",
                         "com.docker.network.driver.mtu=1400", "web")[1].strip()
        assert re.fullmatch(SWARM_ID, nid), nid
        auto = lab.docker("swarma", "network", "create", "-d", "overlay", "auto")[1].strip()
        _, out, _ = lab.docker("swarma", "network", "inspect", "web", "auto", "--format",
                               "{{.Name}} {{.Attachable}} {{range .IPAM.Config}}{{.Subnet}} "
                               "{{.Gateway}}{{end}} {{json .Labels}} "
                               "{{index .Options \"com.docker.network.driver.overlay.vxlanid_list\"}}")
        lines = out.splitlines()
        assert lines[0] == 'web true 10.20.0.0/24 10.20.0.1 {"team":"web"} 4097', lines
        # The first /24 of the default pool 10.0.0.0/8; the next VXLAN ID.
        assert lines[1] == "auto false 10.0.0.0/24 10.0.0.1 {} 4098", lines

        assert [r["NAME"] for r in net_ls(lab, "swarma", "--filter", "type=custom")] == \
            ["auto", "docker_gwbridge", "ingress", "web"]
        assert [r["NAME"] for r in net_ls(lab, "swarma", "--filter", "type=builtin")] == \
            ["bridge", "host", "none"]
        assert [r["NAME"] for r in net_ls(lab, "swarma", "--filter", "label=team=web")] == ["web"]
        assert [r["NAME"] for r in net_ls(lab, "swarma", "--filter", "scope=local")] == \
            ["bridge", "docker_gwbridge", "host", "none"]
        assert [r["NAME"] for r in net_ls(lab, "swarma", "--filter", "dangling=true")] == \
            ["auto", "ingress", "web"]
        assert lab.docker("swarma", "network", "ls", "-q", "--no-trunc", "--filter",
                          "name=we")[1].split() == [nid]
        assert err_of(lab, "swarma", "network", "ls", "--filter", "type=x") == \
            "Error response from daemon: invalid filter: 'type'='x'"

        # Bad input, with dockerd's and swarmkit's words.
        pre = "Error response from daemon: "
        assert err_of(lab, "swarma", "network", "create", "-d", "overlay", "web") == \
            pre + "network with name web already exists"
        assert err_of(lab, "swarma", "network", "create", "-d", "overlay", "--subnet",
                      "10.255.7.0/24", "clash") == \
            pre + "invalid pool request: Pool overlaps with other one on this address space"
        assert err_of(lab, "swarma", "network", "create", "host") == \
            pre + "operation is not permitted on predefined host network"
        assert err_of(lab, "swarma", "network", "create", "-d", "nosuch", "x") == \
            pre + 'plugin "nosuch" not found'
        # Driver options are applied or refused, never stored and ignored.
        assert err_of(lab, "swarma", "network", "create", "-d", "overlay", "--opt", "encrypted",
                      "sec") == \
            pre + "encrypted overlay networks (--opt encrypted) are not supported by shoal yet"
        lab.docker("swarma", "network", "create", "-d", "overlay", "-o",
                   "com.docker.network.driver.overlay.vxlanid_list=5001", "vx")
        assert lab.docker("swarma", "network", "inspect", "-f", "{{index .Options "
                          "\"com.docker.network.driver.overlay.vxlanid_list\"}}", "vx")[1] == "5001\n"
        lab.docker("swarma", "network", "rm", "vx")
        assert err_of(lab, "swarma", "network", "create", "-d", "overlay", "bad_") == \
            pre + "rpc error: code = InvalidArgument desc = name must be valid as a DNS name component"
        st, body = lab.api("swarma", "POST", "/networks/create",
                           {"Name": "v", "Driver": "overlay",
                            "IPAM": {"Config": [{"Subnet": "10.30.0.1/24", "IPRange": "10.31.0.0/25",
                                                 "Gateway": "10.40.0.1"}]}})
        assert st == 400 and body["message"] == (
            "invalid network config:\n* invalid subnet 10.30.0.1/24: it should be 10.30.0.0/24\n"
            "* invalid ip-range 10.31.0.0/25: parent subnet 10.30.0.0/24 doesn't contain ip-range\n"
            "* invalid gateway 10.40.0.1: parent subnet 10.30.0.0/24 doesn't contain this "
            "address"), body
        st, body = lab.api("swarma", "POST", "/networks/create",
                           {"Name": "v", "Driver": "overlay", "IPAM": {"Config": [{"Subnet": "10.30/24"}]}})
        assert st == 400 and body["message"] == \
            "invalid network config:\ninvalid subnet 10.30/24: invalid CIDR block notation", body
        st, body = lab.api("swarma", "POST", "/networks/create",
                           {"Name": "v2", "Driver": "overlay", "Ingress": True})
        assert st == 409 and re.fullmatch(r"rpc error: code = AlreadyExists desc = ingress network "
                                          r"\([0-9a-z]{25}\) is already present",
                                          body["message"]), (st, body)

        # A service may not silently ignore its networks.
        assert err_of(lab, "swarma", "service", "create", "--network", "nope", "busybox") == \
            pre + "network nope not found"
        assert err_of(lab, "swarma", "service", "create", "--network", "ingress", "busybox") == \
            pre + 'rpc error: code = InvalidArgument desc = Service cannot be explicitly ' \
            'attached to the ingress network "ingress"'
        assert lab.docker("swarma", "service", "ls", "-q")[1] == ""
        # By name, in the long form with an alias: stored as the network's ID.
        lab.docker("swarma", "service", "create", "--detach", "--name", "att", "--network",
                   "name=web,alias=w1", "busybox", "sleep", "600")
        _, out, _ = lab.docker("swarma", "service", "inspect", "--format",
                               "{{json .Spec.TaskTemplate.Networks}}", "att")
        assert json.loads(out) == [{"Target": nid, "Aliases": ["w1"]}], out
        rc, _, err = lab.docker("swarma", "network", "rm", "web", check=False)
        sid = lab.docker("swarma", "service", "inspect", "-f", "{{.ID}}", "att")[1].strip()
        assert rc != 0 and "network %s is in use by service %s" % (nid, sid) in err, err
        lab.docker("swarma", "service", "rm", "att")

        # ingress cannot go while a service publishes through it.
        lab.docker("swarma", "service", "create", "--detach", "--name", "pub", "--publish",
                   "8080:80", "busybox")
        st, body = lab.api("swarma", "DELETE", "/networks/ingress")
        assert st == 400 and re.fullmatch(
            r"rpc error: code = FailedPrecondition desc = ingress network cannot be removed "
            r"because service [0-9a-z]{25} depends on it", body["message"]), (st, body)
        # (network rm adds the CLI's own "exit status 1" line)
        assert err_of(lab, "swarma", "network", "rm", "host").splitlines()[0] == \
            pre + "host is a pre-defined network and cannot be removed"
        assert lab.docker("swarma", "network", "rm", "web", "auto")[1].split() == ["web", "auto"]
        assert err_of(lab, "swarma", "network", "inspect", "web") == \
            pre + "network web not found"
        # A freed subnet and VXLAN ID are handed out again.
        lab.docker("swarma", "network", "create", "-d", "overlay", "again")
        _, out, _ = lab.docker("swarma", "network", "inspect", "again", "--format",
                               "{{range .IPAM.Config}}{{.Subnet}}{{end}} "
                               "{{index .Options \"com.docker.network.driver.overlay.vxlanid_list\"}}")
        assert out.strip() == "10.0.0.0/24 4097", out
