"""Shared runner of the paper-figure scripts: the same workload replayed under several policies."""
import copy
import dataclasses
import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from experiments.replay.config import POLICIES, ReplayConfig
from experiments.replay.run import ReplayResult, run_replay


@dataclass
class FigureConfig(ReplayConfig):
    policies: list[str] = field(default_factory=lambda: ["fp", "static_int4", "morph_accuracy", "morph_performance"])
    time_scales: list[float] = field(default_factory=lambda: [4.0, 2.0, 1.0, 0.5])   # Fig 6 load points
    figure_dir: str = "results/figures"

    def __post_init__(self):
        unknown = [p for p in self.policies if p not in POLICIES]
        if unknown or not self.policies:
            raise ValueError(f"policies must be a non-empty list from {POLICIES}, got {self.policies}")


def register_schemas() -> None:
    store = ConfigStore.instance()
    store.store(name="replay_schema", node=ReplayConfig)
    store.store(name="figure_schema", node=FigureConfig)


def run_policies(cfg: FigureConfig) -> dict[str, ReplayResult]:
    """Replay ``cfg``'s workload once per policy in ``cfg.policies``.

    Each run lives in ``figure_dir/runs/<policy>-<hash of its replay config>``; a run already there is loaded,
    not repeated, so the figure scripts share runs of the same configuration.
    """
    return {policy: _run_or_load(_replay_config(cfg, policy), Path(cfg.figure_dir) / "runs") for policy in cfg.policies}


def _replay_config(cfg: FigureConfig, policy: str) -> ReplayConfig:
    fields = {f.name: copy.deepcopy(getattr(cfg, f.name)) for f in dataclasses.fields(ReplayConfig)}
    run = ReplayConfig(**fields)
    run.policy.name = policy
    run.plots = False
    return run


def _run_or_load(run: ReplayConfig, runs_dir: Path) -> ReplayResult:
    run.output_dir = ""
    key = hashlib.sha1(OmegaConf.to_yaml(OmegaConf.structured(run)).encode()).hexdigest()[:10]
    run.output_dir = str(runs_dir / f"{run.policy.name}-{key}")
    try:
        result = ReplayResult.load(Path(run.output_dir))
        print(f"== {run.policy.name}: reusing {run.output_dir}", file=sys.stderr)
        return result
    except FileNotFoundError:
        print(f"== {run.policy.name}: replaying into {run.output_dir}", file=sys.stderr)
        return run_replay(run)
