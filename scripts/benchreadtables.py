"""plot_bench.py's markdown tables of the reader's results: reading, stacks, blocks, sweep, threads,
mixtures, streaming from S3."""

from __future__ import annotations

from typing import Any

from benchrows import LEGACY, LINES, TIMES, by_dataset, fmt_number, limits, name_of, readers, table, value


def machine_line(m: dict[str, Any] | str) -> str:
    """The machine a results file was measured on, with versions, commit and load when recorded (benchenv)."""
    if isinstance(m, str):  # results files written before scripts/benchenv.py
        return m
    parts = [f"{m['cpus']} CPUs ({m['machine']}, Python {m['python']})"]
    if m.get("versions"):
        parts.append(", ".join(f"{k} {v}" for k, v in m["versions"].items()))
    if m.get("git_commit"):
        parts.append(f"commit {m['git_commit']}")
    if m.get("load_avg_1_5_15"):
        parts.append(f"load average {m['load_avg_1_5_15'][0]:g} at the end")
    return "; ".join(parts)


def source_line(record: dict[str, Any], name: str) -> str:
    workload = ""
    if {"batches", "batch_size", "warmup_batches"} <= record.keys():
        workload = (
            f"; batch {record['batch_size']}, {record['warmup_batches']} warm-up + "
            f"{record['batches']} timed batches per measurement"
        )
    command = record.get("command", f"python scripts/bench_{name.removesuffix('.json')}.py")
    where = machine_line(record["machine"])
    return f"From `benchmarks/results/{name}`, made by `{command}` on {where}{workload}."


def compared_with(read: dict[str, Any], key: str) -> tuple[str | None, str | None]:
    """(LeRobot peer, decode limit) of a row of ours; (None, None) for LeRobot's rows and the limits."""
    variants = read.get("variants")
    if variants is not None:
        variant = variants.get(key)
        return (variant["peer"], variant["limit"]) if variant else (None, None)
    legacy = key.startswith("ours")
    return LEGACY if legacy else (None, None)


def read_rows_intro(read: dict[str, Any]) -> str:
    """What every row is, from the definitions bench_read.py recorded in read.json."""
    if "variants" not in read:
        return ""
    lines = ["| row | what | compared with |", "|---|---|---|"]
    for key, options in read.get("lerobot", {}).items():
        lines.append(f"| {name_of(key)} | `LeRobotDataset({options})` + DataLoader(batch_size="
                     f"{read['batch_size']}, shuffle=True) | |")  # fmt: skip
    for key, variant in read["variants"].items():
        loader = f"DataLoader(batch_size={variant['loader_batch_size']})"
        what = f"`ShardedLeRobotDataset({variant['reader']})` + {loader}" + (
            f": {variant['note']}" if variant.get("note") else ""
        )
        peer = f"{name_of(variant['peer'])}, {name_of(variant['limit'])}"
        lines.append(f"| {name_of(key)} | {what} | {peer} |")
    for key, what in read.get("limits", {}).items():
        lines.append(f"| {name_of(key)} | {what} | |")
    return "\n".join(lines)


def dataset_tables(read: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """One dataset: a line per reader row and limit, samples/s / peak RSS / diversity per num_workers."""
    rows = sorted(rows, key=lambda r: r["num_workers"])
    ws = [f"w{r['num_workers']}" for r in rows]
    header = ["row", *(f"samples/s {w}" for w in ws), *(f"peak RSS MB {w}" for w in ws)]
    header += [f"distinct episodes/batch {w}" for w in ws]
    lines = []
    for key in [*readers(rows), *limits(rows)]:
        peer, limit = compared_with(read, key)
        speed, memory = [], []
        for r in rows:
            ours, rss = value(r.get(key), "samples_per_s"), value(r.get(key), "peak_rss_mb")
            top, bottom = value(r.get(peer), "samples_per_s"), value(r.get(limit), "samples_per_s")
            notes = [f"{ours / top:.2f}{TIMES}"] if ours and top else []
            notes += [f"{ours / bottom:.0%}"] if ours and bottom else []
            speed.append(fmt_number(ours) + (f" ({', '.join(notes)})" if notes else ""))
            peer_rss = value(r.get(peer), "peak_rss_mb")
            memory.append(fmt_number(rss) + (f" ({rss / peer_rss:.2f}{TIMES})" if rss and peer_rss else ""))
        distinct = [value(r.get(key), "distinct_episodes_per_batch") or "-" for r in rows]
        lines.append([name_of(key), *speed, *memory, *distinct])
    parts = [table(header, lines)]
    keys = list(dict.fromkeys(k for r in rows for k in r.get("ratios", {})))
    if keys:
        ratio_rows = [[ratio_name(k), *(fmt_ratio(r.get("ratios", {}).get(k)) for r in rows)] for k in keys]
        parts += ["Ratios (same run):", table(["ratio", *ws], ratio_rows)]
    return "\n\n".join(parts)


def ratio_name(key: str) -> str:
    """'drop_in_rss_vs_lerobot_uint8' -> 'peak RSS: ours drop-in / LeRobot 0.6.1 uint8'."""
    top, bottom = key.split("_vs_", 1)
    metric = "samples/s"
    if top.endswith("_rss"):
        top, metric = top.removesuffix("_rss"), "peak RSS"
    return f"{metric}: {name_of(top)} / {name_of(bottom)}"


def fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}{TIMES}"


