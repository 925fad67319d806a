"""dockerode (the Node.js Engine API client that tools such as Portainer's
agents are written with) against one node's shoald: list containers, exec
with its output and exit code, a stats stream; the events stream is in
test_events."""

import json
import os
import subprocess

from lib import ServiceLab, dockerode, timeout, wait_until

# Prints one JSON object: the container list, an exec's demultiplexed
# output and exit code, and two samples of the stats stream.
PROGRAM = r"""
const Docker = require('dockerode');
const {PassThrough} = require('stream');
const d = new Docker({socketPath: process.argv[1]});
const c = d.getContainer(process.argv[2]);
(async () => {
  const out = {};
  out.list = (await d.listContainers({all: true})).map(
      (x) => ({Id: x.Id, Names: x.Names, State: x.State, Labels: x.Labels}));

  const ex = await c.exec({Cmd: ['sh', '-c', 'echo out-$((6*7)); echo err-line >&2; exit 3'],
                           AttachStdout: true, AttachStderr: true});
  const stream = await ex.start({hijack: true, stdin: false});
  const so = [], se = [];
  const o = new PassThrough(), e = new PassThrough();
  o.on('data', (b) => so.push(b));
  e.on('data', (b) => se.push(b));
  d.modem.demuxStream(stream, o, e);
  await new Promise((resolve) => stream.on('end', resolve));
  const info = await ex.inspect();
  out.exec = {stdout: Buffer.concat(so).toString(), stderr: Buffer.concat(se).toString(),
              exit: info.ExitCode, running: info.Running};

  const st = await c.stats({stream: true});
  out.stats = await new Promise((resolve, reject) => {
    const samples = [];
    let buf = '';
    st.on('data', (b) => {
      buf += b.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.trim()) samples.push(JSON.parse(line));
        if (samples.length == 2) { st.destroy(); resolve(samples); }
      }
    });
    st.on('error', reject);
    setTimeout(() => reject(new Error('stats: ' + samples.length + ' samples in 20 s')), 20000);
  });
  console.log(JSON.stringify(out));
  process.exit(0);
})().catch((e) => { console.error('ERR ' + (e.stack || e)); process.exit(2); });
"""


def drive(lab, mods, container):
    env = dict(os.environ, NODE_PATH=mods)
    p = subprocess.run(["node", "-e", PROGRAM, lab.sock("swarma"), container],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, (p.returncode, p.stderr[-2000:])
    return json.loads(p.stdout)


@timeout(150)
def test_dockerode_lists_execs_and_streams_stats():
    mods = dockerode()
    with ServiceLab({"swarma": "192.168.33.10"}) as lab:
        lab.init("swarma")
        lab.service("swarma", "create", "-d", "--name", "dn", "busybox", "sleep", "600")
        solo = lab.docker("swarma", "run", "-d", "--name", "solo", "--memory", "64m",
                          "busybox", "sleep", "600")[1].strip()
        task = wait_until(lambda: lab.docker("swarma", "ps", "-q", "--no-trunc", "--filter",
                                             "label=com.docker.swarm.service.name=dn")[1].strip(),
                          60, what="the task container of dn")

        for cid, name in ((solo, "/solo"), (task, None)):
            out = drive(lab, mods, cid)
            listed = {c["Id"]: c for c in out["list"]}
            assert solo in listed and task in listed, sorted(listed)
            assert listed[solo]["Names"] == ["/solo"] and listed[solo]["State"] == "running"
            assert listed[task]["Labels"]["com.docker.swarm.service.name"] == "dn", listed[task]
            assert out["exec"] == {"stdout": "out-42\n", "stderr": "err-line\n", "exit": 3,
                                   "running": False}, out["exec"]
            a, b = out["stats"]
            assert a["id"] == cid and b["read"] > a["read"], (a.get("read"), b.get("read"))
            if name:
                assert b["name"] == name, b["name"]
            # The sleep's own memory, the limit --memory set (the task has
            # none: the host's memory), and its one process.
            assert b["memory_stats"]["usage"] > 0, b["memory_stats"]
            if name:
                assert b["memory_stats"]["limit"] == 64 * 1024 * 1024, b["memory_stats"]
            assert b["pids_stats"]["current"] >= 1, b["pids_stats"]
            assert b["cpu_stats"]["cpu_usage"]["total_usage"] > 0, b["cpu_stats"]
