"""The paper-scale results in one table, beside the paper's headlines.

    python experiments/paper_scale_summary.py [results/paper_scale]

Reads what ``scripts/reproduce_paper_scale.sh`` writes under ``<root>/<model>/<trace>/``: ``comparison.json``
(compare_policies.py) and ``fig6_saturation.csv`` (fig6_rate_sweep.py). Writes ``<root>/paper_scale_summary.{csv,json}``
with one row per model, trace and policy: P95 TTFT and its reduction against FP, SLO violations and how many fewer
than FP's, output throughput against FP's, the saturation rate and the throughput there against FP's, the mean and
P99 TPOT against FP's, and, since a simulation writes no text, the share of output tokens made with at least one
quantized layer and the mean number of quantized layers per token in place of quality. Prints it after the paper's
headline figures.
"""
import argparse
import csv
import json
from pathlib import Path

from experiments.metrics import format_table, write_report

PAPER_HEADLINES = (
    "P95 TTFT 2.2-3.9x lower than FP",
    "92.45 % fewer SLO violations",
    "saturation throughput up to 1.83x FP's",
    "P99 TPOT up to 1.23x lower",
)
COLUMNS = ("model", "trace", "policy", "p95_ttft_s", "p95_ttft_reduction", "ttft_slo_violation_rate",
           "slo_violations_vs_fp", "throughput_vs_fp", "saturation_rate", "saturation_bound",
           "throughput_at_saturation_vs_fp",
           "tpot_ratio_mean", "p99_tpot_reduction", "share_tokens_quantized", "mean_quantized_layers_per_token")
COMPARISON_FIELDS = ("p95_ttft_reduction", "ttft_slo_violation_rate", "slo_violations_vs_fp", "throughput_vs_fp",
                     "tpot_ratio_mean", "p99_tpot_reduction", "share_tokens_quantized",
                     "mean_quantized_layers_per_token")


def summary_rows(root: Path) -> list[dict]:
    """One row per (model, trace, policy) folder pair under ``root`` that holds a comparison."""
    comparisons = sorted(root.glob("*/*/comparison.json"))
    if not comparisons:
        raise SystemExit(f"no <model>/<trace>/comparison.json under {root}: run scripts/reproduce_paper_scale.sh")
    rows = []
    for path in comparisons:
        trace_dir = path.parent
        saturation = _saturation_by_policy(trace_dir / "fig6_saturation.csv")
        for compared in json.loads(path.read_text()):
            policy = compared["policy"]
            row = {"model": trace_dir.parent.name, "trace": trace_dir.name, "policy": policy,
                   "p95_ttft_s": compared["p95_ttft_ms"] / 1000}
            row.update({field: compared.get(field) for field in COMPARISON_FIELDS})
            row.update(saturation.get(policy, {}))
            rows.append(row)
    return rows


def _saturation_by_policy(path: Path) -> dict[str, dict]:
    """policy -> saturation_rate, saturation_bound (set when the sweep did not bracket the crossing) and
    throughput_at_saturation_vs_fp; empty when Figure 6 was not run there."""
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        return {row["policy"]: {"saturation_rate": _number(row["saturation_rate"]), "saturation_bound": row["bound"],
                                "throughput_at_saturation_vs_fp": _number(row.get("throughput_at_saturation_vs_fp"))}
                for row in csv.DictReader(f)}


def _number(text: str | None) -> float | None:
    return float(text) if text not in (None, "") else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", default="results/paper_scale", type=Path)
    args = parser.parse_args()
    rows = summary_rows(args.root)
    print("The paper's headlines: " + "; ".join(PAPER_HEADLINES) + ".")
    print(format_table(rows, COLUMNS))
    files = write_report(rows, args.root, stem="paper_scale_summary")
    print(f"wrote {files.csv} and {files.json}")


if __name__ == "__main__":
    main()
