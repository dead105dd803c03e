"""plot_bench.py's plots (matplotlib, Agg backend): one PNG per figure, from the results files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from benchrows import LIMIT_LINES, LINES, by_dataset, fmt_number, limits, readers, value, workers_best


def save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})  # no version stamp: stable bytes
    plt.close(fig)
    print(f"wrote {path}")
    return path


def plot_read_dataset(read: dict[str, Any], name: str, labels: dict[str, str], plots: Path) -> list[Path]:
    """One dataset's samples/s: a bar per reader row and per limit (hatched), grouped by num_workers."""
    rows = sorted(by_dataset(read["results"]).get(name, []), key=lambda r: r["num_workers"])
    if not rows:
        return []
    keys = [*readers(rows), *limits(rows)]
    fig, ax = plt.subplots(figsize=(min(12.0, max(7.0, 0.8 * len(keys) * len(rows))), 4.5))
    width = 0.85 / len(keys)
    for number, key in enumerate(keys):
        if key in LINES:
            label, colour, hatch = *LINES[key], None
        else:
            label, colour, hatch = LIMIT_LINES[key][0], "white", "//"
        ys = [value(r.get(key), "samples_per_s") or 0.0 for r in rows]
        xs = [i + (number - (len(keys) - 1) / 2) * width for i in range(len(rows))]
        bars = ax.bar(xs, ys, width, label=label, color=colour, edgecolor="black", hatch=hatch)
        ax.bar_label(bars, labels=[fmt_number(y) if y else "error" for y in ys], fontsize=7, padding=2)
    ax.set_xticks(range(len(rows)), labels=[f"num_workers = {r['num_workers']}" for r in rows])
    ax.set(ylabel="samples/s", title=f"{labels.get(name, name)}: samples/s, same run")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return [save(fig, plots / f"read_{name}.png")]


def plot_read(read: dict[str, Any], labels: dict[str, str], plots: Path) -> list[Path]:
    """(a) samples/s against num_workers per dataset; one line per reader row, limits dashed."""
    groups = by_dataset(read["results"])
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4), squeeze=False)
    for ax, (name, rows) in zip(axes[0], groups.items(), strict=True):
        rows = sorted(rows, key=lambda r: r["num_workers"])
        workers = [r["num_workers"] for r in rows]
        for key in readers(rows):
            label, colour = LINES[key]
            ax.plot(workers, [value(r.get(key), "samples_per_s") for r in rows], marker="o", color=colour,
                    label=label)  # fmt: skip
        for key in limits(rows):
            label, colour, style = LIMIT_LINES[key]
            ys = [value(r.get(key), "samples_per_s") for r in rows]
            ax.plot(workers, ys, color=colour, linestyle=style, marker="x", label=label)
        ax.set(title=labels.get(name, name), xlabel="DataLoader num_workers", ylabel="samples/s")
        ax.set_xticks(workers)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return [save(fig, plots / "read_throughput.png")]


def sweep_curve(rows: list[dict[str, Any]], knob: str, fixed: str, base: int, variant: str) -> list[dict]:
    """The rows of one curve: `knob` varies, `fixed` is held at its base value."""
    picked = [r for r in rows if r["variant"] == variant and r[fixed] == base and "error" not in r]
    return sorted(picked, key=lambda r: r[knob])


def plot_sweep(sweep: dict[str, Any], labels: dict[str, str], plots: Path) -> list[Path]:
    """(b) peak RSS against the pool size; (c) samples/s against the pool size and the window."""
    base, groups = sweep["base"], by_dataset(sweep["results"])
    variants = list(dict.fromkeys(r["variant"] for r in sweep["results"]))
    pool, steps = "episode_pool_size", "action_steps"
    panels = [  # file, metric, knob varied, knob held, x label
        ("sweep_rss_vs_pool.png", "peak_rss_mb", pool, steps, "episode_pool_size (episodes)"),
        ("sweep_throughput_vs_pool.png", "samples_per_s", pool, steps, "episode_pool_size (episodes)"),
        ("sweep_throughput_vs_window.png", "samples_per_s", steps, pool, "action window (steps)"),
    ]
    paths = []
    for file, metric, knob, fixed, xlabel in panels:
        fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4), squeeze=False)
        for ax, (name, rows) in zip(axes[0], groups.items(), strict=True):
            for variant in variants:
                curve = sweep_curve(rows, knob, fixed, base[fixed], variant)
                label, colour = LINES.get(variant, (variant, None))
                xs, ys = [r[knob] for r in curve], [r[metric] for r in curve]
                ax.plot(xs, ys, marker="o", color=colour, label=label)
            ax.set_xscale("log", base=2)
            ticks = sorted({r[knob] for r in rows})
            ax.set_xticks(ticks, labels=[str(t) for t in ticks])
            ax.minorticks_off()
            ax.set(
                title=f"{labels.get(name, name)}, {fixed} = {base[fixed]}",
                xlabel=xlabel,
                ylabel="peak RSS (MB, process tree)" if metric == "peak_rss_mb" else "samples/s",
            )
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        paths.append(save(fig, plots / file))
    return paths