def read_tables(read: dict[str, Any], labels: dict[str, str]) -> str:
    parts = [read_rows_intro(read)] if "variants" in read else []
    parts.append(
        f"Per dataset: samples/s (in brackets, for ours: {TIMES} its LeRobot row, the one with the same "
        f"frame dtype; share of its decode limit), peak RSS of the process tree in MB ({TIMES} its LeRobot "
        "row), distinct episodes per batch; wN = DataLoader(num_workers=N)."
    )
    for name, rows in by_dataset(read["results"]).items():
        parts += [f"#### {labels.get(name, name)}", dataset_tables(read, rows)]
    return "\n\n".join(parts)


def sweep_table(sweep: dict[str, Any], labels: dict[str, str]) -> str:
    header = ["dataset", "episodes", "workers", "variant", "episode_pool_size", "action steps"]
    header += ["samples/s", "peak RSS (MB)", "distinct episodes per batch"]
    rows = [
        [labels.get(r["dataset"], r["dataset"]), r.get("num_episodes", ""), r["num_workers"],
         LINES.get(r["variant"], (r["variant"],))[0], r["episode_pool_size"], r["action_steps"],
         fmt_number(r.get("samples_per_s")), fmt_number(r.get("peak_rss_mb")),
         r.get("distinct_episodes_per_batch", "error")]
        for r in sweep["results"]
    ]  # fmt: skip
    base = sweep["base"]
    return (
        f"One knob at a time: the pool size at {base['action_steps']} action steps, the action window "
        f"at a pool of {base['episode_pool_size']} episodes (a pool larger than the dataset holds all "
        "of it).\n\n" + table(header, rows)
    )


def remote_table(remote: dict[str, Any]) -> str:
    intro = (
        "S3 (SeaweedFS on 127.0.0.1) through a proxy adding a latency to every request and capping all "
        "responses at a bandwidth, against the same shards on local disk; reader options "
        f"{remote['reader_options']}. First batch: from the dataset's construction."
    )
    header = ["dataset", "link", "workers", "local samples/s", f"S3 samples/s ({TIMES} local)"]
    header += [f"S3 without read-ahead ({TIMES} local)", "first batch s: local / S3 / S3 without read-ahead"]
    rows = []
    for r in remote["results"]:
        local, ahead, on_demand = r["local"], r["remote"], r["remote_on_demand"]
        ahead_cell = f"{fmt_number(value(ahead, 'samples_per_s'))} ({r.get('remote_vs_local', '-')}{TIMES})"
        on_demand_ratio = r.get("remote_on_demand_vs_local", "-")
        on_demand_cell = f"{fmt_number(value(on_demand, 'samples_per_s'))} ({on_demand_ratio}{TIMES})"
        first_batch = " / ".join(fmt_number(value(c, "first_batch_s")) for c in (local, ahead, on_demand))
        link = f"{r['latency_ms']:g} ms, {r['bandwidth_mb_s']:g} MB/s"
        local_cell = fmt_number(value(local, "samples_per_s"))
        rows.append(
            [r["dataset"], link, r["num_workers"], local_cell, ahead_cell, on_demand_cell, first_batch]
        )
    return f"{intro}\n\n{table(header, rows)}"


def mixture_table(record: dict[str, Any]) -> str:
    header = [
        "dataset",
        "workers",
        "source a alone",
        "source b alone",
        "mixture",
        "expected",
        "mixture / expected",
    ]
    rows = [
        [r["dataset"], r["num_workers"],
         *(fmt_number(r[f"{k}_samples_per_s"]) for k in ("a", "b", "mixture", "expected")),
         r["mixture_vs_expected"]]
        for r in record["results"]
    ]  # fmt: skip
    intro = (
        f"Samples/s of `MixedDataset([a, b], weights={record['weights']})` against its two sources streamed "
        "alone (each dataset's first and second half of episodes), batch 32. Expected: the rate of "
        "alternating the sources at those weights; mixture / expected is the mixture's own cost (1.0: none)."
    )
    return intro + "\n\n" + table(header, rows)


def threads_table(threads: dict[str, Any]) -> str:
    intro = (
        "torchcodec alone (the decode limit of the read workload) with `num_ffmpeg_threads` per decoder: "
        "1 is torchcodec's default and the reader's; 0 lets FFmpeg choose."
    )
    keys = sorted({k for r in threads["results"] for k in r if k.startswith("ffmpeg_threads_")})
    names = ["auto" if k == "ffmpeg_threads_0" else k.removeprefix("ffmpeg_threads_") for k in keys]
    header = ["dataset", "workers", *(f"{name} threads, samples/s" for name in names)]
    rows = [[r["dataset"], r["num_workers"], *(fmt_number(value(r[k], "samples_per_s")) for k in keys)]
            for r in threads["results"]]  # fmt: skip
    return f"{intro}\n\n{table(header, rows)}"


