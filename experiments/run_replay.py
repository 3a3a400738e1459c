"""Replay a trace against the engine under a policy: ``python experiments/run_replay.py [overrides]``.

Examples: ``policy=fp``, ``trace=azure_code``, ``dataset=qmsum``, and sweeps with
``-m policy=fp,morph_accuracy trace.shaping.time_scale=4.75,2``.
"""
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hydra  # noqa: E402
from hydra.core.config_store import ConfigStore  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from experiments.replay.config import ReplayConfig  # noqa: E402
from experiments.replay.run import run_replay  # noqa: E402

ConfigStore.instance().store(name="replay_schema", node=ReplayConfig)


@hydra.main(config_path="../configs", config_name="config", version_base=None)
def main(cfg: DictConfig) -> None:
    logging.getLogger("swiftllm").setLevel(logging.INFO)
    run_replay(OmegaConf.to_object(cfg))


if __name__ == "__main__":
    main()