def plot_convert(convert: dict[str, Any], plots: Path) -> list[Path]:
    """(d) converter MB/s of source per dataset: one shard task in-process, whole convert at 1/2 workers."""
    rows = convert["results"]
    bars = [
        ("per_worker_mb_s", "one shard task (per worker)"),
        ("total_mb_s_1_worker", "whole convert, 1 worker"),
        ("total_mb_s_2_workers", "whole convert, 2 workers"),
    ]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(bars)
    for number, (key, label) in enumerate(bars):
        xs = [i + (number - (len(bars) - 1) / 2) * width for i in range(len(rows))]
        ax.bar(xs, [r[key] for r in rows], width, label=label)
    ax.set_xticks(range(len(rows)), labels=[r["dataset"] for r in rows])
    ax.set(ylabel="MB/s of source", title="Converter throughput")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return [save(fig, plots / "convert_throughput.png")]


def plot_convert_plan(convert_plan: dict[str, Any], plots: Path) -> list[Path]:
    """(e) converter planning (metadata read + estimate + shard plan) time and memory against episodes."""
    rows = convert_plan["results"]
    episodes = [r["episodes"] for r in rows]
    target = convert_plan["target"]
    fig, (time_ax, rss_ax) = plt.subplots(1, 2, figsize=(10, 4))
    time_ax.plot(episodes, [r["total_s"] for r in rows], "o-", label="total")
    time_ax.plot(episodes, [r["metadata_read_s"] for r in rows], "s--", label="metadata read")
    time_ax.plot(episodes, [r["estimate_and_plan_s"] for r in rows], "^--", label="estimate + shard plan")
    time_ax.axhline(target["total_s"], color="C3", ls=":", label=f"target ({target['total_s']} s)")
    # log: the 1k and 10k points are 70x and 13x below the 130k one
    time_ax.set(ylabel="seconds (log)", yscale="log", title="Converter planning time")
    rss_ax.plot(episodes, [r["process_peak_rss_mb"] for r in rows], "o-", label="process peak RSS")
    rss_ax.plot(episodes, [r["rss_growth_mb"] for r in rows], "s--", label="held by source + plan")
    rss_ax.axhline(target["process_peak_rss_mb"], color="C3", ls=":", label="target (1 GB)")
    rss_ax.set(ylabel="MB", title="Converter planning memory")
    for ax in (time_ax, rss_ax):
        ax.set(xscale="log", xlabel=f"episodes ({convert_plan['layout']['cameras']} cameras)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return [save(fig, plots / "convert_plan.png")]


def plot_workers(workers: dict[str, Any], plots: Path) -> list[Path]:
    """(f) whole-convert MB/s of source against the source's size, 1 vs 2 workers, and the crossover."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for count, rows in workers_best(workers).items():
        xs, ys = [r["source_mb"] for r in rows], [r["mb_per_s"] for r in rows]
        ax.plot(xs, ys, "o-", label=f"{count} worker{'s' if count > 1 else ''}")
    interpolated, measured = workers.get("crossover_interpolated_mb"), workers.get("crossover_measured_mb")
    if interpolated is not None or measured is not None:
        how = "interpolated" if interpolated is not None else "first measured size faster"
        crossing = interpolated if interpolated is not None else measured
        ax.axvline(crossing, color="C3", ls=":", label=f"crossover ~{fmt_number(crossing)} MB ({how})")
    sizes = sorted({r["source_mb"] for r in workers["rows"]})
    ax.set(xscale="log", xlabel="source MB (first N episodes)", ylabel="MB/s of source (best run)")
    ax.set_xticks(sizes, labels=[fmt_number(x) for x in sizes])
    ax.minorticks_off()
    ax.set(title="convert: 1 vs 2 workers")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return [save(fig, plots / "convert_workers.png")]


def plot_soak(soak: dict[str, Any], plots: Path) -> list[Path]:
    """RSS, open fds and threads of the soak's job over time; a line at each kill (red) and hang (orange)."""
    samples = soak["samples"]
    minutes = [s["t_s"] / 60 for s in samples]
    events = []
    for attempt in soak["attempts"]:
        ends = [s["t_s"] for s in samples if s["attempt"] == attempt["index"]]
        if attempt["event"] and ends:
            events.append((max(ends) / 60, "orange" if attempt["event"] == "hang" else "red"))
    fig, axes = plt.subplots(3, 1, figsize=(9, 7), sharex=True)
    rows = [("rss_mb", "RSS, job processes (MB)"), ("fds", "open fds"), ("threads", "threads")]
    for ax, (key, label) in zip(axes, rows, strict=True):
        ax.plot(minutes, [s[key] for s in samples], lw=0.8)
        ax.set_ylabel(label)
        for at, color in events:
            ax.axvline(at, color=color, lw=0.6, alpha=0.7)
    axes[-1].set_xlabel("minutes (lines: the end of an attempt killed (red) or hung (orange))")
    return [save(fig, plots / "soak.png")]
