"""`docker stack deploy/ls/services/ps/rm` with a compose v3 file, as a
Swarm user drives a whole application: networks, secrets, configs and
services created with the stack's labels, a redeploy that updates in
place, and removal of everything the stack made; with the stock docker
CLI against shoald."""

import json
import os
import re
import tempfile

from lib import ServiceLab, timeout, wait_until

HOSTS = {"swarma": "192.168.33.10", "swarmb": "192.168.33.11"}

COMPOSE = """\
version: "3.8"
services:
  web:
    image: nginx
    ports:
      - "8080:80"
    networks: [front]
    environment:
      GREETING: hello
    secrets:
      - source: token
        target: app_token
    configs:
      - source: site
        target: /etc/site.conf
    deploy:
      replicas: %(replicas)d
      labels:
        tier: front
  worker:
    image: busybox
    command: ["sh", "-c", "while :; do sleep 1; done"]
    volumes:
      - data:/data
    healthcheck:
      test: ["CMD", "true"]
      interval: 2s
      retries: 2
    deploy:
      mode: global
      placement:
        constraints: ["node.role == manager"]
      resources:
        limits:
          memory: 64M
      restart_policy:
        condition: on-failure
        max_attempts: 3
      update_config:
        parallelism: 2
        delay: 1s
      rollback_config:
        parallelism: 1
%(extra)s
volumes:
  data: {}
networks:
  front:
    driver: overlay
secrets:
  token:
    file: ./token.txt
configs:
  site:
    file: ./site.conf
"""


EXTRA = """\
  once:
    image: busybox
    command: ["true"]
    deploy:
      restart_policy:
        condition: none
"""


def write_stack(d, replicas, extra=""):
    with open(os.path.join(d, "token.txt"), "w") as f:
        f.write("s3cret-token\n")
    with open(os.path.join(d, "site.conf"), "w") as f:
        f.write("listen 80;\n")
    path = os.path.join(d, "compose.yml")
    with open(path, "w") as f:
        f.write(COMPOSE % {"replicas": replicas, "extra": extra})
    return path


def rows(out):
    return [re.split(r"\s{2,}", l.strip()) for l in out.strip().splitlines()[1:]]


