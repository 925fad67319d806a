"""User-defined bridge networks on one node's shoald, with the stock docker
CLI: network create / ls / inspect / rm / prune with dockerd's fields and
errors, containers on them (addresses of the subnet, names through the
embedded DNS, isolation from other networks), network connect and
disconnect, and all of it across a shoald restart."""

import json
import time

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


def nets_of(lab, ctr):
    return json.loads(lab.docker("swarma", "inspect", "--format",
                                 "{{json .NetworkSettings.Networks}}", ctr)[1])


@timeout(240)
def test_containers_on_bridge_networks_connect_and_restart():
    with one_host() as lab:
        def d(*args, **kw):
            return lab.docker("swarma", *args, **kw)

        def pings(ctr, target):
            return d("exec", ctr, "ping", "-c", "1", "-W", "2", target, check=False)[0] == 0

        # --ip needs a subnet of the user's choosing (below)
        fid = d("network", "create", "--subnet", "172.19.0.0/16", "front")[1].strip()
        d("network", "create", "other")
        t0 = d("version", "--format", "{{.Server.Version}}") and str(int(time.time()) - 1)
        web = d("run", "-d", "--name", "web", "--network", "front", "--network-alias", "www",
                "busybox", "sleep", "3600", timeout=120)[1].strip()
        d("run", "-d", "--name", "cli", "--network", "front", "--ip", "172.19.0.50",
          "busybox", "sleep", "3600")
        d("run", "-d", "--name", "lone", "--network", "other", "--restart", "always",
          "busybox", "sleep", "3600")
        ep = nets_of(lab, "web")["front"]
        assert ep["IPAddress"] == "172.19.0.2" and ep["NetworkID"] == fid, ep
        assert ep["Aliases"] == ["www"] and ep["DNSNames"] == ["web", "www", web[:12]], ep
        assert nets_of(lab, "cli")["front"]["IPAddress"] == "172.19.0.50"
        # the embedded DNS: name, alias, short ID; not from another network
        for target in ("web", "www", web[:12]):
            assert pings("cli", target), target
        rc, out, err = d("exec", "lone", "ping", "-c", "1", "-W", "1", "web", check=False)
        assert rc != 0 and "bad address" in out + err, (rc, out, err)
        assert not pings("lone", "172.19.0.2")  # isolation between bridges
        n = net_inspect(lab, "front")
        assert sorted(c["Name"] for c in n["Containers"].values()) == ["cli", "web"], n
        e = err_of(lab, "network", "rm", "front").splitlines()[0]
        assert e == ("Error response from daemon: error while removing network: network "
                     "front id %s has active endpoints" % fid), e

        # connect a running container: eth1 on front, names both ways
        d("network", "connect", "--alias", "solo", "front", "lone")
        out = d("exec", "lone", "ip", "-o", "-4", "addr", "show", "eth1")[1]
        assert "172.19.0." in out, out
        assert pings("lone", "web") and pings("cli", "solo")
        assert set(nets_of(lab, "lone")) == {"other", "front"}
        assert "endpoint with name lone already exists in network front" in err_of(
            lab, "network", "connect", "front", "lone")
        assert "network nosuch not found" in err_of(lab, "network", "connect", "nosuch", "lone")
        # an address of one's choosing is for user networks (dockerd's words)
        ip_err = ("invalid endpoint settings:\n"
                  "user specified IP address is supported on user defined networks only")
        assert ("invalid config for network default: " + ip_err) in err_of(
            lab, "run", "--ip", "172.17.0.9", "busybox", "true")
        assert ("Error response from daemon: " + ip_err) == err_of(
            lab, "network", "connect", "--ip", "172.17.0.9", "bridge", "lone")
        # and, on a user network, for one whose subnet the user chose
        sub_err = ("invalid endpoint settings:\nuser specified IP address is supported only "
                   "when connecting to networks with user configured subnets")
        assert ("invalid config for network other: " + sub_err) in err_of(
            lab, "run", "--network", "other", "--ip", "172.20.0.9", "busybox", "true")
        assert sub_err in err_of(lab, "network", "connect", "--ip", "172.20.0.9", "other", "web")
        # created on the network by its ID: connecting by name is twice too
        d("create", "--name", "byid", "--network", fid[:12], "busybox", "true")
        assert "endpoint with name byid already exists in network front" in err_of(
            lab, "network", "connect", "front", "byid")
        d("rm", "byid")
        ev = d("events", "--since", t0, "--until", str(int(time.time()) + 1),
               "--filter", "type=network", "--format",
               "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.container}}")[1]
        lone = d("inspect", "--format", "{{.Id}}", "lone")[1].strip()
        assert "connect %s %s" % (fid, lone) in ev.splitlines(), ev
        # as dockerd, a start connects the container to each of its networks
        assert "connect %s %s" % (fid, web) in ev.splitlines(), ev
        d("network", "disconnect", "front", "lone")
        rc, _, _ = d("exec", "lone", "ip", "link", "show", "eth1", check=False)
        assert rc != 0 and set(nets_of(lab, "lone")) == {"other"}
        assert not pings("cli", "solo")

        # a shoald restart: the network, the endpoints and the names stay
        lab.restart("swarma")
        wait_until(lambda: pings("cli", "web"), 20, what="cli reaches web after the restart")
        assert nets_of(lab, "lone")["other"]["IPAddress"].startswith("172.20."), nets_of(lab, "lone")
        # a stopped container connected gets the endpoint at its start;
        # the stop disconnects it (dockerd's event), docker0 likewise
        t1 = str(int(time.time()) - 1)
        d("stop", "-t", "1", "lone")
        d("run", "--rm", "busybox", "true")
        bid = d("network", "inspect", "--format", "{{.Id}}", "bridge")[1].strip()
        oid = d("network", "inspect", "--format", "{{.Id}}", "other")[1].strip()
        ev = d("events", "--since", t1, "--until", str(int(time.time()) + 1),
               "--filter", "type=network", "--format",
               "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}")[1].splitlines()
        assert "disconnect %s other" % oid in ev, ev
        assert "connect %s bridge" % bid in ev and "disconnect %s bridge" % bid in ev, ev
        # connect and disconnect of a stopped container change its settings
        # only: no event until its start (dockerd's)
        lid = d("inspect", "--format", "{{.Id}}", "lone")[1].strip()
        t2 = str(int(time.time()))
        d("network", "connect", "bridge", "lone")
        d("network", "disconnect", "bridge", "lone")
        assert ("Error response from daemon: container %s is not connected to the network bridge"
                % lid) == err_of(lab, "network", "disconnect", "bridge", "lone")
        d("network", "connect", "front", "lone")
        time.sleep(1.1)
        t3 = str(int(time.time()))
        d("start", "lone")
        assert pings("lone", "web")

        def net_events(since):
            out = d("events", "--since", since, "--until", str(int(time.time()) + 1),
                    "--filter", "type=network", "--format",
                    "{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.container}}")[1]
            return [e.rsplit(" ", 1)[0] for e in out.splitlines() if e.endswith(" " + lid)]
        assert net_events(t2) == net_events(t3), (net_events(t2), net_events(t3))
        assert sorted(net_events(t3)) == ["connect front", "connect other"], net_events(t3)
        d("rm", "-f", "web", "cli", "lone")
        d("network", "rm", "front", "other")
