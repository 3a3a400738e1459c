"""The paper's headline comparison: each policy against full precision on one workload.

    python experiments/compare_policies.py trace=azure_conv dataset=qmsum_goldspan figure_dir=results/figures/azure_conv

Replays (or reuses, like the figure scripts) the workload under ``policies`` (``fp`` must be one of them) and
writes ``comparison.{csv,json}`` in ``figure_dir`` with, per policy: P95 TTFT and its reduction factor vs FP, TTFT-SLO
violation rate and how much lower than FP's it is, output throughput and its ratio to FP, P99 TPOT and how many
times lower than FP's it is, Rouge-L / F1 and their relative change vs FP, token agreement with the FP outputs, the
share of tokens made with quantized layers and the mean quantized layers per token, and the peak KV capacity
(blocks). With ``backend=sim`` there is no text: quality and agreement are left out.
"""

import hydra
from omegaconf import DictConfig, OmegaConf

from experiments.metrics import format_table, token_agreement, write_report
from experiments.replay.figures import register_schemas, run_policies
from experiments.replay.run import ReplayResult

register_schemas()
COLUMNS = ("policy", "p95_ttft_ms", "p95_ttft_reduction", "ttft_slo_violation_rate", "slo_violations_vs_fp",
           "output_throughput", "throughput_vs_fp", "p99_tpot_ms", "p99_tpot_reduction", "rouge_l", "rouge_l_change",
           "f1", "mean_prefix_agreement", "share_tokens_quantized", "mean_quantized_layers_per_token", "peak_kv_blocks")


def compare(results: dict[str, ReplayResult], simulated: bool = False) -> list[dict]:
    """One row per policy; the ratios are against ``results["fp"]``."""
    fp = results["fp"]
    rows = []
    for policy, result in results.items():
        row, base = dict(result.row), fp.row
        row["p95_ttft_reduction"] = base["p95_ttft_ms"] / row["p95_ttft_ms"]
        if base["ttft_slo_violation_rate"] > 0:
            row["slo_violations_vs_fp"] = 1 - row["ttft_slo_violation_rate"] / base["ttft_slo_violation_rate"]
        row["throughput_vs_fp"] = row["output_throughput"] / base["output_throughput"]
        row["p99_tpot_reduction"] = base["p99_tpot_ms"] / row["p99_tpot_ms"]
        if "rouge_l" in row:
            row["rouge_l_change"] = row["rouge_l"] / base["rouge_l"] - 1
        if not simulated:
            row.update(token_agreement([r.output_token_ids for r in fp.records],
                                       [r.output_token_ids for r in result.records]))
        rows.append(row)
    return rows


@hydra.main(config_path="../configs", config_name="figure", version_base=None)
def main(raw: DictConfig) -> None:
    cfg = OmegaConf.to_object(raw)
    if "fp" not in cfg.policies:
        raise SystemExit(f"the comparison is against full precision: add fp to policies={cfg.policies}")
    rows = compare(run_policies(cfg), simulated=cfg.backend.simulated)
    print(format_table(rows, COLUMNS))
    files = write_report(rows, cfg.figure_dir, stem="comparison")
    print(f"wrote {files.csv} and {files.json}")


if __name__ == "__main__":
    main()
