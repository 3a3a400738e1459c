"""Shared runner of the paper-figure scripts: the same workload replayed under several policies."""
import copy
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from experiments.replay.config import ReplayConfig
from experiments.replay.run import ReplayResult
from experiments.replay.saved_runs import preset_run, run_or_load
from morph.policy_config import PolicyConfig, SwapOrderSpec
from morph.policy_presets import load_policy


@dataclass
class FigureConfig(ReplayConfig):
    """``policies``: preset names (configs/policy/), replayed as they are except for ``swap_order``, which every
    morph policy of the figure takes (e.g. ``swap_order.source=front_to_back`` for an ablation); ``time_scales``:
    Figure 6's load points; the runs are saved in (and reused from) ``runs_dir``."""
    policies: list[str] = field(default_factory=list)
    swap_order: SwapOrderSpec = field(default_factory=SwapOrderSpec)
    time_scales: list[float] = field(default_factory=list)
    figure_dir: str = "results/figures"

    def __post_init__(self):
        super().__post_init__()
        if not self.policies:
            raise ValueError("policies must name at least one policy preset (configs/policy/)")
        for name in self.policies:
            load_policy(name)
        if self.policy != PolicyConfig():
            raise ValueError("the figure scripts replay the presets named in policies=[...]: policy.* overrides do "
                             "not reach them (set swap_order.*, or add a preset to configs/policy/)")


FIGURE_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "figure.yaml"


def paper_policies() -> list[str]:
    """The presets the paper compares (``policies`` of configs/figure.yaml)."""
    return list(OmegaConf.load(FIGURE_CONFIG).policies)


def register_schemas() -> None:
    store = ConfigStore.instance()
    store.store(name="replay_schema", node=ReplayConfig)
    store.store(name="figure_schema", node=FigureConfig)


def run_policies(cfg: FigureConfig) -> dict[str, ReplayResult]:
    """Replay ``cfg``'s workload once per policy in ``cfg.policies``, or reuse the saved run of the same config and
    code (``saved_runs``), so the figure scripts share their runs."""
    return {policy: run_or_load(_figure_run(cfg, policy), cfg.runs_dir) for policy in cfg.policies}


def run_policies_with_baseline(cfg: FigureConfig, purpose: str) -> dict[str, ReplayResult]:
    """``run_policies`` for a figure that compares with ``cfg.baseline`` (``purpose`` says how): it must be run too."""
    if cfg.baseline not in cfg.policies:
        raise SystemExit(f"{purpose} baseline={cfg.baseline}: add it to policies={cfg.policies}")
    return run_policies(cfg)


def _figure_run(cfg: FigureConfig, policy: str) -> ReplayConfig:
    run = preset_run(cfg, policy)
    if run.policy.kind == "morph":
        run.policy.swap_order = copy.deepcopy(cfg.swap_order)
    return run
