"""WikiText-2 test perplexity: ``python experiments/perplexity.py [overrides]``.

Examples: ``data.num_windows=null`` (whole split), ``variants=[fp,rtn-int4-g64]``,
``swap.counts=[4,8] swap.order=results/swap_orders/smollm2-135m-awq-int4-g128-lis.json``, ``cross_check_hf=null``,
``lm_head=int8 cross_check_hf=null`` (every row scored with the INT8 LM head), ``linear_path=kernel`` (the quantized
linears score every row with the decode kernels, int16 activations, instead of dequantize + fp32 GEMM for long rows).
Writes perplexity.csv and perplexity.json into the Hydra run folder (results/perplexity/...).
"""
import logging

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from experiments.eval.config import PerplexityConfig, register_schemas
from experiments.eval.perplexity_table import perplexity_rows
from experiments.eval.session import EvalSession
from experiments.metrics.report import format_table, write_report
from swiftllm.quant.linear_path import forced_linear_path

register_schemas()
COLUMNS = ("configuration", "quantized_layers_count", "ppl", "mean_nll", "num_tokens", "seconds", "rel_diff")


@hydra.main(config_path="../configs", config_name="perplexity", version_base=None)
def main(raw: DictConfig) -> None:
    cfg: PerplexityConfig = OmegaConf.to_object(raw)
    session = EvalSession(cfg.model, cfg.data, cfg.quant, cfg.lm_head)
    with forced_linear_path(cfg.linear_path):
        rows = perplexity_rows(session, cfg)
    files = write_report(rows, HydraConfig.get().runtime.output_dir, stem="perplexity")
    print(format_table(rows, COLUMNS))
    print(f"wrote {files.csv} and {files.json}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
