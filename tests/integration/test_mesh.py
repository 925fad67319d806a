"""Issue 9, the routing mesh, VIPs and the embedded DNS: a port published once answers on every node of
the swarm, from the node itself and from a client host outside it, and new
connections spread over every running replica wherever it runs. Replicas
here are busybox httpd serving their own hostname (the container's short
ID), so the answers say which replica served them."""

import json
import re
import subprocess

from lib import LAB, REGISTRY_IP, SEED, ServiceLab, timeout, wait_until
from test_services import container_of, running, wait_running

HOSTS = ("swarma", "swarmb", "moby")
WHOAMI = ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"]


def three_nodes(lab):
    lab.docker("swarma", "swarm", "init", "--advertise-addr", lab.ip("swarma"))
    tok = lab.token("swarma")
    for h in HOSTS[1:]:
        lab.join(h, tok)
    wait_until(lambda: sum(r["STATUS"] == "Ready" for r in lab.node_ls("swarma")) == 3, 30,
               what="3 Ready nodes")


def get(lab, frm, url):
    rc, out, _ = lab.exec(frm, "curl", "-s", "-m", "3", url, check=False, timeout=10)
    return out.strip() if rc == 0 else None


def replica_names(lab, svc):
    """The hostnames (12-character container IDs) of the running replicas."""
    names = set()
    for r in running(lab, svc):
        cid = lab.docker(r["NODE"], "ps", "-q", "--filter", "name=%s.%s" % (r["NAME"], r["ID"]))[1].strip()
        assert cid, r
        names.add(cid[:12])
    return names


@timeout(300)
def test_published_port_answers_on_every_node_and_spreads_over_replicas():
    with ServiceLab({h: SEED[h] for h in HOSTS}) as lab:
        three_nodes(lab)
        # Two replicas, pinned away from moby: moby answers with none there.
        lab.service("swarma", "create", "--detach", "--name", "my-web", "--publish", "8080:80",
                    "--replicas", "2", "--constraint", "node.hostname!=moby", "busybox", *WHOAMI)
        wait_running(lab, "my-web", 2, 90)
        names = replica_names(lab, "my-web")
        assert len(names) == 2, names

        # Every node, from a client outside the swarm, the node itself on its
        # own address and on 127.0.0.1: each answer is one of the replicas,
        # and each node's answers reach both.
        for h in HOSTS:
            for frm, url in (("registry", "http://%s:8080/" % lab.ip(h)),
                             (h, "http://%s:8080/" % lab.ip(h)),
                             (h, "http://127.0.0.1:8080/")):
                seen = set()
                for _ in range(6):
                    got = wait_until(lambda: get(lab, frm, url), 20, what="%s from %s" % (url, frm))
                    assert got in names, (h, frm, url, got, names)
                    seen.add(got)
                assert seen == names, (h, frm, url, seen, names)

        # No silent idle cut (Swarm's IPVS: 900 s): the sandbox keeps idle
        # established connections for conntrack's 5 days.
        sb = "%s/moby/exec/netns/ingress_sbox" % lab.dir
        idle = lab.exec("moby", "nsenter", "--net=" + sb, "cat",
                        "/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established")[1].strip()
        assert idle == "432000", idle

        # Scale up: the new replica gets traffic; scale down and drain: the
        # mesh stops sending to tasks that are gone. Only the port's own
        # chain is rewritten: the table and its dispatch rule keep their
        # handles (a rebuilt table would renumber them).
        def lb_handles():
            out = lab.exec("moby", "nsenter", "--net=" + sb, "nft", "-a", "list", "table", "ip",
                           "shoal_lb")[1]
            return re.findall(r"(?:vmap @ports|masquerade) # handle (\d+)", out), out
        handles, _ = lb_handles()
        assert len(handles) == 2, handles
        lab.service("swarma", "scale", "--detach", "my-web=3")
        wait_running(lab, "my-web", 3, 90)
        names3 = replica_names(lab, "my-web")
        wait_until(lambda: lb_handles()[1].count(" : 10.255.") == 3, 20,
                   what="3 backends in moby's sandbox")
        assert lb_handles()[0] == handles, (handles, lb_handles())

        def all_three():
            seen = {get(lab, "registry", "http://%s:8080/" % lab.ip("moby")) for _ in range(9)}
            return seen == names3
        wait_until(all_three, 20, what="all 3 replicas answering through moby")
        lab.service("swarma", "scale", "--detach", "my-web=1")
        wait_running(lab, "my-web", 1, 90)
        left = replica_names(lab, "my-web")
        for _ in range(6):
            for h in HOSTS:
                assert get(lab, "registry", "http://%s:8080/" % lab.ip(h)) in left

        # Removing the service closes the port everywhere.
        lab.service("swarma", "rm", "my-web")
        for h in HOSTS:
            wait_until(lambda: get(lab, "registry", "http://%s:8080/" % lab.ip(h)) is None, 20,
                       what="8080 closed on " + h)


