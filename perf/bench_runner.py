"""Running the epoch benchmark: the shared context (origin, dataset,
programs), and each contender's epochs on each workload, measured the same
way: the proxy's counters reset before every epoch, CPU seconds of the
readers and of the contender's services from /proc before and after, peak
RSS of the services, and every read checked against the expected digest.
"""

import math
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import List, Optional

from bench_contenders import Unavailable
from bench_procs import ReaderProc, peak_rss_mib, run_epoch, total_cpu
from harness.mesh import write_key
from harness.util import free_port

EPOCH_TIMEOUT = 900.0
MIN_TIMED_SECONDS = 1.0
REPEAT_MAX = 64


@dataclass
class Row:
    """One line of the results table."""
    workload: str
    contender: str
    role: str
    epoch: int = 0
    seconds: float = 0.0
    bytes: int = 0
    ops: int = 0
    origin_requests: int = 0
    origin_bytes: int = 0
    p50_ms: Optional[float] = None
    p99_ms: Optional[float] = None
    cpu_seconds: float = 0.0
    peer_rss_mib: Optional[float] = None
    skipped: str = ""          # why it did not run
    error: str = ""            # reader errors or wrong bytes
    latencies_ms: List[float] = field(default_factory=list, repr=False)

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.seconds / 1e6 if self.seconds else 0.0

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_gb(self) -> Optional[float]:
        return self.cpu_seconds / (self.bytes / 1e9) if self.bytes else None


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, int(q * len(sorted_values)))
    return sorted_values[index]


