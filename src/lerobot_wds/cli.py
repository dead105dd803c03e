"""``lerobot-wds check|convert|finalize|verify|inspect|preview|export``: flags to a config, then one call."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .converter import (
    ConversionPlan,
    ConvertConfig,
    ConvertProgress,
    ExportConfig,
    ExportProgress,
    SlurmConfig,
    convert,
    convert_part,
    export,
    finalize,
    inspect_dataset,
    plan_conversion,
    submit_slurm,
    verify,
)
from .converter.check import LEVELS, CheckConfig, check_source
from .converter.convert import DEFAULT_HUB_STAGED_SHARDS, DEFAULT_SHARD_SIZE_MB, ConvertResult
from .converter.reencode import VCODECS
from .converter.verify import camera_summary


def _episodes(text: str) -> tuple[int, ...]:
    """``0,3,5-9`` -> (0, 3, 5, 6, 7, 8, 9)."""
    indices: list[int] = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        try:
            indices += range(int(first), int(last) + 1) if dash else [int(first)]
        except ValueError:
            raise argparse.ArgumentTypeError(f"--episodes: got {text!r}; expected e.g. '0,3,5-9'") from None
    return tuple(indices)


def _output_options(parser: argparse.ArgumentParser, default: Any) -> argparse.ArgumentParser:
    """``-v``/``-q``, accepted before the command and after it (``default=SUPPRESS`` in the commands
    keeps a value given before the command)."""
    parser.add_argument("-v", "--verbose", action="store_true", default=default, help="log at INFO level")
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default,
        help="no progress bars nor summaries: only problems and errors",
    )
    return parser


def _parser() -> argparse.ArgumentParser:
    parser = _output_options(argparse.ArgumentParser(prog="lerobot-wds", description=__doc__), False)
    output = _output_options(argparse.ArgumentParser(add_help=False), argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)

    chk = commands.add_parser(
        "check",
        parents=[output],
        help="report every defect of a LeRobot v3 source (exit 1 if any error, 0 if clean)",
    )
    chk.add_argument(
        "source", help="local LeRobot v3 folder, Hub dataset repo id or URL (s3://, hf://datasets/)"
    )
    chk.add_argument("--revision", help="Hub revision of the source (branch, tag or commit)")
    chk.add_argument("--episodes", type=_episodes, help="episode indices to check, e.g. '0,3,5-9'")
    chk.add_argument(
        "--level",
        choices=LEVELS,
        default="videos",
        help="meta: metadata and file existence only; rows: + data files' index columns; videos: + each "
        "mp4's packet index, without decoding (default: %(default)s); deep: + each episode's segment cut "
        "as convert cuts it, then decoded (local sources)",
    )
    chk.add_argument("--deep", action="store_true", help="same as --level deep")
    chk.add_argument(
        "--json", action="store_true", help="print the findings as JSON (documented in FORMAT.md)"
    )

    conv = commands.add_parser(
        "convert", parents=[output], help="convert a LeRobot v3 dataset into episode tar shards"
    )
    conv.add_argument(
        "source",
        help="local LeRobot v3 folder, Hub dataset repo id (owner/name) or URL (s3://, hf://datasets/)",
    )
    conv.add_argument("dest", help="destination folder or fsspec URL (s3://..., hf://...)")
    conv.add_argument("--revision", help="Hub revision of the source (branch, tag or commit)")
    conv.add_argument("--episodes", type=_episodes, help="episode indices to convert, e.g. '0,3,5-9'")
    conv.add_argument(
        "--shard-size-mb",
        type=float,
        default=DEFAULT_SHARD_SIZE_MB,
        help="target shard size in MB (default: %(default)s)",
    )
    conv.add_argument("--workers", type=int, default=1, help="shards converted in parallel (default: 1)")
    conv.add_argument(
        "--vcodec",
        choices=VCODECS,
        default="copy",
        help="copy: keep the source video bytes (default); h264/hevc: re-encode each episode once, "
        "e.g. for NVDEC, which cannot decode AV1 on A100/H100",
    )
    conv.add_argument(
        "--crf", type=int, default=23, help="quality of a re-encode: 0 (lossless) to 51 (default: 23)"
    )
    conv.add_argument(
        "--overwrite", action="store_true", help="delete what the destination holds and start over"
    )
    conv.add_argument(
        "--staging-dir",
        help="hf://datasets destinations: local folder the shards are written to, each uploaded and deleted "
        "once finished (default: ~/.cache/lerobot-wds/staging/<repo>)",
    )
    conv.add_argument(
        "--hub-staged-shards",
        type=int,
        default=DEFAULT_HUB_STAGED_SHARDS,
        help="hf://datasets destinations: finished shards waiting for upload before tasks pause (default: 4)",
    )
    conv.add_argument(
        "--cache-dir",
        help="remote sources: where planning copies the source's meta/ "
        "(default: ~/.cache/lerobot-wds/source)",
    )
    conv.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (shards, episodes, frames, estimated source bytes per shard) and write nothing",
    )
    conv.add_argument("--json", action="store_true", help="with --dry-run: print the plan as JSON")
    conv.add_argument(
        "--skip-bad-episodes",
        action="store_true",
        help="convert every episode the checks find no error in; the manifest lists the others and why",
    )
    conv.add_argument(
        "--check-level",
        choices=LEVELS,
        help="how far the checks run first go (see `check --level`; default: videos for a local source, "
        "meta for a remote one)",
    )
    _cluster_arguments(conv)

    fin = commands.add_parser(
        "finalize",
        parents=[output],
        help="publish meta/ and the manifest once every shard of a conversion is written",
    )
    fin.add_argument("dest", help="the destination the conversion's tasks wrote into")

    ver = commands.add_parser(
        "verify", parents=[output], help="re-read every shard and check it against the manifest"
    )
    ver.add_argument("url")
    ins = commands.add_parser("inspect", parents=[output], help="print a summary of a converted dataset")
    ins.add_argument("url")
    ins.add_argument("--json", action="store_true", help="print the summary as JSON, for machines")
    pre = commands.add_parser(
        "preview",
        parents=[output],
        help="render one episode as a PNG: camera strips, state/action plots, task as title",
    )
    pre.add_argument("url")
    pre.add_argument("--episode", type=int, required=True, help="episode_index of the episode to show")
    pre.add_argument("--out", help="PNG to write (default: episode_<N>.png in the current folder)")
    pre.add_argument("--frames", type=int, default=8, help="frames per camera strip (default: %(default)s)")
    exp = commands.add_parser(
        "export",
        parents=[output],
        help="write a LeRobot v3 dataset back from converted shards (videos by stream copy)",
    )
    exp.add_argument("url", help="converted dataset: local folder or fsspec URL")
    exp.add_argument("dest", help="destination folder or fsspec URL of the LeRobot v3 dataset")
    exp.add_argument("--overwrite", action="store_true", help="replace a LeRobot dataset already at dest")
    return parser


def _cluster_arguments(conv: argparse.ArgumentParser) -> None:
    spread = conv.add_argument_group("many machines (then `lerobot-wds finalize DEST`, except local/ray)")
    spread.add_argument("--tasks", type=int, help="no scheduler: split the shards into N parts ...")
    spread.add_argument("--task-index", type=int, help="... and write part I (0..N-1) only")
    spread.add_argument(
        "--executor",
        choices=("local", "ray", "slurm"),
        default="local",
        help="local: this machine (default); ray: datatrove on a Ray cluster (waits, then finalizes); "
        "slurm: submit datatrove's job array and a finalize job after it (returns at once)",
    )
    spread.add_argument("--ray-address", help="an existing Ray cluster (default: RAY_ADDRESS, else local)")
    slurm = SlurmConfig.__dataclass_fields__
    spread.add_argument("--slurm-partition", help="SLURM partition (required with --executor slurm)")
    spread.add_argument("--slurm-time", default=slurm["time"].default, help="per task (default: %(default)s)")
    spread.add_argument("--slurm-cpus-per-task", type=int, default=slurm["cpus_per_task"].default)
    spread.add_argument("--slurm-mem-per-cpu-gb", type=int, default=slurm["mem_per_cpu_gb"].default)
    spread.add_argument(
        "--slurm-max-array-size", type=int, default=slurm["max_array_size"].default, help="your MaxArraySize"
    )
    spread.add_argument(
        "--slurm-workers", type=int, default=-1, help="array tasks at once (default: no limit)"
    )
    spread.add_argument("--slurm-job-name", default=slurm["job_name"].default)
    spread.add_argument("--slurm-logs-dir", help="SLURM's log files (default: datatrove's)")
    spread.add_argument(
        "--slurm-env-command", help="shell line run first on the node, e.g. 'source venv/bin/activate'"
    )
    spread.add_argument(
        "--slurm-no-submit", action="store_true", help="write the job scripts (printed), submit nothing"
    )


def _slurm_config(args: argparse.Namespace) -> SlurmConfig:
    if not args.slurm_partition:
        raise ValueError("--executor slurm: no --slurm-partition; expected the partition to run on")
    return SlurmConfig(
        partition=args.slurm_partition,
        time=args.slurm_time,
        cpus_per_task=args.slurm_cpus_per_task,
        mem_per_cpu_gb=args.slurm_mem_per_cpu_gb,
        max_array_size=args.slurm_max_array_size,
        workers=args.slurm_workers,
        job_name=args.slurm_job_name,
        logs_dir=args.slurm_logs_dir,
        env_command=args.slurm_env_command,
        submit=not args.slurm_no_submit,
    )


def _run_spread(args: argparse.Namespace, config: ConvertConfig) -> int:
    """``--tasks/--task-index`` (one part, here) or ``--executor slurm`` (submitted)."""
    if args.executor == "slurm":
        jobs = submit_slurm(args.source, args.dest, config, slurm=_slurm_config(args))
        if jobs.array_script is None:
            print(f"{args.dest}: already converted; nothing to submit")
        elif jobs.array_job_id is None and jobs.finalize_job_id is None:
            print(
                f"{args.dest}: {jobs.num_tasks} tasks; submit: sbatch {jobs.array_script}, then once it "
                f"succeeded: sbatch {jobs.finalize_script} (or run `lerobot-wds finalize {args.dest}`)"
            )
        else:
            print(
                f"{args.dest}: submitted {jobs.num_tasks} tasks as job {jobs.array_job_id}; "
                f"finalize: job {jobs.finalize_job_id}"
            )
        return 0
    if args.tasks is None or args.task_index is None:
        raise ValueError("--tasks and --task-index: got one of them; expected both")
    part = convert_part(args.source, args.dest, config, tasks=args.tasks, task_index=args.task_index)
    span = f"{part.shards[0]}..{part.shards[-1]}" if part.shards else "no shards"
    print(
        f"{part.dest}: part {part.task_index} of {part.tasks}: {len(part.shards)} shards ({span}; "
        f"{part.shards_skipped} kept from an earlier run) in {part.elapsed_s:.1f} s; "
        f"when every part is done: lerobot-wds finalize {part.dest}"
    )
    return 0


def _run_convert(args: argparse.Namespace) -> int:
    config = ConvertConfig(
        episodes=args.episodes,
        shard_size_mb=args.shard_size_mb,
        workers=args.workers,
        revision=args.revision,
        overwrite=args.overwrite,
        vcodec=args.vcodec,
        crf=args.crf,
        staging_dir=args.staging_dir,
        hub_staged_shards=args.hub_staged_shards,
        cache_dir=args.cache_dir,
        executor="ray" if args.executor == "ray" else "local",
        ray_address=args.ray_address,
        skip_bad_episodes=args.skip_bad_episodes,
        check_level=args.check_level,
    )
    if args.dry_run:
        plan = plan_conversion(args.source, config)
        print(json.dumps(plan.to_dict()) if args.json else _plan_text(plan, config))
        return 0
    if args.json:
        raise ValueError("--json: applies to --dry-run only; add --dry-run")
    if args.executor == "slurm" or args.tasks is not None or args.task_index is not None:
        return _run_spread(args, config)
    if args.quiet:  # a Hub destination's uploads show huggingface_hub's own bars
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    with tqdm(unit="ep", desc="converting", dynamic_ncols=True, disable=args.quiet) as bar:

        def on_progress(progress: ConvertProgress) -> None:
            _show_rates(
                bar,
                progress.num_episodes,
                progress.total_episodes,
                progress.num_frames,
                progress.bytes_written,
            )

        result = convert(args.source, args.dest, config, on_progress=on_progress)
    if args.quiet:
        return 0
    manifest = result.manifest
    for line in _convert_notes(result):
        print(line)
    print(
        f"{result.dest}: {manifest.num_episodes} episodes, {manifest.num_frames} frames, "
        f"{len(manifest.shards)} shards ({result.shards_skipped} kept from an earlier run or generation), "
        f"manifest generation {manifest.generation}, "
        f"{manifest.total_bytes / 1e6:.1f} MB in {result.elapsed_s:.1f} s; "
        f"{result.source_bytes / 1e6 / max(result.elapsed_s, 1e-9):.1f} MB/s of source; "
        f"overhead vs source {result.overhead:+.2%}"
    )
    return 0


def _convert_notes(result: ConvertResult) -> list[str]:
    """Streams that differ from the source's info.json, and the skipped episodes (the checks' warnings
    were logged as they were found)."""
    lines = []
    for key in result.manifest.camera_keys:
        camera = camera_summary(result.manifest, key)
        said = camera.get("info_json_says")
        if said:
            lines.append(
                f"warning: camera {key!r}: the shards hold {camera['codec']} {camera['pix_fmt']} "
                f"{camera['width']}x{camera['height']} as copied; the source's info.json says "
                + ", ".join(f"{name} {value}" for name, value in said.items())
            )
    skipped = result.manifest.skipped_episodes
    if skipped:
        lines.append(
            f"skipped {len(skipped)} episode(s) with errors (listed in the manifest, `inspect` shows them): "
            + ", ".join(f"{s.episode_index} ({', '.join(s.checks)})" for s in skipped[:10])
            + (" ..." if len(skipped) > 10 else "")
        )
    return lines


def _run_check(args: argparse.Namespace) -> int:
    config = CheckConfig(
        episodes=args.episodes, level="deep" if args.deep else args.level, revision=args.revision
    )
    report = check_source(args.source, config)
    if args.json:
        print(json.dumps(report.to_dict(), indent=1))
    elif not args.quiet or not report.ok:
        print(report.text())
    return 0 if report.ok else 1


def _plan_text(plan: ConversionPlan, config: ConvertConfig, head: int = 5) -> str:
    """A table of the planned shards (the first and last ``head`` of many) and the total."""
    header = f"{'shard':>7}  {'episodes':>8}  {'first..last':>15}  {'frames':>10}  {'est. MB':>9}"

    def line(name: str, num_episodes: int, span: str, frames: int, size: int) -> str:
        return f"{name:>7}  {num_episodes:>8,}  {span:>15}  {frames:>10,}  {size / 1e6:>9.1f}"

    rows = plan.shard_rows()
    shown = rows if len(rows) <= 2 * head + 1 else [*rows[:head], None, *rows[-head:]]
    lines = [header]
    for row in shown:
        if row is None:
            lines.append(f"{'...':>7}  ({len(rows) - 2 * head:,} more shards)")
            continue
        episodes = row["episodes"]
        span = f"{episodes[0]}..{episodes[-1]}"
        lines.append(
            line(str(row["shard_index"]), len(episodes), span, row["num_frames"], row["estimated_bytes"])
        )
    lines.append(line("total", len(plan.episodes), "", plan.num_frames, plan.source_bytes))
    if plan.skipped:
        named = ", ".join(f"{s.episode_index} ({', '.join(s.checks)})" for s in plan.skipped[:20])
        lines.append(f"skipping {len(plan.skipped)} episode(s) with errors: {named}")
    tasks = len(plan.shards)
    lines.append(
        f"{plan.source.location}: {tasks:,} shards, {len(plan.episodes):,} episodes, "
        f"{plan.num_frames:,} frames, "
        f"~{plan.source_bytes / 1e6:,.1f} MB of source (shards of ~{config.shard_size_mb:g} MB); "
        f"{tasks:,} tasks on {min(config.workers, tasks)} worker(s); "
        "dry run: nothing written"
    )
    return "\n".join(lines)


def _run_verify(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    bar = tqdm(
        desc="verifying", unit="B", unit_scale=True, unit_divisor=1000, dynamic_ncols=True, disable=args.quiet
    )

    def on_progress(checked_bytes: int, total_bytes: int) -> None:
        bar.total = total_bytes
        bar.update(checked_bytes - bar.n)

    with bar:
        report = verify(args.url, on_progress=on_progress)
    elapsed_s = time.perf_counter() - started
    for problem in report.problems:
        print(problem)
    if args.quiet:
        return 0 if report.ok else 1
    for camera_key, values in sorted(report.psnr_db.items()):
        mean = sum(values) / len(values)
        print(f"{camera_key}: re-encoded, PSNR vs source min {min(values):.2f} dB, mean {mean:.2f} dB")
    status = "OK" if report.ok else f"{len(report.problems)} problem(s)"
    print(
        f"{args.url}: {report.shards_checked} shards, {report.episodes_checked} episodes checked in "
        f"{elapsed_s:.1f} s ({bar.n / 1e6 / max(elapsed_s, 1e-9):.1f} MB/s): {status}"
    )
    return 0 if report.ok else 1


def _show_rates(bar: tqdm, episodes: int, total: int, frames: int, num_bytes: int) -> None:
    """An episode bar's position, with frames/s and MB/s since it started."""
    bar.total = total
    bar.n = episodes
    seconds = max(bar.format_dict["elapsed"], 1e-9)
    bar.set_postfix_str(
        f"{frames / seconds:,.0f} frames/s, {num_bytes / 1e6 / seconds:.1f} MB/s", refresh=False
    )
    bar.refresh()


