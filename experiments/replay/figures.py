"""Shared runner of the paper-figure scripts: the same workload replayed under several policies."""
import copy
import sys
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.config_store import ConfigStore

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


def run_policies(cfg: FigureConfig, stem: str, tag: str = "") -> dict[str, ReplayResult]:
    """Replay ``cfg``'s workload once per policy in ``cfg.policies``; outputs under ``figure_dir/stem/<policy><tag>``."""
    results = {}
    for policy in cfg.policies:
        run = copy.deepcopy(cfg)
        run.policy.name = policy
        run.output_dir = str(Path(cfg.figure_dir) / stem / f"{policy}{tag}")
        run.plots = False
        print(f"== {stem}: {policy}{tag}", file=sys.stderr)
        results[policy] = run_replay(run)
    return results