@timeout(400)
def test_stack_deploy_ls_services_ps_redeploy_rm():
    with ServiceLab(HOSTS) as lab, tempfile.TemporaryDirectory() as d:
        lab.cluster(("swarmb",))
        path = write_stack(d, 2, EXTRA)
        rc, out, err = lab.docker("swarma", "stack", "deploy", "-c", path, "st", check=False,
                                  timeout=120)
        assert rc == 0, (out, err)
        for line in ("Creating network st_front", "Creating network st_default",
                     "Creating secret st_token", "Creating config st_site",
                     "Creating service st_web", "Creating service st_worker",
                     "Creating service st_once"):
            assert line in out + err, (line, out, err)

        _, out, _ = lab.docker("swarma", "stack", "ls")
        assert rows(out) == [["st", "3"]], out
        # The global worker runs on the manager only (its constraint).
        wait_until(lambda: sorted(r[3] for r in rows(lab.docker("swarma", "stack", "services", "st")[1])
                                  if r[1] != "st_once") == ["1/1", "2/2"], 90,
                   what="the stack's services running")
        _, out, _ = lab.docker("swarma", "stack", "services", "st", "--format",
                               "{{.Name}} {{.Mode}} {{.Ports}}")
        assert sorted(out.split("\n")[:3]) == ["st_once replicated ", "st_web replicated *:8080->80/tcp",
                                               "st_worker global "], out
        _, out, _ = lab.docker("swarma", "stack", "ps", "st", "--format", "{{.Name}} {{.Node}}")
        names = sorted(l.split()[0] for l in out.strip().splitlines())
        assert names[:3] == ["st_once.1", "st_web.1", "st_web.2"] and len(names) == 4, out
        assert [l.split()[1] for l in out.splitlines() if l.startswith("st_worker.")] == ["swarma"], out
        # The compose keys reached the worker service's spec, and its
        # healthcheck gates it (healthy in docker ps).
        _, wsvc, _ = lab.docker("swarma", "service", "inspect", "st_worker")
        wspec = json.loads(wsvc)[0]["Spec"]
        tt = wspec["TaskTemplate"]
        assert tt["Placement"]["Constraints"] == ["node.role == manager"], tt
        assert tt["Resources"]["Limits"]["MemoryBytes"] == 64 << 20, tt
        assert tt["RestartPolicy"]["Condition"] == "on-failure" and tt["RestartPolicy"]["MaxAttempts"] == 3, tt
        assert tt["ContainerSpec"]["Healthcheck"]["Test"] == ["CMD", "true"], tt
        assert [m["Source"] for m in tt["ContainerSpec"]["Mounts"]] == ["st_data"], tt
        assert wspec["UpdateConfig"]["Parallelism"] == 2 and wspec["RollbackConfig"]["Parallelism"] == 1, wspec
        wait_until(lambda: [r for r in lab.ps("swarma") if r["NAMES"].startswith("st_worker.")
                            and "(healthy)" in r["STATUS"]], 60, what="st_worker healthy")
        worker_tasks = sorted(t["ID"] for t in lab.api("swarma", "GET",
                              '/tasks?filters={"service":["st_worker"],"desired-state":["running"]}')[1])

        # What the stack made carries its namespace label; the service got
        # its network, secret, config, environment and labels.
        _, svc, _ = lab.docker("swarma", "service", "inspect", "st_web")
        svc = json.loads(svc)[0]
        spec = svc["Spec"]
        assert spec["Labels"]["com.docker.stack.namespace"] == "st" and spec["Labels"]["tier"] == "front"
        cs = spec["TaskTemplate"]["ContainerSpec"]
        assert "GREETING=hello" in cs["Env"], cs
        assert [s["File"]["Name"] for s in cs["Secrets"]] == ["app_token"], cs
        assert [c["File"]["Name"] for c in cs["Configs"]] == ["/etc/site.conf"], cs
        _, nets, _ = lab.docker("swarma", "network", "ls", "--filter", "label=com.docker.stack.namespace=st",
                                "--format", "{{.Name}} {{.Driver}} {{.Scope}}")
        assert sorted(nets.split("\n")[:2]) == ["st_default overlay swarm", "st_front overlay swarm"], nets
        _, out, _ = lab.docker("swarma", "secret", "ls", "--format", "{{.Name}}")
        assert out.split() == ["st_token"], out
        # The published port answers through the routing mesh on both nodes.
        for host in HOSTS:
            wait_until(lambda: "Welcome to nginx!" in lab.exec(
                host, "curl", "-s", "-m", "3", "http://%s:8080/" % HOSTS[host], check=False)[1],
                60, what="port 8080 on %s" % host)

        # Redeploy with 3 replicas and without st_once, pruning: st_web is
        # updated in place, st_worker's tasks are untouched, st_once goes.
        web_id = svc["ID"]
        path = write_stack(d, 3)
        rc, out, err = lab.docker("swarma", "stack", "deploy", "--prune", "-c", path, "st",
                                  check=False, timeout=120)
        assert rc == 0 and "Updating service st_web" in out + err, (out, err)
        assert "Removing service st_once" in out + err, (out, err)
        wait_until(lambda: [r[3] for r in rows(lab.docker("swarma", "stack", "services", "st")[1])
                            if r[1] == "st_web"] == ["3/3"], 90, what="st_web 3/3")
        _, out, _ = lab.docker("swarma", "service", "inspect", "--format", "{{.ID}}", "st_web")
        assert out.strip() == web_id
        assert sorted(t["ID"] for t in lab.api("swarma", "GET",
                      '/tasks?filters={"service":["st_worker"],"desired-state":["running"]}')[1]) \
            == worker_tasks, "an unchanged service's tasks were replaced"

        rc, out, err = lab.docker("swarma", "stack", "rm", "st", check=False, timeout=60)
        assert rc == 0, (out, err)
        for line in ("Removing service st_web", "Removing service st_worker",
                     "Removing secret st_token", "Removing config st_site",
                     "Removing network st_front", "Removing network st_default"):
            assert line in out + err, (line, out, err)
        wait_until(lambda: lab.docker("swarma", "stack", "ls")[1].strip() == "NAME      SERVICES",
                   30, what="no stacks")
        wait_until(lambda: not [n for n in lab.docker("swarma", "network", "ls", "--format",
                                                          "{{.Name}}")[1].split() if n.startswith("st_")],
                   60, what="stack networks removed")

        # A value the compose file allows but the swarm refuses comes back
        # as the daemon's message, and the stack holds no service.
        bad = os.path.join(d, "bad.yml")
        with open(bad, "w") as f:
            f.write('version: "3.8"\nservices:\n  x:\n    image: busybox\n'
                    '    cap_add: [CAP_BOGUS]\n')
        rc, out, err = lab.docker("swarma", "stack", "deploy", "-c", bad, "st2", check=False,
                                  timeout=60)
        assert rc != 0 and 'unknown capability: "CAP_BOGUS"' in err, (out, err)
        assert not lab.docker("swarma", "service", "ls", "-q")[1].strip()
        lab.docker("swarma", "stack", "rm", "st2", check=False)
