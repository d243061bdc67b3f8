"""Several pagemeshd node peers on loopback, each with its own cache
directory, joined into one mesh with a shared cluster key.

    with Mesh(build_dir, tmp_path, count=4, env=s3.env(...)) as mesh:
        mesh.wait_members(4)
        mesh.cli(0).cat(uri)
        mesh.kill(2)
"""

import json
import os
import signal
import subprocess
import time

from .pagemesh_cli import PagemeshCLI, stop
from .util import free_port


def write_key(path, data=None):
    with open(path, "wb") as f:
        f.write(data or os.urandom(32))
    os.chmod(path, 0o600)
    return path


class Mesh:
    def __init__(self, build_dir, root, count, env=None, key=None,
                 extra_args=(), base_port=None):
        self.build_dir = build_dir
        self.root = str(root)
        self.env = dict(env or {})
        self.key = key or write_key(os.path.join(self.root, "cluster.key"))
        self.extra_args = list(extra_args)
        self.ports = [free_port() for _ in range(count)]
        self.procs = [None] * count
        self.logs = [os.path.join(self.root, "peer%d.log" % i)
                     for i in range(count)]

    def cache_dir(self, i):
        return os.path.join(self.root, "peer%d" % i)

    def cli(self, i):
        return PagemeshCLI(self.build_dir, self.cache_dir(i), self.env)

    def addr(self, i):
        return "127.0.0.1:%d" % self.ports[i]

    def start(self, i, key=None, extra=()):
        args = ["--listen", self.addr(i),
                "--cluster-key-file", key or self.key,
                "--log-file", self.logs[i], "--log-level", "info"]
        seeds = [self.addr(j) for j in range(len(self.ports)) if j != i][:3]
        if seeds:
            args += ["--seeds", ",".join(seeds)]
        self.procs[i] = self.cli(i).start_daemon(*(args + self.extra_args +
                                                   list(extra)))
        return self.procs[i]

    def start_all(self):
        for i in range(len(self.ports)):
            self.start(i)
        return self

    def kill(self, i, sig=signal.SIGKILL):
        proc = self.procs[i]
        proc.send_signal(sig)
        proc.wait()
        self.procs[i] = None

    def members(self, i):
        r = self.cli(i).run("members", "--json")
        if r.returncode != 0:
            return None
        return json.loads(r.stdout)

    def states(self, i):
        """{gossip address: state} as peer i sees the mesh."""
        members = self.members(i) or []
        return {m["addr"]: m["state"] for m in members}

    def wait(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return time.monotonic()
            time.sleep(0.1)
        raise TimeoutError("%s within %.0f s" % (what, timeout))

    def wait_members(self, alive, peers=None, timeout=30):
        peers = peers if peers is not None else self.running()
        def ok():
            for i in peers:
                states = self.states(i)
                if sum(s == "alive" for s in states.values()) != alive:
                    return False
            return True
        return self.wait(ok, timeout, "%d alive members seen by %s" % (
            alive, peers))

    def running(self):
        return [i for i, p in enumerate(self.procs) if p and p.poll() is None]

    def status(self, i):
        return self.cli(i).node_status()

    def stop_all(self):
        for proc in self.procs:
            if proc:
                stop(proc)
        self.procs = [None] * len(self.procs)

    def __enter__(self):
        return self.start_all()

    def __exit__(self, *exc):
        self.stop_all()