class Context:
    """What every contender shares in one invocation."""

    def __init__(self, args, perf_dir, work, s3, proxy, bucket, src_root):
        self.args = args
        self.quick = args.quick
        self.epochs = args.epochs
        self.nodes = args.nodes
        self.readers = args.readers
        self.seed = args.seed
        self.perf_dir = perf_dir
        self.repo = os.path.dirname(perf_dir)
        self.build_dir = os.path.abspath(args.build)
        self.work = work
        self.s3 = s3
        self.proxy = proxy
        self.bucket = bucket
        self.src_root = src_root
        self.base_env = self._base_env()
        self.binding_env, self.python_binding_reason = self._binding()
        self.python_binding = self.python_binding_reason is None
        self._fabric_reason = "unchecked"

    def _base_env(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AWS_", "PAGEMESH_", "FI_"))}
        env.update(self.s3.env(endpoint=self.proxy.url))
        env["PAGEMESH_LOG_LEVEL"] = "warn"
        env["HOME"] = os.path.join(self.work, "home")
        os.makedirs(env["HOME"], exist_ok=True)
        return env

    def _binding(self):
        """The pagemesh Python package (bindings/python) if it is here."""
        package = os.path.join(self.repo, "bindings", "python")
        library = os.path.join(self.build_dir, "libpagemesh.so")
        if not os.path.isfile(os.path.join(package, "pagemesh", "fs.py")):
            return {}, ("the pagemesh Python binding (bindings/python) is not "
                        "in this tree yet")
        if not os.path.exists(library):
            return {}, "%s not built" % library
        env = {"PYTHONPATH": os.pathsep.join(
            [package] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
            "PAGEMESH_LIBRARY": library}
        check = subprocess.run(
            [self.args.python, "-c", "import pagemesh.fs"],
            env=dict(self.base_env, **env), capture_output=True, text=True)
        if check.returncode != 0:
            return {}, "import pagemesh.fs failed: %s" % (
                check.stderr.strip().splitlines() or ["?"])[-1]
        return env, None

    def program(self, name):
        for sub in ("", "perf", "tests"):
            path = os.path.join(self.build_dir, sub, name)
            if os.access(path, os.X_OK):
                return path
        return os.path.join(self.build_dir, name)

    def fresh_dir(self, name):
        path = os.path.join(self.work, name)
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
        return path

    def free_port(self):
        return free_port()

    def fabric_unavailable(self):
        """None if a pagemeshd starts with --transport fabric
        (FI_PROVIDER=tcp), else why not. Checked once."""
        if self._fabric_reason != "unchecked":
            return self._fabric_reason
        root = self.fresh_dir("fabric-check")
        key = write_key(os.path.join(root, "key"))
        log = os.path.join(root, "peer.log")
        env = dict(self.base_env, FI_PROVIDER="tcp")
        proc = subprocess.Popen(
            [self.program("pagemeshd"), "--cache-dir",
             os.path.join(root, "peer"), "--listen",
             "127.0.0.1:%d" % free_port(), "--cluster-key-file", key,
             "--transport", "fabric", "--log-file", log],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        try:
            _out, err = proc.communicate(timeout=3)
            text = err.strip() or open(log).read().strip()
            self._fabric_reason = ("pagemeshd --transport fabric does not "
                                   "start here: %s" % (
                                       text.splitlines() or ["exit %d" %
                                                         proc.returncode]
                                   )[-1])
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait()
            self._fabric_reason = None
        return self._fabric_reason


class Runner:
    """Runs contenders on workloads and collects Rows."""

    def __init__(self, ctx: Context, log=print):
        self.ctx = ctx
        self.rows: List[Row] = []
        self.failed = False
        self.log = log
        self.notes = {}
        self.facts = {}
        self.reader_logs = os.path.join(ctx.work, "reader-logs")
        os.makedirs(self.reader_logs, exist_ok=True)

    # ---- one contender on one workload --------------------------------------

    def run(self, contender, workload):
        ctx = self.ctx
        reason = contender.unavailable(ctx)
        if reason:
            return self._skip(contender, workload, reason)
        self.log("  %-24s %s" % (contender.name, workload.name))
        readers = []
        try:
            try:
                contender.start(ctx, workload)
                readers = self._spawn(contender.name, workload,
                                      lambda r: contender.reader(ctx,
                                                                 workload, r))
            except Unavailable as e:
                return self._skip(contender, workload, str(e))
            except Exception as e:
                if contender.role == "contender" and \
                        not contender.name.startswith("pagemesh"):
                    return self._skip(contender, workload,
                                      "setup failed: %s" % e)
                raise
            self._warmup(contender, workload, readers)
            for epoch in range(1, contender.epochs(ctx) + 1):
                self._measure(contender, contender.name, workload, readers,
                              epoch)
            self._close(readers)
            readers = []
            contender.after_epochs(ctx, workload, self)
        except Exception as e:  # reported in the table; the run goes on
            self._error(contender, workload, e)
        finally:
            self._close(readers)
            try:
                contender.stop()
            except Exception as e:
                self._error(contender, workload, e)
        if contender.note:
            self.notes.setdefault(workload.name, []).append(
                "%s: %s" % (contender.name, contender.note))
            contender.note = ""
        if contender.facts:
            self.facts[(workload.name, contender.name)] = contender.facts
            contender.facts = {}

    def run_probe(self, contender, label, workload, reader_fn):
        """One more epoch, on readers made by reader_fn (after_epochs)."""
        readers = self._spawn(label, workload, reader_fn)
        self.repeat = 1
        try:
            self._prime(readers, workload, self.ctx.epochs + 1)
            self._measure(contender, label, workload, readers,
                          self.ctx.epochs + 1, role="probe")
        finally:
            self._close(readers)

    # ---- pieces -------------------------------------------------------------

    def _error(self, contender, workload, error):
        self.failed = True
        text = "%s: %s" % (type(error).__name__, str(error)[:2000])
        self.rows.append(Row(workload.name, contender.name, contender.role,
                             error=text))
        self.log("    ERROR: %s" % text)

    def _skip(self, contender, workload, reason):
        self.log("  %-24s %s: skipped: %s" % (contender.name, workload.name,
                                              reason))
        self.rows.append(Row(workload.name, contender.name, contender.role,
                             skipped=reason))

    def _spawn(self, name, workload, reader_fn):
        readers = []
        try:
            for r in range(self.ctx.readers):
                argv, env = reader_fn(r)
                log = os.path.join(self.reader_logs, "%s-%s-%d.log" % (
                    name.replace(" ", "_").replace(":", ""), workload.name,
                    r))
                readers.append(ReaderProc(argv, env, log,
                                          "%s reader %d" % (name, r)))
            for reader in readers:
                reader.wait_ready()
        except BaseException:
            self._close(readers)
            raise
        return readers

    def _close(self, readers):
        for reader in readers:
            reader.close()

    def _warmup(self, contender, workload, readers):
        """Untimed passes with the origin unshaped (fills a probe's cache,
        warms the OS page cache for a ceiling), then one more to time a
        cached pass: passes over cached data can be too short to time, so
        the timed epochs repeat their reads to last MIN_TIMED_SECONDS."""
        self.repeat = 1
        if not contender.warmup_epochs:
            return
        proxy = self.ctx.proxy
        saved = (proxy.ttfb_ms, proxy.bandwidth)
        proxy.configure(ttfb_ms=0, bandwidth=0)
        try:
            for i in range(contender.warmup_epochs + 1):
                plans = workload.plan(100 + i, len(readers), self.ctx.seed)
                run = self._untimed(readers, plans, workload, "warm-up")
        finally:
            proxy.configure(ttfb_ms=saved[0], bandwidth=saved[1])
        self.repeat = max(1, min(REPEAT_MAX, math.ceil(
            MIN_TIMED_SECONDS / max(run.seconds, 1e-3))))
        if self.repeat > 1:
            contender.note = "; ".join(filter(None, [
                contender.note, "after untimed passes, each timed epoch "
                "reads the data %d times over" % self.repeat]))

    def _prime(self, readers, workload, epoch):
        """Each of a probe's fresh reader processes looks up the objects it
        will read (metadata; Parquet footers), untimed, as the long-lived
        readers of the epochs before already had."""
        plans = workload.plan(epoch, len(readers), self.ctx.seed)
        for reader, ops in zip(readers, plans):
            keys = sorted({op.key for op in ops})
            errors = reader.prime(keys, EPOCH_TIMEOUT)
            if errors:
                self.failed = True
                raise RuntimeError("%s: priming: %s" % (reader.name,
                                                        errors[:3]))

    def _untimed(self, readers, plans, workload, what):
        run = run_epoch(readers, plans, 0, workload, EPOCH_TIMEOUT)
        if run.errors or run.mismatches:
            self.failed = True
            raise RuntimeError("%s: %s" % (what, (run.errors +
                                                  run.mismatches)[:3]))
        return run

    def _measure(self, contender, label, workload, readers, epoch,
                 role=None):
        ctx = self.ctx
        plans = [ops * self.repeat
                 for ops in workload.plan(epoch, len(readers), ctx.seed)]
        services = contender.service_pids()
        pids = [r.pid for r in readers] + services
        ctx.proxy.reset_stats()
        cpu_before = total_cpu(pids)
        run = run_epoch(readers, plans, epoch, workload, EPOCH_TIMEOUT)
        cpu = total_cpu(pids) - cpu_before
        origin = ctx.proxy.stats()
        lat = sorted(x / 1e6 for x in run.latencies_ns)
        row = Row(workload.name, label, role or contender.role, epoch,
                  run.seconds, run.bytes, run.ops,
                  origin["total_requests"], origin["get_bytes"],
                  percentile(lat, 0.50), percentile(lat, 0.99), cpu,
                  max((peak_rss_mib(p) for p in services), default=None),
                  latencies_ms=lat)
        problems = run.errors + run.mismatches
        if problems:
            self.failed = True
            row.error = "%d errors, %d wrong reads; first: %s" % (
                len(run.errors), len(run.mismatches), problems[0][:500])
        self.rows.append(row)
        self.log("    epoch %d: %6.2f s %8.1f MB/s  origin %4d req %7.1f MB"
                 "%s" % (epoch, row.seconds, row.mb_per_s,
                         row.origin_requests, row.origin_bytes / 1e6,
                         "  " + row.error if row.error else ""))

    # ---- the loopback ceiling -----------------------------------------------

    def loopback(self, workload, seconds):
        """Raw loopback request/response of the workload's read size with
        as many connections as readers."""
        import json
        prog = self.ctx.program("epoch_loopback")
        name = "ceiling: raw loopback"
        if not os.access(prog, os.X_OK):
            return self._skip(type("C", (), {"name": name,
                                             "role": "ceiling"}),
                              workload, "epoch_loopback not built")
        size = workload.read_unit
        r = subprocess.run([prog, str(size), str(self.ctx.readers),
                            str(seconds)], capture_output=True, text=True,
                           timeout=seconds + 60)
        if r.returncode != 0:
            self.failed = True
            self.rows.append(Row(workload.name, name, "ceiling",
                                 error=r.stderr.strip()[:500]))
            return
        result = json.loads(r.stdout)
        row = Row(workload.name, name, "ceiling", 1, 1.0,
                  int(result["mb_per_s"] * 1e6),
                  int(result["mb_per_s"] * 1e6 / size), 0, 0,
                  result["p50_us"] / 1e3, result["p99_us"] / 1e3)
        self.rows.append(row)
        self.log("  %-24s %s: %.0f MB/s (%d KiB requests, %d connections)"
                 % (name, workload.name, row.mb_per_s, size // 1024,
                    self.ctx.readers))
