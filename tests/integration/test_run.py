"""Issue 12, standalone containers: docker run / create / start on one
node's shoald with the stock docker CLI: --rm, a missing image pulled,
-p on the bridge network reachable from another host, named volumes,
restart policies across a killed process and a shoald restart, ps -a
beside task containers, and Docker's errors for bad input."""

import json
import time

from lib import DOCKER, SEED, ServiceLab, run, timeout, wait_until


def two_hosts():
    return ServiceLab({"swarma": SEED["swarma"], "swarmb": SEED["swarmb"]},
                      start=["swarma"])


def inspect(lab, ref, fmt):
    return lab.docker("swarma", "inspect", "--format", fmt, ref)[1].strip()


def alive(lab):
    st, _ = lab.api("swarma", "GET", "/_ping")
    assert st == 200, st


@timeout(240)
def test_run_rm_echo_and_missing_images():
    with two_hosts() as lab:
        # Not on the node yet: create answers 404, the CLI pulls (through
        # the lab's mirror) and creates again.
        rc, out, err = lab.docker("swarma", "run", "--rm", "busybox", "echo", "hi",
                                  check=False, timeout=120)
        assert rc == 0, (rc, out, err)
        assert out == "hi\n", repr(out)
        assert "Unable to find image 'busybox:latest' locally" in err, err
        # --rm: gone once it exited
        assert lab.docker("swarma", "ps", "-aq")[1].strip() == ""
        # the exit code comes back; -e and -w and -u reach the process
        rc, out, err = lab.docker("swarma", "run", "--rm", "-e", "GREETING=hey",
                                  "-w", "/tmp", "-u", "1000", "busybox", "sh", "-c",
                                  'echo "$GREETING $(pwd) $(id -u)"; exit 3', check=False)
        assert rc == 3, (rc, out, err)
        assert out == "hey /tmp 1000\n", repr(out)
        # -i: the client's stdin is the process's, its end the process's
        rc, out, err = run([DOCKER, "-H", "unix://" + lab.sock("swarma"), "run", "-i",
                            "--rm", "busybox", "sh", "-c", "cat; echo done"],
                           check=False, input="hello\nworld\n")
        assert rc == 0, (rc, out, err)
        assert out == "hello\nworld\ndone\n", repr(out)
        # --entrypoint and labels
        rc, out, _ = lab.docker("swarma", "run", "--name", "ep", "-l", "team=blue",
                                "--entrypoint", "/bin/echo", "busybox", "a", "b")
        assert out == "a b\n", repr(out)
        assert inspect(lab, "ep", '{{index .Config.Labels "team"}}') == "blue"
        assert inspect(lab, "ep", "{{.State.Status}} {{.State.ExitCode}}") == "exited 0"
        assert lab.docker("swarma", "logs", "ep")[1] == "a b\n"
        lab.docker("swarma", "rm", "ep")
        # an image no registry has: Docker's pull error, exit 125
        rc, out, err = lab.docker("swarma", "run", "--rm", "nosuchimage:1", "true",
                                  check=False, timeout=60)
        assert rc == 125, (rc, out, err)
        assert "Unable to find image 'nosuchimage:1' locally" in err, err
        # the pull's own error follows (moby's wording for an unknown repository)
        assert err.count("nosuchimage") >= 2, err
        # refused with a message naming the flag; the daemon stays up
        rc, out, err = lab.docker("swarma", "run", "--rm", "--privileged", "busybox",
                                  "true", check=False)
        assert rc == 125 and "--privileged (HostConfig.Privileged) is not supported" in err, err
        st, body = lab.api("swarma", "POST", "/containers/create",
                           {"Image": "busybox", "Tty": True,
                            "HostConfig": {"ConsoleSize": [24, "wide"]}})
        assert st == 400 and "HostConfig.ConsoleSize" in body["message"], (st, body)
        rc, out, err = lab.docker("swarma", "run", "--rm", "--network", "front",
                                  "busybox", "true", check=False)
        # not in a swarm: no such network (dockerd's 404)
        assert rc == 125 and "network front not found" in err, err
        rc, out, err = lab.docker("swarma", "run", "--rm", "--restart", "always",
                                  "busybox", "true", check=False)
        assert rc == 125 and "cannot specify both --restart and --rm" in err, err
        st, body = lab.api("swarma", "POST", "/containers/create",
                           {"Image": "busybox", "HostConfig": {"AutoRemove": True,
                            "RestartPolicy": {"Name": "always"}}})
        assert st == 400 and body["message"] == \
            "can't create 'AutoRemove' container with restart policy", (st, body)
        st, body = lab.api("swarma", "POST", "/containers/create",
                           {"Image": "busybox", "HostConfig": {"PortBindings":
                            {"80/tcp": [{"HostPort": "99999"}]}}})
        assert st == 400 and body["message"] == 'invalid port specification: "99999"', body
        st, body = lab.api("swarma", "POST", "/containers/create?name=-bad",
                           {"Image": "busybox"})
        assert st == 400 and body["message"] == (
            "Invalid container name (-bad), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"), body
        st, body = lab.api("swarma", "POST", "/containers/create", {"Image": "nosuch"})
        assert st == 404 and body["message"] == "No such image: nosuch:latest", body
        alive(lab)


