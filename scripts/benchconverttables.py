"""plot_bench.py's markdown tables of the converter's and the cluster's results: converting, planning,
remote sources, the Hub, the DROID rehearsal, balance, the soak."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchrows import TIMES, table, workers_best


def convert_table(convert: dict[str, Any]) -> str:
    header = ["dataset", "source MB", "one shard task MB/s", "convert MB/s, 1 worker"]
    header += ["convert MB/s, 2 workers", "size vs source (default shards)", "size vs source (4 shards)"]
    rows = [
        [r["dataset"], r["source_mb"], r["per_worker_mb_s"], r["total_mb_s_1_worker"],
         r["total_mb_s_2_workers"], f"{r['overhead_default_shards']:+.1%}", f"{r['overhead_4_shards']:+.1%}"]
        for r in convert["results"]
    ]  # fmt: skip
    return table(header, rows)


def plan_table(plan: dict[str, Any]) -> str:
    r = plan["result"]
    header = ["episodes", "frames", "manifest MB", "parse s", "plan_slot s", "total s"]
    header += ["held by manifest + plan (MB)", "process peak RSS (MB)"]
    cells = [f"{r['episodes']:,}", f"{r['frames']:,}", r["manifest_mb"], r["parse_s"], r["plan_slot_s"]]
    cells += [r["total_s"], r["rss_growth_mb"], r["process_peak_rss_mb"]]
    return table(header, [cells])


def convert_plan_table(convert_plan: dict[str, Any]) -> str:
    layout = convert_plan["layout"]
    intro = (
        f"`convert`'s planning (what `convert --dry-run` runs) on a synthetic LeRobot v3 source: "
        f"{layout['cameras']} cameras, {layout['frames_per_episode']} frames per episode, "
        f"{layout['episodes_per_video_file']} episodes per mp4 and {layout['episodes_per_data_file']:,} per "
        "data file (sparse files: real sizes, no bytes), shards of "
        f"{layout['shard_size_mb']:g} MB. Peak RSS includes the "
        f"{convert_plan['results'][0]['rss_before_mb']} MB of Python and the converter's imports."
    )
    if "lazy_import_s" in convert_plan["results"][0]:
        imports = [r["lazy_import_s"] for r in convert_plan["results"]]
        intro += (
            f" pandas, which the first source opened in a process imports ({min(imports)}-{max(imports)} s, "
            "once), is imported before the timings."
        )
    if "load_avg_before_after" in convert_plan:
        load = convert_plan["load_avg_before_after"]
        intro += f" Load average (1/5/15 min) {load[:3]} before, {load[3:]} after."
    header = ["episodes", "frames", "source files", "shards", "metadata read s", "estimate + plan s"]
    header += ["total s", "held by source + plan (MB)", "process peak RSS (MB)"]
    rows = [
        [f"{r['episodes']:,}", f"{r['frames']:,}", f"{r['source_files']:,}", f"{r['shards']:,}",
         r["metadata_read_s"], r["estimate_and_plan_s"], r["total_s"], r["rss_growth_mb"],
         r["process_peak_rss_mb"]]
        for r in convert_plan["results"]
    ]  # fmt: skip
    return f"{intro}\n\n{table(header, rows)}"


def workers_table(workers: dict[str, Any]) -> str:
    load = workers["load_avg_before_after"]
    intro = (
        f"Source: {workers['source']}. Best of the runs per size and worker count (wall seconds of "
        f"every run in the results file); load average (1/5/15 min) {load[:3]} before, {load[3:]} after."
    )
    by_workers = workers_best(workers)
    header = ["episodes", "source MB", "shards", "1 worker MB/s (best s)", "2 workers MB/s (best s)"]
    header += ["2 workers / 1 worker (speed)"]
    rows = []
    for one, two in zip(by_workers[1], by_workers[2], strict=True):
        rows.append([one["episodes"], one["source_mb"], one["shards"],
                     f"{one['mb_per_s']} ({min(one['wall_s'])})", f"{two['mb_per_s']} ({min(two['wall_s'])})",
                     f"{two['mb_per_s'] / one['mb_per_s']:.2f}{TIMES}"])  # fmt: skip
    measured = workers.get("crossover_measured_mb")
    interpolated = workers.get("crossover_interpolated_mb")
    if "crossover_measured_mb" in workers:  # bench_workers.py with a measured crossover
        found = f"{workers['crossover_note']}"
        found += f"; smallest measured size where 2 workers are faster: {measured} MB" if measured else ""
        found += f"; interpolated: {interpolated} MB" if interpolated else ""
        modelled, modelled_note = workers["crossover_modelled_mb"], workers["modelled_note"]
    else:  # an older file: the model only
        found = "not measured (this results file has the model only)"
        modelled, modelled_note = workers["crossover_mb"], workers["crossover_note"]
    lines = [
        f"Crossover: {found}.",
        f"Model ({workers['model']}): R = {workers['rate_mb_s_1_worker']} MB/s, c1 = {workers['c1_s']} s, "
        f"c2 = {workers['c2_s']} s: crossover {modelled} MB ({modelled_note}).",
    ]
    return f"{intro}\n\n{table(header, rows)}\n\n" + "\n".join(f"- {line}" for line in lines)


def routes_table(routes: dict[str, Any]) -> str:
    intro = (
        f"Source: {routes['source']} ({routes['source_mb']} MB, {routes['episodes']} episodes, shards of "
        f"{routes['shard_size_mb']:g} MB: {routes['shards']} shards). Every route run as its own CLI "
        f"process(es); wall time from the first process's start to the last one's end, best of "
        f"{routes['repeats']}. Same bytes: sha256 of every file of each destination against the local "
        f"1-worker route's. Load average (1/5/15 min) {routes['load_avg_before_after'][:3]} before, "
        f"{routes['load_avg_before_after'][3:]} after."
    )
    header = ["route", "what runs", "wall s (best)", "wall s (every run)", f"wall {TIMES} local, 1 worker"]
    header += ["same bytes"]
    local = min(routes["routes"][0]["wall_s"])
    rows = [
        [r["route"], r["what"], min(r["wall_s"]), ", ".join(str(t) for t in r["wall_s"]),
         f"{min(r['wall_s']) / local:.2f}{TIMES}", "yes" if r["same_bytes"] else "**no**"]
        for r in routes["routes"]
    ]  # fmt: skip
    return f"{intro}\n\n{table(header, rows)}"


def remote_source_table(record: dict[str, Any]) -> str:
    intro = (
        "Converting from `s3://` (SeaweedFS on 127.0.0.1), one `--tasks T --task-index I` part per shard, "
        "each with a cache folder of its own (as on separate machines). Each task reads by byte ranges: "
        "per parquet file its footer and the column chunks of its episodes' row groups, per mp4 its index "
        "and its episodes' packets. Downloaded: the tasks' own count (datatrove stats), against the "
        "converted episodes' bytes (every episode: the source's data and video files). Shards byte-equal "
        "to the local conversion's."
    )
    header = ["dataset", "episodes MB", "tasks", "downloaded MB", "downloaded / episodes", "GETs",
              "parts wall s"]  # fmt: skip

    def rows(results: list[dict[str, Any]]) -> list[list[Any]]:
        return [[r["dataset"], r["episodes_mb"], r["tasks"], r["downloaded_mb"], r["downloaded_vs_episodes"],
                 r["requests"], r["parts_wall_s"]] for r in results]  # fmt: skip

    results = [r for r in record["results"] if not r.get("larger_tasks")]
    parts = [intro, "Byte ranges:", table(header, rows(results))]
    larger = [r for r in record["results"] if r.get("larger_tasks")]
    if larger:
        parts += ["Larger tasks (fewer per dataset), where the fixed costs per task shrink:",
                  table(header, rows(larger))]  # fmt: skip
    if any(r.get("breakdown_bytes") for r in results):
        parts += [_BREAKDOWN_INTRO, breakdown_table(results + larger)]
    if record.get("baseline"):
        baseline = [r for r in record["baseline"] if not r.get("larger_tasks")]
        parts += [
            "The previous route (whole files downloaded per task), same runs:",
            table(header, rows(baseline)),
        ]
    load = record.get("load_avg_before_after")
    if load:
        parts.append(f"Load average (1, 5, 15 min) before and after: {load[:3]} / {load[3:]}.")
    return "\n\n".join(parts)


_BREAKDOWN_INTRO = (
    "Where the downloaded bytes went, MB over all tasks (`scripts/byte_ledger.py`, from each file's layout): "
    "packets of the task's episodes and of others (a forward seek of under 32 KiB is a read in FFmpeg's "
    "avio; PyAV's open reads the file's first packet), the mp4s' boxes (moov) once per task and file, "
    "parquet footers, row-group column chunks split by the share of rows the task converts (a column chunk "
    "is one compressed unit), bytes fetched twice, read-ahead never used."
)


_BREAKDOWN = ("packets_task", "packets_other", "mp4_boxes", "parquet_footer", "parquet_rows_needed",
              "parquet_rows_other", "parquet_other", "fetched_twice", "read_ahead_unused")  # fmt: skip


def breakdown_table(results: list[dict[str, Any]]) -> str:
    header = ["dataset", "tasks", *(name.replace("_", " ") for name in _BREAKDOWN)]
    rows = [[r["dataset"], r["tasks"], *(round(r["breakdown_bytes"].get(n, 0) / 1e6, 3) for n in _BREAKDOWN)]
            for r in results if r.get("breakdown_bytes")]  # fmt: skip
    return table(header, rows)


def hub_staging_table(record: dict[str, Any]) -> str:
    intro = (
        "Converting to `hf://datasets/...` against the tests' stand-in repo (`tests/hubstandin.py`: the "
        "`HfApi` calls publishing makes, answered on a SeaweedFS bucket): each finished shard pre-uploaded "
        "and deleted from staging, commits of 50, the manifest last; tasks pause while staging holds "
        "`hub_staged_shards` finished shards. Peak: shard files in staging (finished or being written), "
        "sampled every 5 ms."
    )
    r = record
    header = ["source", "shards", "dataset MB", "largest shard MB", "hub_staged_shards", "workers",
              "staging peak files", "staging peak MB", "peak / dataset", "commits", "wall s"]  # fmt: skip
    row = [Path(r["source"]).name, r["shards"], r["dataset_mb"], r["largest_shard_mb"],
           r["hub_staged_shards"], r["workers"], r["staging_peak_files"], r["staging_peak_mb"],
           r["staging_peak_vs_dataset"], r["commits"], r["wall_s"]]  # fmt: skip
    return "\n\n".join([intro, table(header, [row])])


def droid_rehearsal_table(record: dict[str, Any]) -> str:
    r, source = record, record["source"]
    intro = (
        f"A DROID-shaped source ({source['episodes']:,} episodes, {source['cameras']} cameras, "
        f"{source['media_mb']} MB in {source['video_files']} mp4s and {source['data_files']} data files, "
        "made by `scripts/make_big_source.py --source ../shared/fixtures/bench --repeat 30`) on SeaweedFS, "
        f"converted into another bucket by {r['parts']} `--tasks {r['parts']} --task-index I` processes, "
        f"{r['parallel']} at a time (each with its own temp and cache folders), `--shard-size-mb "
        f"{r['shard_size_mb']:g}`, then `finalize`, then streamed back: `verify` (every byte, hashed) and "
        f"the first {r['streamed']['items']:,} decoded items of a `ShardedLeRobotDataset`."
    )
    header = ["part", "wall s", "peak RSS MB", "peak disk MB"]
    rows = [[p["part"], p["wall_s"], p["peak_rss_mb"], p["peak_disk_mb"]] for p in r["per_part"]]
    streamed = r["streamed"]
    totals = table(
        ["read MB", "read / source media", "written MB", "convert wall s", "wall s per GB", "MB/s per part",
         "verify MB/s", "items/s"],
        [[r["read_mb"], r["read_vs_media"], r["written_mb"], r["convert_wall_s"], r["wall_s_per_gb"],
          r["per_part_mb_per_s"], streamed["verify_mb_per_s"], streamed["items_per_s"]]],
    )  # fmt: skip
    projection = ", ".join(
        f"{n} machine{'s' if n != '1' else ''}: {h} h" for n, h in r["droid_projection_h"].items()
    )
    return "\n\n".join([
        intro, table(header, rows), totals,
        f"Projection to DROID (~1.7 TB) at the measured MB/s per part, one part per machine: {projection}. "
        "Measured on 2 shared cores under load (below): a machine of its own converts several times faster "
        "(stream copy; `routes.json`).",
        f"Load average (1, 5, 15 min) before and after: {r['load_avg_before_after'][:3]} / "
        f"{r['load_avg_before_after'][3:]}.",
    ])  # fmt: skip


def balance_table(record: dict[str, Any]) -> str:
    """Samples repeated per epoch, summed over all readers, by ranks x workers."""
    results, frames = record["results"], record["dataset"]["frames"]
    workers = sorted({r["workers"] for r in results})
    header = ["ranks", *(f"{w} workers" for w in workers)]
    rows = []
    for world_size in sorted({r["world_size"] for r in results}):
        row = {r["workers"]: r["frames"]["repeated"] for r in results if r["world_size"] == world_size}
        rows.append([world_size, *(f"{row[n]:,}" for n in workers)])
    intro = (
        f"Samples repeated per epoch so that every rank yields the same number (DDP), summed over all "
        f"readers, on a synthetic {record['dataset']['episodes']:,}-episode manifest ({frames:,} frames). "
        "Each reader streams an equal range of the epoch's frames: at most one repeat per reader and fewer "
        "than the world size per epoch (exactly `-frames % world_size`); 0 workers reads as one worker."
    )
    return intro + "\n\n" + table(header, rows)


def cluster_plan_table(record: dict[str, Any]) -> str:
    names = {"plan": "fresh epoch", "elastic": "elastic resume 64x8 -> 32x8, halfway"}
    header = ["start", "manifest parse s", "first batch's plan s", "held MB", "peak RSS MB", "state bytes",
              "load avg"]  # fmt: skip
    rows = [
        [names[str(r["case"])], r["parse_s"], r["first_batch_plan_s"], r["rss_growth_mb"],
         r["process_peak_rss_mb"], r["elastic_state_bytes"] or "", r["load_avg_1min"]]
        for r in record["results"]
    ]  # fmt: skip
    intro = (
        "One reader among 512 (64 ranks x 8 workers) on a synthetic DROID-size manifest (130,000 episodes, "
        "25.9M frames): the manifest's parse, then the plan up to the first batch's 32 draws (no bytes "
        "read, no decoding), memory held, and the `elastic_state` size."
    )
    return intro + "\n\n" + table(header, rows)


def soak_table(soak: dict[str, Any]) -> str:
    kills = ", ".join(f"{n} {kind}" for kind, n in sorted(soak["kills"].items()))
    faults = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in soak["faults_injected"].items())
    hangs = [a["hang_to_exit_s"] for a in soak["attempts"] if a["hang_to_exit_s"] is not None]
    grown = soak["growth"]
    rows = [
        ["duration", f"{soak['duration_s'] / 60:.1f} min"],
        ["epochs checked / samples checked", f"{len(soak['epochs'])} / {soak['samples_checked']:,}"],
        ["lost / repeated beyond padding", f"{soak['lost']} / {soak['repeated']}"],
        ["kills (SIGKILL)", f"{soak['num_kills']}: {kills}"],
        ["resumes (elastic)", f"{soak['resumes']} ({soak['elastic_resumes']})"],
        ["batches rolled back to a checkpoint", soak["rolled_back_batches"]],
        ["faults injected", f"{soak['num_faults']}: {faults}"],
        ["hung server -> job ended (s)", ", ".join(f"{h:g}" for h in hangs) or "none"],
        [
            "peak RSS, job / one process (MB)",
            f"{soak['peak_job_rss_mb']:.0f} / {soak['peak_process_rss_mb']:.0f}",
        ],
        [
            "largest growth in an attempt, 2nd to last epoch end: RSS (MB) / fds / threads",
            " / ".join(f"{grown[key]['max_growth']:g}" for key in ("rss_mb", "fds", "threads")),
        ],
        ["epochs in the longest attempt", max(len(v) for v in grown["epoch_ends"].values())],
        ["peak open fds / threads", f"{soak['peak_fds']:.0f} / {soak['peak_threads']:.0f}"],
        ["processes that outlived their job", sum(a["outlived"] for a in soak["attempts"])],
        ["errors", len(soak["errors"])],
    ]
    intro = (
        f"{soak['layout'][0]} ranks (gloo) x {soak['layout'][1]} DataLoader workers on `multi` (1,852 "
        "frames) from SeaweedFS on loopback through the fault proxy, killed and resumed on a seeded "
        f"schedule (batch {soak['batch_size']}, a checkpoint every {soak['save_every']} steps, "
        f"`RetryPolicy(timeout_s={soak['read_timeout_s']:g})`); the ledger of every rank checked per epoch."
    )
    return intro + "\n\n" + table(["figure", "value"], rows)