def stack_line(name: str, stack: dict[str, Any]) -> str:
    versions = stack.get("versions", {})
    listed = ", ".join(
        f"{k} {versions[k]}" for k in ("torch", "torchcodec", "av", "lerobot") if k in versions
    )
    return f"- {name}: {listed} (`{stack['python']}`)"


def stack_cell(cell: Any, peer: Any, metric: str, base: Any = None) -> str:
    """A measurement, in brackets x its LeRobot peer and x the first stack's (both from this run)."""
    ours, top, first = value(cell, metric), value(peer, metric), value(base, metric)
    notes = [f"{ours / top:.2f}{TIMES} LeRobot"] if ours and top else []
    notes += [f"{ours / first:.2f}{TIMES} {base['_stack']}"] if ours and first else []
    return fmt_number(ours) + (f" ({', '.join(notes)})" if notes else "")


def stacks_dataset_table(record: dict[str, Any], rows: list[dict[str, Any]], metric: str) -> str:
    """One dataset, one metric: a line per row, a column per (num_workers, stack); LeRobot once per w."""
    stacks = [s for s in record["stacks"] if s != "lerobot"]
    rows = sorted(rows, key=lambda r: r["num_workers"])
    header = ["row", *(f"w{r['num_workers']} {s}" for r in rows for s in stacks)]
    lines = []
    for key in record.get("lerobot", {}):
        lines.append([name_of(key), *(fmt_number(value(r.get(key), metric)) if i == 0 else "" for r in rows
                                      for i, _ in enumerate(stacks))])  # fmt: skip
    keys = [*record["variants"], *record["limits"]]
    for key in keys:
        peer = record["variants"].get(key, {}).get("peer")
        cells = []
        for r in rows:
            first = {**r["stacks"][stacks[0]].get(key, {}), "_stack": stacks[0]}
            for i, stack in enumerate(stacks):
                cells.append(
                    stack_cell(r["stacks"][stack].get(key), r.get(peer), metric, first if i else None)
                )
        lines.append([name_of(key), *cells])
    return table(header, lines)


def stacks_tables(record: dict[str, Any], labels: dict[str, str]) -> str:
    stacks = "\n".join(stack_line(name, stack) for name, stack in record["stacks"].items())
    intro = (
        "The same rows and decode limits as above, each measured under every stack (interpreter) in one "
        "run; LeRobot in its own venv, once per num_workers. In brackets: "
        f"{TIMES} the LeRobot row with the same frame dtype, {TIMES} the first stack. Stacks:\n\n{stacks}"
    )
    parts = [intro]
    for name, rows in by_dataset(record["results"]).items():
        parts += [
            f"#### {labels.get(name, name)}: samples/s",
            stacks_dataset_table(record, rows, "samples_per_s"),
        ]
        parts += [
            f"#### {labels.get(name, name)}: peak RSS MB",
            stacks_dataset_table(record, rows, "peak_rss_mb"),
        ]
    return "\n\n".join(parts)


BLOCKS = {  # bench_blocks.py's measurements: what each row is
    "decoder_forward": "VideoDecoder, forward (get_frames_in_range, 32 per call)",
    "decoder_random_pairs": "VideoDecoder, random 2-frame windows (get_frames_at)",
    "blocks_forward": "Demuxer -> VideoPacketDecoder -> ColorConverter, forward, 1 thread",
    "blocks_forward_2_threads": "the same, colour conversion on a 2nd thread",
}


def blocks_table(record: dict[str, Any]) -> str:
    """Frames/s of each decode path per stack (one core unless named), then the frame-index costs."""
    stacks = list(record["stacks"])
    parts = ["\n".join(stack_line(name, stack) for name, stack in record["stacks"].items())]
    index_costs = {
        "scan_ms": "VideoStream.scan() of the file, ms",
        "pyav_index_ms": "probe: PyAV container index, ms",
        "pyav_demux_ms": "probe fallback: PyAV demux of every packet, ms",
    }
    for row in record["results"]:
        cells = row["stacks"]
        lines = []
        for key, what in BLOCKS.items():
            speeds = [value(cells[s].get(key), "frames_per_s") for s in stacks]
            lines.append([what, *("-" if x is None else fmt_number(x) for x in speeds)])
        for key, what in index_costs.items():
            lines.append([what, *(value(cells[s].get("scan_ms"), key) or "-" for s in stacks)])
        for key, what in (("torch_mb", "RSS of `import torch`, MB"), ("torchcodec_mb", "then torchcodec, MB"),
                          ("first_decode_mb", "then one decoder, 3 frames, MB"),
                          ("torchcodec_import_s", "torchcodec's import (after torch), s")):  # fmt: skip
            lines.append([what, *(value(cells[s].get("import_rss_mb"), key) or "-" for s in stacks)])
        equal = [value(cells[s].get("blocks_equal"), "equal") for s in stacks]
        lines.append(["blocks' frames equal VideoDecoder's", *("-" if e is None else str(e) for e in equal)])
        parts.append(f"{row['dataset']}, first camera, {row['frames']} frames from its first episode:")
        parts.append(table(["measurement", *stacks], lines))
    return "\n\n".join(parts)
