"""The epoch benchmark's report: a Markdown table of every epoch of every
contender, ratios against reading the origin directly and against the
local pread ceiling, the goals as pass / falls-short lines, and PNG plots
(throughput per epoch, latency distribution of the last epoch)."""

import json
import os
from typing import Dict, List, Optional

GOAL_DIRECT = 10.0    # warm epoch vs the origin read directly
GOAL_LOCAL_CACHES = 3.0   # warm epoch vs fsspec's and JuiceFS's caches
GOAL_LOCAL_HIT = 0.8  # local hits vs pread
GOAL_REMOTE_HIT = 0.7  # remote hits vs raw loopback

PAGEMESH = ("pagemesh tcp", "pagemesh fabric")
LOCAL_CACHES = ("fsspec filecache", "fsspec blockcache", "JuiceFS CE")


def _fmt(value, pattern="%.1f", none="-"):
    return none if value is None else pattern % value


def _rows_of(rows, workload, contender):
    return [r for r in rows if r.workload == workload and
            r.contender == contender and not r.skipped and not r.error]


def _last(rows, workload, contender):
    found = _rows_of(rows, workload, contender)
    return found[-1] if found else None


def _direct_mb_s(rows, workload) -> Optional[float]:
    found = _rows_of(rows, workload, "origin direct")
    if not found:
        return None
    return sum(r.bytes for r in found) / sum(r.seconds for r in found) / 1e6


def _pread_mb_s(rows, workload) -> Optional[float]:
    found = _rows_of(rows, workload, "ceiling: local pread")
    return max(r.mb_per_s for r in found) if found else None


def table(rows, workloads) -> str:
    """The Markdown table, one line per epoch (skips and errors too)."""
    head = ("| workload | contender | epoch | s | MB/s | obj/s | origin req "
            "| origin MB | p50 ms | p99 ms | CPU s/GB | peer RSS MiB "
            "| × direct | × pread | × loopback |")
    lines = [head, "|" + "---|" * 15]
    for w in workloads:
        direct = _direct_mb_s(rows, w)
        pread = _pread_mb_s(rows, w)
        loop = _last(rows, w, "ceiling: raw loopback")
        loop = loop.mb_per_s if loop else None
        for r in (r for r in rows if r.workload == w):
            if r.skipped or r.error:
                what = "skipped: " + r.skipped if r.skipped else \
                    "**ERROR**: " + r.error.replace("|", "/")[:300]
                lines.append("| %s | %s | %s |%s" % (w, r.contender, what,
                                                     " |" * 12))
                continue
            lines.append("| %s | %s | %s | %.2f | %.1f | %.0f | %d | %.1f | "
                         "%s | %s | %s | %s | %s | %s | %s |" % (
                             w, r.contender, r.epoch if r.role != "ceiling"
                             or r.contender.endswith("pread") else "-",
                             r.seconds, r.mb_per_s, r.ops_per_s,
                             r.origin_requests, r.origin_bytes / 1e6,
                             _fmt(r.p50_ms, "%.2f"), _fmt(r.p99_ms, "%.2f"),
                             _fmt(r.cpu_per_gb, "%.1f"),
                             _fmt(r.peer_rss_mib, "%.0f"),
                             _fmt(r.mb_per_s / direct if direct else None,
                                  "%.1f×"),
                             _fmt(r.mb_per_s / pread if pread else None,
                                  "%.2f×"),
                             _fmt(r.mb_per_s / loop if loop else None,
                                  "%.2f×")))
    return "\n".join(lines)


def _goal(ok: Optional[bool], text: str) -> str:
    mark = {True: "PASS        ", False: "FALLS SHORT ", None: "n/a         "}
    return mark[ok] + text


def goals(rows, workloads, fits_one_node: Dict[str, float],
          facts=None) -> List[str]:
    """Pass / falls-short lines for each goal, workload and pagemesh
    transport that ran. facts[(workload, contender)] may say how much a
    cache without a size limit kept ("cache_bytes", "capacity")."""
    out = []
    for w in workloads:
        direct = _direct_mb_s(rows, w)
        for pm in PAGEMESH:
            warm = _last(rows, w, pm)
            if not warm or warm.epoch < 2:
                continue
            out += _goals_for(rows, w, pm, warm, direct, fits_one_node[w],
                              facts or {})
        out += _hit_goals(rows, w)
    return out


def _overflow(facts, w, other):
    """A remark when a cache ignored the per-node capacity."""
    f = facts.get((w, other), {})
    if f.get("cache_bytes", 0) > f.get("capacity", 1 << 62):
        return (" [%s has no size limit: a node kept %.0f MiB, over the "
                "%.0f MiB capacity]" % (other, f["cache_bytes"] / 2**20,
                                        f["capacity"] / 2**20))
    return ""


