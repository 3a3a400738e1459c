"""Offline layer profiling: ``python experiments/profile_layers.py [overrides]`` writes the swap order JSON.

Examples: ``method=front_to_back``, ``calibration.seq_len=512 calibration.num_seqs=2``,
``coefficients.mds=10``. The output (``output_path``, default
results/swap_orders/<model>-<int4 variant>-<method>.json) is what the replays read by default (``policy.swap_order.source=lis`` finds the LIS profile of their model and variant in
``results/swap_orders``) and ``lis_order_file`` of Table 1.
"""
import logging

import hydra
from omegaconf import DictConfig, OmegaConf

from experiments.eval.config import ProfileConfig, register_schemas, resolve_path
from experiments.eval.profile_run import swap_order_record, write_swap_order
from experiments.eval.session import EvalSession

register_schemas()


@hydra.main(config_path="../configs", config_name="profile", version_base=None)
def main(raw: DictConfig) -> None:
    cfg: ProfileConfig = OmegaConf.to_object(raw)
    session = EvalSession(cfg.model, cfg.data, cfg.quant)
    record = swap_order_record(session, cfg)
    path = write_swap_order(record, resolve_path(cfg.output_path))
    print(f"{cfg.method} order {record['order']}")
    print(f"wrote {path}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