@timeout(300)
def test_run_publish_on_bridge_and_ps_with_tasks():
    with two_hosts() as lab:
        lab.start("swarmb")
        lab.docker("swarma", "pull", "nginx", timeout=120)
        rc, out, err = lab.docker("swarma", "run", "-d", "--name", "web", "-p", "8080:80",
                                  "nginx")
        cid = out.strip()
        assert len(cid) == 64, out
        ip = inspect(lab, "web", "{{.NetworkSettings.IPAddress}}")
        assert ip.startswith("172.17.0."), ip
        assert inspect(lab, "web", "{{.HostConfig.NetworkMode}}") == "bridge"
        assert inspect(lab, "web", "{{json .NetworkSettings.Ports}}") == \
            '{"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"8080"}]}'
        # from another lab host through the node's address, and from the
        # node to the container's own address
        def page_from_b():
            return "Welcome to nginx" in lab.exec(
                "swarmb", "curl", "-s", "-m", "3", "http://%s:8080/" % lab.ip("swarma"),
                check=False)[1]
        wait_until(page_from_b, 30, what="nginx on swarma:8080 from swarmb")
        out = lab.exec("swarma", "curl", "-s", "-m", "3", "http://%s/" % ip)[1]
        assert "Welcome to nginx" in out
        # the container reaches out (NAT) and resolves as the host does
        out = lab.exec("swarma", "cat", inspect(lab, "web", "{{.ResolvConfPath}}"))[1]
        assert "127.0.0." not in out, out
        # docker port, ps
        assert lab.docker("swarma", "port", "web")[1].strip().startswith("80/tcp -> 0.0.0.0:8080")
        rows = lab.ps("swarma", "-a")
        web = [r for r in rows if r["NAMES"] == "web"]
        assert web and "0.0.0.0:8080->80/tcp" in web[0]["PORTS"], rows
        # -P: an ephemeral port for every exposed one
        lab.docker("swarma", "run", "-d", "--name", "web2", "-P", "nginx")
        port = lab.docker("swarma", "port", "web2", "80/tcp")[1].strip()
        hp = int(port.rsplit(":", 1)[1])
        assert 32768 <= hp <= 60999, port
        wait_until(lambda: "Welcome to nginx" in lab.exec(
            "swarmb", "curl", "-s", "-m", "3", "http://%s:%d/" % (lab.ip("swarma"), hp),
            check=False)[1], 30, what="-P port")
        # -p on a user bridge network: NAT'd as on docker0, from another host
        lab.docker("swarma", "network", "create", "front")
        lab.docker("swarma", "run", "-d", "--name", "web4", "--network", "front", "-p",
                   "8081:80", "nginx")
        assert inspect(lab, "web4", "{{json .NetworkSettings.Ports}}") == \
            '{"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"8081"}]}'
        wait_until(lambda: "Welcome to nginx" in lab.exec(
            "swarmb", "curl", "-s", "-m", "3", "http://%s:8081/" % lab.ip("swarma"),
            check=False)[1], 30, what="nginx on a user bridge at swarma:8081")
        lab.docker("swarma", "rm", "-f", "web4")
        assert "Welcome to nginx" not in lab.exec(
            "swarmb", "curl", "-s", "-m", "2", "http://%s:8081/" % lab.ip("swarma"),
            check=False)[1]
        # bad input: a name in use, a port in use, a bad port spec
        rc, out, err = lab.docker("swarma", "run", "-d", "--name", "web", "nginx",
                                  check=False)
        assert rc == 125, (rc, err)
        assert ('Conflict. The container name "/web" is already in use by container '
                '"%s". You have to remove (or rename) that container to be able to '
                'reuse that name.' % cid) in err, err
        rc, out, err = lab.docker("swarma", "run", "-d", "--name", "web3", "-p",
                                  "8080:80", "nginx", check=False)
        assert rc != 0 and "Bind for 0.0.0.0:8080 failed: port is already allocated" in err, err
        lab.docker("swarma", "rm", "web3")
        rc, out, err = lab.docker("swarma", "run", "-d", "-p", "99999:80", "nginx",
                                  check=False)
        assert rc == 125 and "99999" in err, err
        alive(lab)
        # stop frees the port, start takes it again
        lab.docker("swarma", "stop", "-t", "1", "web")
        assert inspect(lab, "web", "{{.NetworkSettings.IPAddress}}") == ""
        lab.docker("swarma", "start", "web")
        wait_until(page_from_b, 30, what="nginx back on swarma:8080")
        # restart: a new run with its endpoint made again
        pid = lab.container_pid("swarma", "web")
        lab.docker("swarma", "restart", "-t", "1", "web")
        assert lab.container_pid("swarma", "web") != pid
        assert inspect(lab, "web", "{{.State.Status}}") == "running"
        wait_until(page_from_b, 30, what="nginx on swarma:8080 after a restart")
        # task containers and standalone ones side by side
        lab.init("swarma")
        lab.service("swarma", "create", "--detach", "--name", "svc", "busybox",
                    "sleep", "1000")
        def both():
            names = [r["NAMES"] for r in lab.ps("swarma", "-a")]
            return "web" in names and any(n.startswith("svc.1.") for n in names)
        wait_until(both, 60, what="ps -a with both kinds")
        # swarm init left the standalone endpoint alone
        wait_until(page_from_b, 10, what="nginx still on swarma:8080 after swarm init")
        lab.docker("swarma", "rm", "-f", "web", "web2")
        rc, _, _ = lab.exec("swarmb", "curl", "-s", "-m", "2",
                            "http://%s:8080/" % lab.ip("swarma"), check=False)
        assert rc != 0
        alive(lab)