def _goals_for(rows, w, pm, warm, direct, share, facts):
    out = []
    if direct:
        ratio = warm.mb_per_s / direct
        out.append(_goal(ratio >= GOAL_DIRECT, "%s: %s warm epoch %.0f MB/s ="
                         " %.1f× origin direct (%.1f MB/s); goal ≥ %g×" % (
                             w, pm, warm.mb_per_s, ratio, direct,
                             GOAL_DIRECT)))
    for other in LOCAL_CACHES:
        theirs = _last(rows, w, other)
        if not theirs:
            continue
        ratio = warm.mb_per_s / theirs.mb_per_s
        out.append(_goal(ratio >= GOAL_LOCAL_CACHES, "%s: %s warm %.0f MB/s ="
                         " %.1f× %s warm (%.1f MB/s), a node's capacity is "
                         "%.0f%% of the data; goal ≥ %g×%s" % (
                             w, pm, warm.mb_per_s, ratio, other,
                             theirs.mb_per_s, share * 100,
                             GOAL_LOCAL_CACHES, _overflow(facts, w, other))))
    later = [r for r in rows if r.workload == w and not r.skipped and
             not r.error and r.contender.startswith(pm) and r.epoch >= 2]
    origin = sum(r.origin_bytes for r in later)
    out.append(_goal(origin == 0, "%s: %s origin bytes in epochs ≥ 2 "
                     "(and the remote-hit epoch): %d; goal 0" % (w, pm,
                                                                origin)))
    return out


def _hit_goals(rows, w):
    out = []
    local = _last(rows, w, "pagemesh: local hits")
    pread = _pread_mb_s(rows, w)
    if local and pread:
        ratio = local.mb_per_s / pread
        out.append(_goal(ratio >= GOAL_LOCAL_HIT, "%s: local hits %.0f MB/s ="
                         " %.2f× pread (%.0f MB/s); goal ≥ %g×" % (
                             w, local.mb_per_s, ratio, pread,
                             GOAL_LOCAL_HIT)))
    loop = _last(rows, w, "ceiling: raw loopback")
    for pm in PAGEMESH:
        remote = _last(rows, w, pm + ": remote hits")
        if remote and loop:
            ratio = remote.mb_per_s / loop.mb_per_s
            out.append(_goal(ratio >= GOAL_REMOTE_HIT, "%s: %s remote hits "
                             "%.0f MB/s = %.2f× raw loopback (%.0f MB/s); "
                             "goal ≥ %g×" % (w, pm, remote.mb_per_s, ratio,
                                             loop.mb_per_s,
                                             GOAL_REMOTE_HIT)))
    return out


# ---- plots ------------------------------------------------------------------


def plots(rows, workloads, out_dir, suffix="") -> List[str]:
    """throughput<suffix>.png and latency<suffix>.png; returns the paths
    written (none if matplotlib is missing)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    paths = []
    fig, axes = plt.subplots(1, len(workloads), squeeze=False,
                             figsize=(5.5 * len(workloads), 4.5))
    for ax, w in zip(axes[0], workloads):
        _throughput_axes(ax, rows, w)
    fig.tight_layout()
    paths.append(os.path.join(out_dir, "throughput%s.png" % suffix))
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    fig, axes = plt.subplots(1, len(workloads), squeeze=False,
                             figsize=(5.5 * len(workloads), 4.5))
    for ax, w in zip(axes[0], workloads):
        _latency_axes(ax, rows, w)
    fig.tight_layout()
    paths.append(os.path.join(out_dir, "latency%s.png" % suffix))
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def _contenders(rows, w):
    seen = []
    for r in rows:
        if r.workload == w and not r.skipped and not r.error and \
                r.contender not in seen:
            seen.append(r.contender)
    return seen


def _throughput_axes(ax, rows, w):
    from matplotlib.ticker import MaxNLocator
    for name in _contenders(rows, w):
        found = _rows_of(rows, w, name)
        if found[0].role == "contender":
            ax.plot([r.epoch for r in found], [r.mb_per_s for r in found],
                    marker="o", label=name)
        else:
            ax.axhline(max(r.mb_per_s for r in found),
                       linestyle="--" if found[0].role == "ceiling" else ":",
                       linewidth=1.2, label=name, color=_probe_color(name))
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("MB/s (all readers)")
    ax.set_title("%s: throughput per epoch" % w)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def _probe_color(name):
    palette = {"ceiling: local pread": "black",
               "ceiling: raw loopback": "gray",
               "pagemesh: local hits": "tab:green",
               "pagemesh tcp: remote hits": "tab:olive",
               "pagemesh fabric: remote hits": "tab:cyan"}
    return palette.get(name, "tab:pink")


def _latency_axes(ax, rows, w):
    for name in _contenders(rows, w):
        last = _rows_of(rows, w, name)[-1]
        lat = last.latencies_ms
        if not lat:
            continue
        ys = [(i + 1) / len(lat) for i in range(len(lat))]
        ax.plot(lat, ys, label="%s (epoch %d)" % (name, last.epoch))
    ax.set_xscale("log")
    ax.set_xlabel("read latency, ms")
    ax.set_ylabel("fraction of reads")
    ax.set_title("%s: latency, last epoch" % w)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def to_json(rows, meta) -> str:
    data = {"meta": meta, "rows": []}
    for r in rows:
        d = {k: v for k, v in r.__dict__.items() if k != "latencies_ms"}
        d.update(mb_per_s=r.mb_per_s, ops_per_s=r.ops_per_s,
                 cpu_per_gb=r.cpu_per_gb)
        data["rows"].append(d)
    return json.dumps(data, indent=1)
