"""Processes of the epoch benchmark: reader processes that speak the line
protocol of perf/epoch_reader.c and perf/bench_reader.py, and what /proc
says about any process (CPU seconds, peak RSS).

    readers = [ReaderProc(argv, env) for ...]
    for r in readers: r.wait_ready()
    result = run_epoch(readers, plans, epoch)   # EpochRun
"""

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

CLK_TCK = os.sysconf("SC_CLK_TCK")


class ReaderError(RuntimeError):
    pass


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) so far;
    0 if it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # fields[0] is the state (field 3); utime and stime are fields 14, 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mib(pid: int) -> float:
    """VmHWM (peak resident set) of a process in MiB; 0 if it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def total_cpu(pids: List[int]) -> float:
    return sum(cpu_seconds(p) for p in pids)


def with_descendants(pids: List[int]) -> List[int]:
    """pids and every process below them (a JuiceFS mount serves from a
    child of the process we started)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], list(pids)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.append(pid)
            todo.extend(parents.get(pid, []))
    return found


class ReaderProc:
    """A reader process; stderr goes to a log file for error messages."""

    def __init__(self, argv: List[str], env: Dict[str, str], log_path: str,
                 name: str):
        self.name = name
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.log, text=True, bufsize=1 << 20)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def fail(self, what: str) -> ReaderError:
        self.log.flush()
        try:
            with open(self.log_path, "rb") as f:
                tail = f.read()[-1500:].decode("utf-8", "replace")
        except OSError:
            tail = ""
        return ReaderError("%s: %s (exit %s)\n%s" % (
            self.name, what, self.proc.poll(), tail))

    def wait_ready(self, timeout: float = 120.0) -> None:
        line = self._readline(timeout)
        if line != "READY":
            raise self.fail("did not start (got %r)" % line)

    def _readline(self, timeout: float) -> Optional[str]:
        """One line of output, or None on EOF; a reader stuck beyond
        `timeout` seconds is killed and reported."""
        timer = threading.Timer(timeout, self.proc.kill)
        timer.start()
        try:
            line = self.proc.stdout.readline()
        finally:
            timer.cancel()
        return line.rstrip("\n") if line else None

    def send_epoch(self, epoch: int, ops) -> None:
        lines = ["EPOCH %d %d" % (epoch, len(ops))] + [op.line() for op in ops]
        try:
            self.proc.stdin.write("\n".join(lines) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise self.fail("exited")

    def prime(self, keys: List[str], timeout: float) -> List[str]:
        """Look objects up without timing; returns error lines."""
        try:
            self.proc.stdin.write("\n".join(["META %d" % len(keys)] + keys)
                                  + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise self.fail("exited")
        errors = []
        while True:
            line = self._readline(timeout)
            if line is None:
                raise self.fail("exited while priming")
            if line.startswith("END "):
                return errors
            errors.append(line)

    def receive_epoch(self, count: int, timeout: float):
        """The reader's per-op lines and its (start_ns, end_ns)."""
        deadline = time.monotonic() + timeout
        lines = []
        while True:
            line = self._readline(max(1.0, deadline - time.monotonic()))
            if line is None:
                raise self.fail("exited during an epoch")
            if line.startswith("END "):
                _, start, end = line.split()
                if len(lines) != count:
                    raise self.fail("answered %d of %d ops" % (len(lines),
                                                               count))
                return lines, (int(start), int(end))
            lines.append(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("QUIT\n")
                self.proc.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@dataclass
class EpochRun:
    """What the readers did in one epoch, all readers together."""
    seconds: float
    ops: int
    bytes: int
    latencies_ns: List[int] = field(default_factory=list)
    errors: List[str] = field(default_factory=list)   # reader failures
    mismatches: List[str] = field(default_factory=list)  # wrong bytes


def run_epoch(readers: List[ReaderProc], plans, epoch: int, workload,
              timeout: float) -> EpochRun:
    """Send each reader its ops, wait for all, check every op's size and
    digest against the workload's expected values."""
    for reader, ops in zip(readers, plans):
        reader.send_epoch(epoch, ops)
    run = EpochRun(0.0, 0, 0)
    starts, ends = [], []
    for reader, ops in zip(readers, plans):
        lines, (start, end) = reader.receive_epoch(len(ops), timeout)
        if ops:
            starts.append(start)
            ends.append(end)
        for op, line in zip(ops, lines):
            _check(run, workload, op, line)
    run.seconds = (max(ends) - min(starts)) / 1e9 if starts else 0.0
    return run


def _check(run: EpochRun, workload, op, line: str) -> None:
    run.ops += 1
    if line.startswith("E "):
        run.errors.append(line[2:])
        return
    latency, got, digest = line.split()
    run.latencies_ns.append(int(latency))
    run.bytes += int(got)
    if int(got) != op.length or digest != workload.expected_digest(op):
        run.mismatches.append("%s@%d/%d: %s bytes, digest %s (want %d, %s)"
                              % (op.key, op.offset, op.row_group, got,
                                 digest, op.length,
                                 workload.expected_digest(op)))