@timeout(240)
def test_service_vip_balances_dns_names_scoped_per_network_and_dnsrr():
    two = {h: SEED[h] for h in HOSTS[:2]}
    with ServiceLab(two) as lab:
        lab.docker("swarma", "swarm", "init", "--advertise-addr", lab.ip("swarma"))
        lab.join("swarmb", lab.token("swarma"))
        wait_until(lambda: sum(r["STATUS"] == "Ready" for r in lab.node_ls("swarma")) == 2, 30,
                   what="2 Ready nodes")
        lab.docker("swarma", "network", "create", "-d", "overlay", "app")
        lab.service("swarma", "create", "--detach", "--name", "be", "--replicas", "2",
                    "--network", "name=app,alias=backend", "busybox", *WHOAMI)
        lab.service("swarma", "create", "--detach", "--name", "fe", "--replicas", "1",
                    "--network", "app", "busybox", "sleep", "3600")
        wait_running(lab, "be", 2, 90)
        fe = wait_running(lab, "fe", 1, 90)[0]
        names = replica_names(lab, "be")
        nid = lab.docker("swarma", "network", "inspect", "-f", "{{.Id}}", "app")[1].strip()
        vips = json.loads(lab.service("swarma", "inspect", "-f", "{{json .Endpoint.VirtualIPs}}", "be")[1])
        assert [v["NetworkID"] for v in vips] == [nid], vips
        vip = vips[0]["Addr"].split("/")[0]

        # From the fe task: the VIP spreads new connections over both
        # replicas, wherever they run.
        host, cname = container_of(lab, fe)
        pid = lab.container_pid(host, cname)

        def via_vip():
            rc, out, _ = lab.exec(host, "nsenter", "-t", str(pid), "-n", "curl", "-s", "-m", "3",
                                  "http://%s/" % vip, check=False, timeout=10)
            return out.strip() if rc == 0 else None
        seen = set()
        for _ in range(6):
            got = wait_until(via_vip, 20, what="be's VIP from fe")
            assert got in names, (got, names)
            seen.add(got)
        assert seen == names, (seen, names)

        # The embedded DNS at 127.0.0.11: the service name gives its VIP,
        # tasks.<name> every task's address; the task's own tools use it.
        def in_fe(*cmd):
            return lab.exec(host, "nsenter", "-t", str(pid), "-n", "-m", "--", *cmd,
                            check=False, timeout=15)
        rc, conf, _ = in_fe("cat", "/etc/resolv.conf")
        assert "nameserver 127.0.0.11" in conf, conf
        # /etc/hosts names the task's own hostname at its address, as
        # dockerd writes it.
        hn = in_fe("cat", "/etc/hostname")[1].strip()
        hosts = in_fe("cat", "/etc/hosts")[1]
        assert re.search(r"^10\.\d+\.\d+\.\d+\t%s$" % re.escape(hn), hosts, re.M), (hn, hosts)
        rc, out, _ = in_fe("nslookup", "be")
        assert rc == 0 and vip in out, out
        rc, out, _ = in_fe("nslookup", "tasks.be")
        task_ips = sorted(set(re.findall(r"Address: (10\.\d+\.\d+\.\d+)", out)))
        assert rc == 0 and len(task_ips) == 2 and vip not in task_ips, out
        rc, out, _ = in_fe("wget", "-q", "-O", "-", "http://be/")
        assert rc == 0 and out.strip() in names, (rc, out)
        rc, out, _ = in_fe("nslookup", "FE")
        assert rc == 0 and "Address" in out, out
        rc, out, _ = in_fe("nslookup", "backend")
        assert rc == 0 and vip in out, out
        rc, out, _ = in_fe("nslookup", "nosuchservice")
        assert rc != 0, out

        # Names are scoped per network: a task on another network does not
        # see be.
        lab.docker("swarma", "network", "create", "-d", "overlay", "other")
        lab.service("swarma", "create", "--detach", "--name", "lone", "--network", "other",
                    "busybox", "sleep", "3600")
        lone = wait_running(lab, "lone", 1, 90)[0]
        lh, lc = container_of(lab, lone)
        lpid = lab.container_pid(lh, lc)
        rc, out, _ = lab.exec(lh, "nsenter", "-t", str(lpid), "-n", "-m", "--", "nslookup", "be",
                              check=False, timeout=15)
        assert rc != 0 and vip not in out, out

        # Scale be down: the VIP follows.
        lab.service("swarma", "scale", "--detach", "be=1")
        wait_running(lab, "be", 1, 90)
        left = replica_names(lab, "be")
        wait_until(lambda: all(via_vip() in left for _ in range(4)), 20, what="VIP on the one replica left")

        # dnsrr: no VIP; and it cannot publish in ingress mode (Docker's
        # message).
        lab.service("swarma", "create", "--detach", "--name", "rr", "--endpoint-mode", "dnsrr",
                    "--network", "app", "busybox", "sleep", "3600")
        out = lab.service("swarma", "inspect", "-f", "{{json .Endpoint.VirtualIPs}}", "rr")[1].strip()
        assert out in ("null", "[]"), out
        rc, _, err = lab.service("swarma", "create", "--name", "rr2", "--endpoint-mode", "dnsrr",
                                 "--publish", "8082:80", "busybox", check=False)
        assert rc != 0 and "port published with ingress mode can't be used with dnsrr mode" in err, err


