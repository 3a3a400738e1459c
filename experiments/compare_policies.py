"""The paper's headline comparison: each policy against the baseline (full precision) on one workload.

    python experiments/compare_policies.py trace=azure_conv dataset=qmsum_goldspan figure_dir=results/figures/azure_conv

Replays (or reuses, like the figure scripts) the workload under ``policies`` (``baseline``, ``fp`` in
configs/figure.yaml, must be one of them) and writes ``comparison.{csv,json}`` in ``figure_dir`` with, per policy
(``experiments/replay/comparison.py``): P95 TTFT and its reduction factor, TTFT-SLO violation rate and how much lower
it is, output throughput and its ratio, TPOT ratios, Rouge-L / F1 with their change against the baseline and its
paired bootstrap 95 % interval over requests, token agreement with the baseline's outputs (with its interval), the
share of tokens made with quantized layers, the swap order used and the peak KV capacity (blocks). With
``backend=sim`` there is no text: quality and agreement are left out.
"""

import hydra
from omegaconf import DictConfig, OmegaConf

from experiments.metrics import format_table, write_report
from experiments.replay.comparison import compare
from experiments.replay.figures import register_schemas, run_policies_with_baseline

register_schemas()
COLUMNS = ("policy", "p95_ttft_ms", "p95_ttft_reduction", "ttft_slo_violation_rate", "slo_violations_vs_fp",
           "output_throughput", "throughput_vs_fp", "p99_tpot_ms", "p99_tpot_reduction", "rouge_l", "rouge_l_change",
           "rouge_l_vs_fp_diff", "rouge_l_vs_fp_diff_ci_low", "rouge_l_vs_fp_diff_ci_high", "f1", "f1_vs_fp_diff",
           "f1_vs_fp_diff_ci_low", "f1_vs_fp_diff_ci_high", "mean_prefix_agreement", "mean_prefix_agreement_ci_low",
           "mean_prefix_agreement_ci_high", "share_tokens_quantized", "mean_quantized_layers_per_token", "swap_order",
           "peak_kv_blocks")


@hydra.main(config_path="../configs", config_name="figure", version_base=None)
def main(raw: DictConfig) -> None:
    cfg = OmegaConf.to_object(raw)
    results = run_policies_with_baseline(cfg, "the comparison is against")
    rows = compare(results, cfg.baseline, simulated=cfg.backend.simulated)
    print(format_table(rows, COLUMNS))
    files = write_report(rows, cfg.figure_dir, stem="comparison")
    print(f"wrote {files.csv} and {files.json}")


if __name__ == "__main__":
    main()
