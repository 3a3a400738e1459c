"""Replay a trace against the engine under a policy: ``python experiments/run_replay.py [overrides]``.

By default it replays the baseline (``baseline=fp``: full precision; a saved run of the same config and code is
reused) and then the policy on the same workload, prints both side by side and plots both (Figure 5: KV capacity
over time; Figure 7: TPOT CDF). ``baseline=null`` replays the policy alone.

Examples: ``policy=static_int4``, ``trace=azure_code dataset=qmsum``, ``policy.controller.kv_usage_trigger=0.9``,
and sweeps, e.g. ``-m policy=morph_accuracy,morph_performance policy.controller.kv_usage_trigger=0.85,0.9,0.95``
(each job writes into its own folder of the sweep; ``experiments/summarize_sweep.py`` gathers them; add
``hydra/launcher=parallel|slurm|ray_local``, configs/hydra/launcher/, to run the jobs elsewhere than one by one).
"""
import logging
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from experiments.fig5_kv_capacity import plot_kv_capacity
from experiments.fig7_tpot_cdf import plot_tpot_cdf
from experiments.metrics import format_table, write_report
from experiments.replay.comparison import compare
from experiments.replay.config import ReplayConfig
from experiments.replay.run import ReplayResult, run_replay, tpots_ms
from experiments.replay.saved_runs import preset_run, run_or_load

ConfigStore.instance().store(name="replay_schema", node=ReplayConfig)
SIDE_BY_SIDE = ("policy", "p95_ttft_ms", "p95_ttft_reduction", "ttft_slo_violation_rate", "output_throughput",
                "throughput_vs_fp", "share_tokens_quantized", "mean_prefix_agreement", "peak_kv_blocks", "swap_order")


@hydra.main(config_path="../configs", config_name="config", version_base=None)
def main(raw: DictConfig) -> None:
    logging.getLogger("swiftllm").setLevel(logging.INFO)
    cfg: ReplayConfig = OmegaConf.to_object(raw)
    if cfg.output_dir is None:
        cfg.output_dir = HydraConfig.get().runtime.output_dir
    replay_and_plot(cfg)


def replay_and_plot(cfg: ReplayConfig) -> ReplayResult:
    """The baseline (when set and other than the policy), the replay, the side-by-side table
    (``comparison.{csv,json}``) and (``cfg.plots``) Figures 5 and 7 of both, all in ``cfg.output_dir``."""
    results = {}
    if cfg.baseline is not None and cfg.baseline != cfg.policy.name:
        results[cfg.baseline] = run_or_load(preset_run(cfg, cfg.baseline), cfg.runs_dir)
    result = results[cfg.policy.name] = run_replay(cfg)
    out_dir = Path(cfg.output_dir)
    if len(results) > 1:
        rows = compare(results, cfg.baseline, simulated=cfg.backend.simulated)
        print(f"\n{cfg.policy.name} against {cfg.baseline} on the same workload:\n{format_table(rows, SIDE_BY_SIDE)}")
        files = write_report(rows, out_dir, stem="comparison")
        print(f"side by side: {files.csv}")
    if cfg.plots:
        _plot(results, result.fp_kv_blocks, out_dir)
    return result


def _plot(results: dict[str, ReplayResult], fp_kv_blocks: int, out_dir: Path) -> None:
    files = [plot_kv_capacity({p: r.timeline for p, r in results.items()}, fp_kv_blocks, out_dir).png]
    tpots = {p: tpots_ms(r.records) for p, r in results.items()}
    if all(tpots.values()):
        files.append(plot_tpot_cdf(tpots, out_dir).png)
    print("plots: " + ", ".join(str(f) for f in files))


if __name__ == "__main__":
    main()
