"""Saved replays, shared by the figure scripts and the replay's baseline: a run is reused only when it was made from
the same config, the same swap-order files and the same code; otherwise it is replayed, and either way it says so.

A run lives in ``<runs_dir>/<policy name>-<key>``, ``key`` a hash of its config (output folder aside) and of the
swap-order files its policy reads; its ``result.json`` records the code that made it (``code_version``). A lock file
beside it lets parallel jobs (a multirun's launcher) that need the same run replay it once.
"""
import copy
import dataclasses
import fcntl
import hashlib
import sys
from pathlib import Path

from omegaconf import OmegaConf

from experiments.replay.code_version import CodeVersion, code_version
from experiments.replay.config import ReplayConfig
from experiments.replay.run import ReplayResult, run_replay
from morph.policy_presets import load_policy


def run_or_load(cfg: ReplayConfig, runs_dir: str | Path) -> ReplayResult:
    """The saved run of ``cfg`` made by this code, else a new replay saved there (``cfg`` is not changed)."""
    run = copy.deepcopy(cfg)
    run.output_dir, run.plots, run.baseline = None, False, None
    run.output_dir = str(Path(runs_dir) / f"{run.policy.name}-{run_key(run)}")
    Path(runs_dir).mkdir(parents=True, exist_ok=True)
    with open(f"{run.output_dir}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return load_if_current(run) or run_replay(run)


def preset_run(cfg: ReplayConfig, policy: str) -> ReplayConfig:
    """``cfg``'s replay (the fields of a subclass such as the figure config aside) under the preset ``policy``, with
    no baseline of its own."""
    fields = {f.name: copy.deepcopy(getattr(cfg, f.name)) for f in dataclasses.fields(ReplayConfig)}
    run = ReplayConfig(**fields)
    run.policy, run.baseline = load_policy(policy), None
    return run


def run_key(run: ReplayConfig) -> str:
    """Hash of the config and of the swap-order files its policy reads (a new LIS profile is a new run)."""
    digest = hashlib.sha1(OmegaConf.to_yaml(OmegaConf.structured(run)).encode())
    for path in swap_order_inputs(run):
        digest.update(str(path).encode() + path.read_bytes())
    return digest.hexdigest()[:10]


def swap_order_inputs(run: ReplayConfig) -> list[Path]:
    """The files a morph policy's swap-order source reads: the profiles in ``profile_dir`` (``lis``) or the file."""
    if run.policy.kind != "morph":
        return []
    spec = run.policy.swap_order
    if spec.source == "lis":
        return sorted(Path(spec.profile_dir).glob("*.json"))
    path = Path(spec.source)
    return [path] if path.is_file() else []


def load_if_current(run: ReplayConfig) -> ReplayResult | None:
    """The run saved in ``run.output_dir`` if this code made it (the committed sources and their uncommitted
    changes), else ``None``."""
    name, out_dir, current = run.policy.name, Path(run.output_dir), code_version()
    try:
        saved = ReplayResult.load(out_dir)
    except FileNotFoundError:
        print(f"== {name}: replaying into {out_dir} (no saved run)", file=sys.stderr)
        return None
    record = saved.metadata.get("code_version")
    made_by = CodeVersion.from_record(record)
    if made_by != current:
        made_by_text = made_by or ("recorded in an older form" if record else "unrecorded")
        print(f"== {name}: replaying into {out_dir}: the saved run was made by other code ({made_by_text}; "
              f"this is {current})", file=sys.stderr)
        return None
    print(f"== {name}: reusing {out_dir} (same config, same code: {made_by})", file=sys.stderr)
    return saved