@timeout(300)
def test_run_volumes_and_restart_policies():
    with two_hosts() as lab:
        lab.docker("swarma", "pull", "busybox", timeout=120)
        lab.docker("swarma", "run", "--rm", "-v", "data:/data", "busybox", "sh", "-c",
                   "echo kept > /data/f")
        out = lab.docker("swarma", "run", "--rm", "-v", "data:/data", "busybox",
                         "cat", "/data/f")[1]
        assert out == "kept\n", repr(out)
        vols = lab.docker("swarma", "volume", "ls", "-q")[1].split()
        assert "data" in vols, vols
        # a bind mount, made if missing, read-only
        out = lab.docker("swarma", "run", "--rm", "-v", "/tmp/shoal-bind:/b:ro", "busybox",
                         "sh", "-c", "touch /b/x 2>&1; echo rc=$?")[1]
        assert "Read-only file system" in out and "rc=1" in out, out
        # --restart always: back after its process is killed ...
        lab.docker("swarma", "run", "-d", "--name", "keeper", "--restart", "always",
                   "--memory", "64m", "--cpus", "0.5", "busybox", "sleep", "1000")
        got = inspect(lab, "keeper", "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}")
        assert got == "67108864 500000000", got
        pid = lab.container_pid("swarma", "keeper")
        lab.exec("swarma", "kill", "-9", str(pid))
        def restarted(old):
            def f():
                st = inspect(lab, "keeper", "{{.State.Status}} {{.State.Pid}} {{.RestartCount}}")
                status, p, count = st.split()
                return (status == "running" and int(p) != old and int(count) >= 1) and int(p)
            return f
        pid2 = wait_until(restarted(pid), 20, what="keeper restarted")
        # ... and after a shoald restart (killed while no daemon watched),
        # a --network host one too (its namespace is named by a path that
        # outlives the daemon's PID)
        lab.docker("swarma", "run", "-d", "--name", "hostc", "--network", "host",
                   "--restart", "always", "busybox", "sleep", "1000")
        hpid = lab.container_pid("swarma", "hostc")
        lab.stop("swarma")
        lab.exec("swarma", "kill", "-9", str(pid2), str(hpid))
        time.sleep(1)
        lab.start("swarma")
        wait_until(restarted(pid2), 30, what="keeper restarted after the daemon's")
        wait_until(lambda: inspect(lab, "hostc", "{{.State.Status}} {{.RestartCount}}")
                   == "running 1", 30, what="hostc restarted after the daemon's")
        hpid2 = lab.container_pid("swarma", "hostc")
        assert lab.exec("swarma", "readlink", "/proc/%d/ns/net" % hpid2)[1] == \
            lab.exec("swarma", "readlink", "/proc/self/ns/net")[1]
        # docker stop is no exit to restart
        lab.docker("swarma", "stop", "-t", "1", "keeper")
        time.sleep(2)
        got = inspect(lab, "keeper", "{{.State.Status}}")
        assert got == "exited", got
        # on-failure:1 restarts a failure once; unless-stopped stays stopped
        # across a daemon restart once stopped by the user
        lab.docker("swarma", "run", "-d", "--name", "flaky", "--restart", "on-failure:1",
                   "busybox", "sh", "-c", "sleep 1; exit 2")
        wait_until(lambda: inspect(lab, "flaky", "{{.State.Status}} {{.RestartCount}}")
                   == "exited 1", 30, what="flaky given up after 1 restart")
        lab.docker("swarma", "run", "-d", "--name", "us", "--restart", "unless-stopped",
                   "busybox", "sleep", "1000")
        lab.docker("swarma", "stop", "-t", "1", "us")
        lab.restart("swarma")
        time.sleep(3)
        got = inspect(lab, "us", "{{.State.Status}}"), inspect(lab, "keeper", "{{.State.Status}}")
        assert got == ("exited", "running"), got  # keeper: always
        # events: create, start, die, destroy of a standalone container
        since = str(int(time.time()) - 1)
        lab.docker("swarma", "run", "--rm", "--name", "evt", "busybox", "true")
        out = lab.docker("swarma", "events", "--since", since, "--until",
                         str(int(time.time()) + 1), "--filter", "container=evt",
                         "--format", "{{.Action}}")[1].split()
        assert out[:1] == ["create"] and "start" in out and "die" in out and \
            out[-1] == "destroy", out
        alive(lab)