def _run_export(args: argparse.Namespace) -> int:
    with tqdm(unit="ep", desc="exporting", dynamic_ncols=True, disable=args.quiet) as bar:

        def on_progress(progress: ExportProgress) -> None:
            _show_rates(
                bar, progress.num_episodes, progress.total_episodes, progress.num_frames, progress.bytes_read
            )

        result = export(args.url, args.dest, ExportConfig(overwrite=args.overwrite), on_progress=on_progress)
    if args.quiet:
        return 0
    renumbered = "; episodes renumbered 0..N-1" if result.renumbered else ""
    print(
        f"{result.dest}: LeRobot v3 dataset, {result.num_episodes} episodes, {result.num_frames} frames, "
        f"{result.bytes_written / 1e6:.1f} MB in {result.elapsed_s:.1f} s{renumbered}"
    )
    return 0


def _run_inspect(args: argparse.Namespace) -> int:
    info = inspect_dataset(args.url)
    print(json.dumps(info, indent=2) if args.json else _inspect_text(info))
    return 0


def _inspect_text(info: dict[str, Any]) -> str:
    """The summary as a few aligned tables: totals, cameras, tasks."""
    shortest, mean, longest = info["episode_frames_min_mean_max"] or [0, 0, 0]
    low, high = info["shard_bytes_min_max"] or [0, 0]
    lines = [
        f"{info['url']}  (lerobot-wds format {info['format_version']}, LeRobot {info['codebase_version']}, "
        f"from {info['source']})",
        f"  episodes  {info['episodes']:>12,}   frames per episode: min {shortest:,}, mean {mean:,}, "
        f"max {longest:,}",
        f"  frames    {info['frames']:>12,}   at {info['fps']} fps",
        f"  hours     {info['hours']:>12,.3f}",
        f"  shards    {info['shards']:>12,}   {low / 1e6:,.1f}..{high / 1e6:,.1f} MB each",
        f"  bytes     {info['bytes']:>12,}   {info['bytes'] / 1e9:,.3f} GB",
        f"  video     {info['options'].get('vcodec', 'copy'):>12}   PSNR vs source: "
        + (str(info["psnr_db_vs_source"]) if isinstance(info["psnr_db_vs_source"], str) else
           ", ".join(f"{k} min {v['min']:.2f} dB" for k, v in info["psnr_db_vs_source"].items())),
        "",
    ]  # fmt: skip
    width = max([len("camera"), *map(len, info["cameras"])])
    lines.append(f"  {'camera':<{width}}  {'codec':<6}  {'pix_fmt':<9}  {'resolution':>10}")
    for key, camera in info["cameras"].items():
        size = f"{camera['width']}x{camera['height']}"
        said = camera.get("info_json_says")
        note = ("  depth" if camera["depth"] else "") + (
            f"  (source info.json says {', '.join(f'{k} {v}' for k, v in said.items())})" if said else ""
        )
        lines.append(
            f"  {key:<{width}}  {camera['codec']:<6}  {camera['pix_fmt'] or '?':<9}  {size:>10}{note}"
        )
    skipped = info.get("skipped_episodes") or []
    if skipped:
        lines += ["", f"  skipped {len(skipped)} source episode(s) with errors:"]
        lines += [f"  {s['episode_index']:>10}  {s['reason'][:150]}" for s in skipped[:20]]
        lines += (
            [f"  {'...':>10}  and {len(skipped) - 20} more (--json lists all)"] if len(skipped) > 20 else []
        )
    lines += ["", f"  {'task_index':>10}  {'episodes':>8}  task"]
    lines += [f"  {t['task_index']:>10}  {t['episodes']:>8,}  {t['task']}" for t in info["tasks"]]
    return "\n".join(lines)


def _run_preview(args: argparse.Namespace) -> int:
    from .preview import preview_episode

    preview = preview_episode(args.url, args.episode, num_frames=args.frames)
    out = Path(args.out or f"episode_{args.episode}.png")
    out.write_bytes(preview.png)
    if args.quiet:
        return 0
    plots = ", ".join(preview.plots) or "none"
    print(f"{out}: {preview.width}x{preview.height} px, {len(preview.tiles)} frames; plots: {plots}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    try:
        if args.command == "check":
            return _run_check(args)
        if args.command == "convert":
            return _run_convert(args)
        if args.command == "verify":
            return _run_verify(args)
        if args.command == "finalize":
            manifest = finalize(args.dest)
            if not args.quiet:
                print(
                    f"{args.dest}: {len(manifest.shards)} shards, {manifest.num_episodes} episodes, "
                    f"{manifest.num_frames} frames; manifest generation {manifest.generation} written"
                )
            return 0
        if args.command == "inspect":
            return _run_inspect(args)
        if args.command == "export":
            return _run_export(args)
        return _run_preview(args)
    except (ValueError, FileNotFoundError, ModuleNotFoundError) as exc:
        print(f"lerobot-wds {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