UDP_ECHO = ("import socket, sys\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "s.bind(('0.0.0.0', 53)); s.settimeout(60)\n"
            "for _ in range(int(sys.argv[1])):\n"
            "    d, a = s.recvfrom(512); s.sendto(b'echo:' + d, a)\n")
UDP_ASK = ("import socket, sys\n"
           "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)\n"
           "for _ in range(5):\n"
           "    s.sendto(b'hi', (sys.argv[1], int(sys.argv[2])))\n"
           "    try:\n"
           "        print(s.recvfrom(512)[0].decode()); break\n"
           "    except socket.timeout:\n"
           "        pass\n")


@timeout(240)
def test_udp_port_through_the_mesh_and_publish_add_rm():
    with ServiceLab({h: SEED[h] for h in HOSTS}) as lab:
        three_nodes(lab)
        lab.service("swarma", "create", "--detach", "--name", "u", "--replicas", "1",
                    "--constraint", "node.hostname==swarmb", "--publish", "5353:53/udp",
                    "busybox", "sleep", "3600")
        row = wait_running(lab, "u", 1, 90)[0]
        host, cname = container_of(lab, row)
        pid = lab.container_pid(host, cname)
        # A UDP echo server in the task's namespace (the node's python; the
        # test image has no UDP server), for one datagram per node.
        srv = subprocess.Popen(
            [LAB, "--dir", lab.dir, "exec", host, "nsenter", "-t", str(pid), "-n",
             "python3", "-c", UDP_ECHO, str(len(HOSTS))],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for h in HOSTS:
                out = lab.exec("registry", "python3", "-c", UDP_ASK, lab.ip(h), "5353",
                               timeout=20)[1].strip()
                assert out == "echo:hi", (h, out)
        finally:
            try:
                srv.wait(timeout=20)
            except subprocess.TimeoutExpired:
                srv.kill()
                srv.wait()

        # publish-add / publish-rm (by target port, as the CLI takes it)
        # change what every node answers on.
        lab.service("swarma", "create", "--detach", "--name", "w", "--replicas", "1",
                    "busybox", *WHOAMI)
        wait_running(lab, "w", 1, 90)
        lab.service("swarma", "update", "--detach", "--publish-add", "8090:80", "w")
        wait_until(lambda: get(lab, "registry", "http://%s:8090/" % lab.ip("moby")), 60,
                   what="8090 after publish-add")
        lab.service("swarma", "update", "--detach", "--publish-rm", "80", "w")
        wait_until(lambda: get(lab, "registry", "http://%s:8090/" % lab.ip("moby")) is None, 60,
                   what="8090 closed after publish-rm")
        # A published port left out: the lowest free one from 30000, shown
        # and answering; mode=host alongside on another port.
        lab.service("swarma", "create", "--detach", "--name", "auto", "--publish", "target=80",
                    "--publish", "mode=host,target=80,published=8095", "busybox", *WHOAMI)
        wait_running(lab, "auto", 1, 90)
        pub = lab.service("swarma", "inspect", "-f",
                          "{{range .Endpoint.Ports}}{{.PublishMode}}:{{.PublishedPort}} {{end}}",
                          "auto")[1].split()
        assert sorted(pub) == ["host:8095", "ingress:30000"], pub
        wait_until(lambda: get(lab, "registry", "http://%s:30000/" % lab.ip("moby")), 30,
                   what="30000 through the mesh")

        # A port another service publishes: Docker's refusal.
        rc, _, err = lab.service("swarma", "create", "--name", "clash", "--publish", "5353:53/udp",
                                 "busybox", check=False)
        assert rc != 0 and "port '5353' is already in use by service 'u'" in err, err


# A resolver outside the swarm (on the registry host): example.test is
# 192.0.2.7, every other name NXDOMAIN. Bounded: 20 queries or 90 s.
FAKE_RESOLVER = r"""
import socket, struct, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', 53)); s.settimeout(1)
end = time.time() + 90
n = 0
while n < 20 and time.time() < end:
    try:
        q, a = s.recvfrom(512)
    except socket.timeout:
        continue
    n += 1
    i, labels = 12, []
    while q[i]:
        labels.append(q[i + 1:i + 1 + q[i]].decode()); i += 1 + q[i]
    qtype = struct.unpack('>H', q[i + 1:i + 3])[0]
    question = q[12:i + 5]
    name = '.'.join(labels).lower()
    if name == 'example.test':
        ans = b'' if qtype != 1 else b'\xc0\x0c' + struct.pack('>HHIH', 1, 1, 60, 4) + bytes([192, 0, 2, 7])
        hdr = q[:2] + struct.pack('>HHHHH', 0x8180, 1, 1 if ans else 0, 0, 0)
        s.sendto(hdr + question + ans, a)
    else:
        s.sendto(q[:2] + struct.pack('>HHHHH', 0x8183, 1, 0, 0, 0) + question, a)
"""


@timeout(200)
def test_dns_forwards_other_names_to_the_nodes_resolvers():
    with ServiceLab({"swarma": SEED["swarma"]}, shoald_args="--dns " + REGISTRY_IP) as lab:
        lab.docker("swarma", "swarm", "init", "--advertise-addr", lab.ip("swarma"))
        lab.docker("swarma", "network", "create", "-d", "overlay", "app")
        lab.service("swarma", "create", "--detach", "--name", "fe", "--network", "app",
                    "busybox", "sleep", "3600")
        fe = wait_running(lab, "fe", 1, 90)[0]
        host, cname = container_of(lab, fe)
        pid = lab.container_pid(host, cname)
        srv = subprocess.Popen([LAB, "--dir", lab.dir, "exec", "registry", "python3", "-c", FAKE_RESOLVER],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            def ask(name):
                return lab.exec(host, "nsenter", "-t", str(pid), "-n", "-m", "--", "nslookup",
                                "-type=a", name, check=False, timeout=15)
            rc, out = None, ""
            for _ in range(10):  # until the resolver listens
                rc, out, _ = ask("example.test")
                if rc == 0:
                    break
            assert rc == 0 and "192.0.2.7" in out, out
            rc, out, _ = ask("nosuch.test")
            assert rc != 0 and "NXDOMAIN" in out, (rc, out)
            # the swarm's own names still answered by the node
            rc, out, _ = ask("fe")
            assert rc == 0 and "Address" in out, out
        finally:
            srv.kill()
            srv.wait()


# One keep-alive HTTP connection through the mesh: a request now, another
# after argv[2] seconds on the same connection; prints both status lines.
KEEPALIVE = r"""
import socket, sys, time
s = socket.create_connection((sys.argv[1], 8080), timeout=10)
def get():
    s.sendall(b'GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n')
    data = b''
    while b'\r\n\r\n' not in data:
        data += s.recv(4096)
    head, body = data.split(b'\r\n\r\n', 1)
    n = int([l.split(b':')[1] for l in head.split(b'\r\n') if l.lower().startswith(b'content-length')][0])
    while len(body) < n:
        body += s.recv(4096)
    return head.split(b'\r\n')[0].decode()
print(get(), flush=True)
time.sleep(float(sys.argv[2]))
print(get(), flush=True)
"""


@timeout(240)
def test_established_connections_survive_mesh_changes():
    with ServiceLab({h: SEED[h] for h in HOSTS[:2]}) as lab:
        lab.docker("swarma", "swarm", "init", "--advertise-addr", lab.ip("swarma"))
        lab.join("swarmb", lab.token("swarma"))
        wait_until(lambda: sum(r["STATUS"] == "Ready" for r in lab.node_ls("swarma")) == 2, 30,
                   what="2 Ready nodes")
        lab.service("swarma", "create", "--detach", "--name", "kw", "--publish", "8080:80",
                    "--replicas", "2", "nginx")
        wait_running(lab, "kw", 2, 90)
        wait_until(lambda: get(lab, "registry", "http://%s:8080/" % lab.ip("swarmb")), 30,
                   what="8080 answering")
        cli = subprocess.Popen([LAB, "--dir", lab.dir, "exec", "registry", "python3", "-c", KEEPALIVE,
                                lab.ip("swarmb"), "20"], stdout=subprocess.PIPE, text=True)
        try:
            first = cli.stdout.readline().strip()
            assert first == "HTTP/1.1 200 OK", first
            # The mesh's rules change on every node while the connection idles.
            lab.service("swarma", "scale", "--detach", "kw=4")
            wait_running(lab, "kw", 4, 90)
            out, _ = cli.communicate(timeout=60)
            assert out.strip() == "HTTP/1.1 200 OK", out
        finally:
            if cli.poll() is None:
                cli.kill()
                cli.wait()


# A replica's page naming the client it saw and itself (busybox httpd CGI).
SEES = ["sh", "-c", "mkdir -p /www/cgi-bin && printf '#!/bin/sh\\necho Content-Type: text/plain\\n"
        "echo\\necho $REMOTE_ADDR $(hostname)\\n' > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && "
        "exec httpd -f -p 80 -h /www"]


@timeout(300)
def test_keep_client_ip_label_shows_replicas_the_client_address():
    with ServiceLab({h: SEED[h] for h in HOSTS}) as lab:
        three_nodes(lab)
        rc, _, err = lab.service("swarma", "create", "--detach", "--name", "bad", "--label",
                                 "shoal.ingress.keep-client-ip=yes", "busybox", "true",
                                 check=False)
        assert rc == 1 and "label shoal.ingress.keep-client-ip must be true or false" in err, err

        lab.service("swarma", "create", "--detach", "--name", "ip", "--publish", "8080:80",
                    "--replicas", "2", "--constraint", "node.hostname!=moby", "--label",
                    "shoal.ingress.keep-client-ip=true", "busybox", *SEES)
        wait_running(lab, "ip", 2, 90)
        names = replica_names(lab, "ip")
        client = lab.ip("registry")

        def seen_through(h):
            got = get(lab, "registry", "http://%s:8080/cgi-bin/ip" % lab.ip(h))
            if not got:
                return None
            addr, name = got.split()  # httpd listens dual-stack: [::ffff:a.b.c.d]
            return addr.replace("[::ffff:", "").rstrip("]"), name

        # Every node, moby with no replica too: the replica sees the client
        # host's own address, and both replicas serve.
        for h in HOSTS:
            seen = set()
            for _ in range(8):
                got = wait_until(lambda: seen_through(h), 20, what="8080 on " + h)
                assert got[0] == client, (h, got, client)
                assert got[1] in names, (h, got, names)
                seen.add(got[1])
            assert seen == names, (h, seen, names)
        # The node itself still gets answers (masqueraded by the node).
        assert get(lab, "moby", "http://127.0.0.1:8080/cgi-bin/ip")

        # Label off again: the mesh masquerades, replicas see ingress
        # addresses, and the tasks' reply routing is taken away.
        lab.service("swarma", "update", "--detach", "--label-add",
                    "shoal.ingress.keep-client-ip=false", "ip")

        def masqueraded():
            got = seen_through("moby")
            return got and got[0].startswith("10.255.")
        wait_until(masqueraded, 30, what="masqueraded answers after the label is off")
        for h in HOSTS:
            got = wait_until(lambda: seen_through(h), 20, what="8080 on " + h)
            assert got[0].startswith("10.255."), (h, got)
        row = running(lab, "ip")[0]
        host, cname = container_of(lab, row)
        pid = lab.container_pid(host, cname)
        rules = lab.exec(host, "nsenter", "-t", str(pid), "-n", "ip", "rule")[1]
        assert "fwmark" not in rules, rules
