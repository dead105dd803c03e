"""Routes over many machines: scheduler-free parts + finalize, SLURM (datatrove's script), Ray (local).

Every route must publish the same bytes as the one-shot local conversion.
"""

from __future__ import annotations

import os
import random
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from helpers import DATA

from lerobot_wds import ConvertConfig, convert, read_manifest
from lerobot_wds import format as fmt
from lerobot_wds.cli import main
from lerobot_wds.converter import SlurmConfig, convert_part, finalize, submit_slurm
from lerobot_wds.converter.convert import part_shards

SRC = Path(__file__).resolve().parents[2] / "src"
SHARD_MB = 0.1  # multi in about one shard per episode: parts of several shards each
CONFIG = ConvertConfig(shard_size_mb=SHARD_MB)
# tiny in 3 shards: the SLURM and Ray routes start a Python process per task (~3 s each, ~13 s on a
# loaded machine), so they get few tasks
TINY = ConvertConfig(shard_size_mb=0.03)


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: multi converted in one go on this machine."""
    dest = tmp_path_factory.mktemp("local") / "multi"
    convert(str(DATA / "multi"), str(dest), CONFIG)
    return dest


@pytest.fixture(scope="module")
def local_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("local") / "tiny"
    assert len(convert(str(DATA / "tiny"), str(dest), TINY).manifest.shards) == 3
    return dest


def assert_same_files(got: Path, expected: Path) -> None:
    def files(root: Path) -> list[Path]:
        return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())

    assert files(got) == files(expected)
    for relative in files(expected):
        assert (got / relative).read_bytes() == (expected / relative).read_bytes(), relative


def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def part_command(dest: Path, tasks: int, index: int) -> list[str]:
    return [sys.executable, "-m", "lerobot_wds.cli", "convert", str(DATA / "multi"), str(dest),
            "--shard-size-mb", str(SHARD_MB), "--tasks", str(tasks), "--task-index", str(index)]  # fmt: skip


def test_part_shards_cover_the_plan_once() -> None:
    for num_shards in (0, 1, 5, 24):
        for tasks in (1, 3, 7, 30):
            parts = [list(part_shards(num_shards, tasks, i)) for i in range(tasks)]
            assert [rank for part in parts for rank in part] == list(range(num_shards))
    with pytest.raises(ValueError, match=r"--tasks/--task-index: got 3/3; expected"):
        part_shards(5, 3, 3)


@pytest.mark.slow
def assert_no_process_survives(marker: str, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while True:
        alive = [
            p.pid for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])
        ]
        if not alive:
            return
        assert time.monotonic() < deadline, f"processes of the killed part still alive: {alive}"
        time.sleep(0.2)


def test_parts_in_random_order_one_killed_then_finalize_equal_local(local: Path, tmp_path: Path) -> None:
    dest = tmp_path / "parts"
    tasks = 2
    num_shards = len(read_manifest(str(local)).shards)
    assert num_shards >= 3 * tasks  # every part has several shards: killing one leaves it half done
    order = list(range(tasks))
    random.Random(14).shuffle(order)
    victim = order[0]
    ranks = part_shards(num_shards, tasks, victim)
    markers = dest / "_lerobot_wds_work" / "datatrove" / "completions"
    # The first part is killed (SIGKILL) once it has finished a shard and before it finished them all.
    process = subprocess.Popen(part_command(dest, tasks, victim), env=cli_env(), stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (markers.is_dir() and any(markers.iterdir())):
        assert process.poll() is None, process.communicate()[1].decode()
        assert time.monotonic() < deadline
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    # Nothing it forked lives on (datatrove's multiprocess Manager server used to serve forever).
    assert_no_process_survives(str(dest), within_s=10)
    done = sorted(int(p.name) for p in markers.iterdir())
    assert 0 < len(done) < len(ranks), done
    # The other parts run as separate processes, in the shuffled order.
    for index in order[1:]:
        subprocess.run(part_command(dest, tasks, index), env=cli_env(), check=True, capture_output=True)
    assert not (dest / fmt.MANIFEST_NAME).exists()
    assert not (dest / "meta").exists()
    # finalize refuses, naming the killed part's missing shards.
    missing = [fmt.shard_path(rank) for rank in ranks if rank not in done]
    with pytest.raises(
        ValueError, match=rf"{len(missing)} of {num_shards} planned shards are not written yet: "
    ):
        finalize(str(dest))
    with pytest.raises(ValueError, match="not written yet") as refused:
        finalize(str(dest))
    assert all(path in str(refused.value) for path in missing)
    # The killed part, run again, finishes its shards (keeping the finished ones), then finalize publishes.
    again = subprocess.run(
        part_command(dest, tasks, victim), env=cli_env(), check=True, capture_output=True, text=True
    )
    assert f"{len(done)} kept from an earlier run" in again.stdout
    assert main(["finalize", str(dest)]) == 0
    assert_same_files(dest, local)
    assert finalize(str(dest)) == read_manifest(str(local))  # finalized already: the manifest


def test_parts_refuse_overwrite_and_finalize_needs_a_conversion(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--overwrite with --tasks"):
        convert_part(
            str(DATA / "tiny"), str(tmp_path / "d"), ConvertConfig(overwrite=True), tasks=2, task_index=0
        )
    with pytest.raises(FileNotFoundError, match=r"nothing to finalize; expected .*plan\.json"):
        finalize(str(tmp_path / "empty"))


def _slurm_stand_ins(folder: Path) -> Path:
    """``srun`` and ``scontrol`` for running datatrove's job script on this machine (no SLURM here).

    ``srun [options] cmd...`` runs ``cmd...``; ``scontrol show hostnames LIST`` prints LIST. They stand
    in for SLURM's node-side tools only; the script, the pickled pipeline and the ranks are datatrove's.
    """
    folder.mkdir()
    scripts = {
        "srun": '#!/bin/bash\nwhile [[ "$1" == -* ]]; do [[ "$1" == -n ]] && shift; shift; done\nexec "$@"\n',
        "scontrol": '#!/bin/bash\necho "$3"\n',
    }
    for name, text in scripts.items():
        (folder / name).write_text(text)
        (folder / name).chmod((folder / name).stat().st_mode | stat.S_IEXEC)
    return folder


@pytest.mark.slow
def test_slurm_scripts_are_datatrove_arrays_that_reproduce_local(local_tiny: Path, tmp_path: Path) -> None:
    dest = tmp_path / "slurm"
    logs = tmp_path / "slurm-logs"
    slurm = SlurmConfig(partition="cpu", time="00:30:00", cpus_per_task=2, mem_per_cpu_gb=3, max_array_size=2,
                        workers=1, job_name="lw-test", logs_dir=str(logs), submit=False)  # fmt: skip
    jobs = submit_slurm(str(DATA / "tiny"), str(dest), TINY, slurm=slurm)
    num_shards = len(read_manifest(str(local_tiny)).shards)
    assert jobs.array_job_id is None
    assert jobs.finalize_job_id is None
    assert jobs.num_tasks == num_shards > slurm.max_array_size
    array_script = Path(jobs.array_script or "").read_text()
    pickled = dest / "_lerobot_wds_work" / "datatrove" / "executor.pik"
    for line in ["#SBATCH --partition=cpu", "#SBATCH --time=00:30:00", "#SBATCH --cpus-per-task=2",
                 "#SBATCH --mem-per-cpu=3G", "#SBATCH --job-name=lw-test", "#SBATCH --array=0-1%1",
                 f"#SBATCH --output={logs}/%A_%a.out", f"launch_pickled_pipeline {pickled}"]:  # fmt: skip
        assert line in array_script, line
    assert pickled.is_file()
    assert os.path.dirname(sys.executable) in array_script  # the nodes find this environment's tools
    finalize_script = Path(jobs.finalize_script or "").read_text()
    assert "#SBATCH --array" not in finalize_script
    assert f"-m lerobot_wds.cli finalize {dest}" in finalize_script
    assert not (dest / "shards").exists()  # nothing ran
    # Run the scripts as SLURM would: each array task (RUN_OFFSET picks the array: more tasks than
    # max_array_size make several), in reverse order, then the finalize job.
    bin_dir = _slurm_stand_ins(tmp_path / "bin")
    env = {**cli_env(), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "SLURM_NODELIST": "node1"}
    for rank in reversed(range(num_shards)):
        offset, task = divmod(rank, slurm.max_array_size)
        run_env = {**env, "SLURM_ARRAY_TASK_ID": str(task), "RUN_OFFSET": str(offset)}
        subprocess.run(["bash", jobs.array_script or ""], env=run_env, check=True, capture_output=True)
    subprocess.run(["bash", jobs.finalize_script or ""], env=env, check=True, capture_output=True)
    assert_same_files(dest, local_tiny)


def test_slurm_refuses_storage_options(tmp_path: Path) -> None:
    config = ConvertConfig(storage_options={"key": "secret"})
    with pytest.raises(ValueError, match="storage options would be written into the job's pickled"):
        submit_slurm(
            str(DATA / "tiny"), str(tmp_path / "d"), config, slurm=SlurmConfig(partition="p", submit=False)
        )


@pytest.mark.slow
def test_ray_on_a_local_instance_equals_local(local_tiny: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    dest = tmp_path / "ray"
    config = ConvertConfig(shard_size_mb=TINY.shard_size_mb, executor="ray", workers=2)
    result = convert(str(DATA / "tiny"), str(dest), config)
    assert result.manifest == read_manifest(str(local_tiny))
    assert_same_files(dest, local_tiny)


def test_cli_routes_explain_what_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, dest = str(DATA / "tiny"), str(tmp_path / "d")
    assert main(["convert", src, dest, "--executor", "slurm"]) == 2
    assert "--executor slurm: no --slurm-partition" in capsys.readouterr().err
    assert main(["convert", src, dest, "--tasks", "2"]) == 2
    assert "--tasks and --task-index: got one of them; expected both" in capsys.readouterr().err
    assert main(["finalize", str(tmp_path / "empty")]) == 2
    assert "nothing to finalize" in capsys.readouterr().err
    args = ["convert", src, dest, "--executor", "slurm", "--slurm-partition", "cpu", "--slurm-no-submit"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "sbatch " in out
    assert "launch_script.slurm" in out
    assert main(["finalize", dest]) == 2  # the jobs did not run: every shard is missing
    assert "1 of 1 planned shards are not written yet: shards/shard-000000.tar" in capsys.readouterr().err


def test_parts_into_s3_then_finalize_equal_local(local_tiny: Path, s3_server: dict, s3_bucket: str) -> None:
    """A bucket destination: finalize lists the index folder with s3fs, copies meta/ from the work folder."""
    import s3fs

    dest = f"s3://{s3_bucket}/tiny"
    config = ConvertConfig(shard_size_mb=TINY.shard_size_mb, storage_options=s3_server)
    convert_part(str(DATA / "tiny"), dest, config, tasks=2, task_index=1)
    with pytest.raises(
        ValueError, match=r"1 of 3 planned shards are not written yet: shards/shard-000000\.tar;"
    ):
        finalize(dest, s3_server)
    convert_part(str(DATA / "tiny"), dest, config, tasks=2, task_index=0)
    assert finalize(dest, s3_server) == read_manifest(str(local_tiny))
    fs = s3fs.S3FileSystem(**s3_server)
    names = sorted(p.removeprefix(f"{s3_bucket}/tiny/") for p in fs.find(f"{s3_bucket}/tiny"))
    assert names == sorted(str(p.relative_to(local_tiny)) for p in local_tiny.rglob("*") if p.is_file())
    for name in names:
        assert fs.cat_file(f"{s3_bucket}/tiny/{name}") == (local_tiny / name).read_bytes(), name
