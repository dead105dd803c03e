"""A dataset card for Hub dataset repos, so that the Hub recognises the shards as WebDataset."""

from __future__ import annotations

from .. import format as fmt


def dataset_card(manifest: fmt.Manifest, prefix: str = "") -> str:
    """README.md with YAML front matter: WebDataset shards as the default config, LeRobot tags."""
    shards = f"{prefix.strip('/')}/{fmt.SHARD_DIR}/*.tar".lstrip("/")
    cameras = "\n".join(f"- `{key}`" for key in manifest.camera_keys) or "- (none)"
    source = manifest.source
    revision = f"@{source.revision}" if source.revision else ""
    return f"""---
tags:
- LeRobot
- lerobot-wds
- webdataset
- robotics
configs:
- config_name: default
  data_files:
  - split: train
    path: "{shards}"
---
# {source.location.rstrip("/").split("/")[-1]} as lerobot-wds episode shards

Converted from `{source.location}{revision}` (LeRobot {source.codebase_version}) by
[lerobot-wds](https://pypi.org/project/lerobot-wds/), format version {manifest.format_version}: one
WebDataset sample per episode (its rows and, per camera, its own video segment), {manifest.num_episodes}
episodes, {manifest.num_frames} frames at {manifest.fps} fps, {len(manifest.shards)} shards.

Cameras:
{cameras}

Stream it with exact LeRobot windows:

```python
from lerobot_wds import ShardedLeRobotDataset
action_window = [i / {manifest.fps} for i in range(16)]
dataset = ShardedLeRobotDataset("hf://datasets/<this repo>", delta_timestamps={{"action": action_window}})
```

Or browse the episodes with Hugging Face `datasets` (one row per episode: `meta.json` as a dict, each
camera a torchcodec `VideoDecoder`, `rows.arrow` as Arrow IPC bytes):

```python
from datasets import load_dataset
episodes = load_dataset("<this repo>", split="train", streaming=True)
```

Look at an episode: `lerobot-wds preview hf://datasets/<this repo> --episode 0` (camera strips, state
and action plots; `pip install 'lerobot-wds[preview]'`).

`manifest.json` (written last) lists every shard and episode; `meta/` holds LeRobot's own metadata.
"""
