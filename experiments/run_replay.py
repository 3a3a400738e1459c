"""Replay a trace against the engine under a policy: ``python experiments/run_replay.py [overrides]``.

Examples: ``policy=fp``, ``trace=azure_code``, ``dataset=qmsum``, and sweeps with
``-m policy=fp,morph_accuracy trace.shaping.time_scale=4.75,2``.
"""
import logging
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from experiments.fig5_kv_capacity import plot_kv_capacity
from experiments.fig7_tpot_cdf import plot_tpot_cdf
from experiments.replay.config import ReplayConfig
from experiments.replay.run import ReplayResult, run_replay, tpots_ms

ConfigStore.instance().store(name="replay_schema", node=ReplayConfig)


@hydra.main(config_path="../configs", config_name="config", version_base=None)
def main(cfg: DictConfig) -> None:
    logging.getLogger("swiftllm").setLevel(logging.INFO)
    replay_and_plot(OmegaConf.to_object(cfg))


def replay_and_plot(cfg: ReplayConfig) -> ReplayResult:
    """The replay, then (``cfg.plots``) its KV capacity over time (Figure 5) and TPOT CDF (Figure 7)."""
    result = run_replay(cfg)
    if cfg.plots:
        out_dir = Path(cfg.output_dir)
        files = [plot_kv_capacity({cfg.policy.name: result.timeline}, result.fp_kv_blocks, out_dir).png]
        if tpots_ms(result.records):
            files.append(plot_tpot_cdf({cfg.policy.name: tpots_ms(result.records)}, out_dir).png)
        print("plots: " + ", ".join(str(f) for f in files))
    return result


if __name__ == "__main__":
    main()
