"""User-defined bridge networks on one node's shoald, with the stock docker
CLI: network create / ls / inspect / rm / prune with dockerd's fields and
errors, containers on them (addresses of the subnet, names through the
embedded DNS, isolation from other networks), network connect and
disconnect, and all of it across a shoald restart."""

import json

from lib import SEED, ServiceLab, timeout, wait_until


def one_host():
    return ServiceLab({"swarma": SEED["swarma"]}, start=["swarma"])


def net_inspect(lab, name):
    return json.loads(lab.docker("swarma", "network", "inspect", name)[1])[0]


def err_of(lab, *args):
    rc, out, err = lab.docker("swarma", *args, check=False)
    assert rc != 0, (args, out)
    return err.strip()


@timeout(120)
def test_bridge_networks_lifecycle():
    with one_host() as lab:
        lab.docker("swarma", "network", "create", "--label", "team=blue", "front")
        lab.docker("swarma", "network", "create", "--subnet", "10.77.0.0/24",
                   "--ip-range", "10.77.0.128/25", "--internal", "back")
        n = net_inspect(lab, "front")
        assert (n["Scope"], n["Driver"], n["Internal"]) == ("local", "bridge", False), n
        assert n["IPAM"]["Config"] == [{"Subnet": "172.19.0.0/16", "Gateway": "172.19.0.1"}], n
        assert n["Labels"] == {"team": "blue"} and n["Containers"] == {}, n
        b = net_inspect(lab, "back")
        assert b["Internal"] is True, b
        assert b["IPAM"]["Config"] == [{"Subnet": "10.77.0.0/24", "Gateway": "10.77.0.1",
                                        "IPRange": "10.77.0.128/25"}], b
        # the kernel's side: dockerd's bridge name, the gateway address
        rc, out, _ = lab.exec("swarma", "ip", "-4", "-o", "addr", "show", "br-" + n["Id"][:12])
        assert "172.19.0.1/16" in out, out
        ls = lab.docker("swarma", "network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}")[1]
        assert "front bridge local" in ls.splitlines() and "back bridge local" in ls.splitlines(), ls
        # bad input, dockerd's words
        assert "network with name front already exists" in err_of(
            lab, "network", "create", "front")
        assert "Pool overlaps with other one on this address space" in err_of(
            lab, "network", "create", "--subnet", "10.77.0.0/16", "third")
        assert "network nosuch not found" in err_of(lab, "network", "inspect", "nosuch")
        # survives a restart
        lab.restart("swarma")
        assert net_inspect(lab, "front")["Id"] == n["Id"]
        lab.docker("swarma", "network", "rm", "back")
        assert "network back not found" in err_of(lab, "network", "inspect", "back")
        out = lab.docker("swarma", "network", "prune", "-f")[1]
        assert "front" in out, out
        assert "br-" + n["Id"][:12] not in lab.exec("swarma", "ip", "-o", "link")[1]
