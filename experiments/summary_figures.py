"""The summary figures of the paper's section 4, one bar per policy on one workload: KV utilization beside static
INT4's, KV capacity used beyond the full-precision limit, queueing-delay reduction against the baseline, preemptions,
and the host memory of the layer store.

    python experiments/summary_figures.py trace=azure_conv dataset=qmsum_goldspan figure_dir=results/figures/azure_conv

Per policy (``summary_section4.{png,csv}`` in ``figure_dir``; the runs are shared with the other figure scripts):
- ``mean_kv_utilization``: time-averaged used / capacity of the KV pool; ``kv_utilization_vs_static_int4``: its
  ratio to the static INT4 policy's (the policy of kind static at int4 among ``policies``), whose pool is the largest;
- ``peak_kv_blocks_beyond_fp`` and ``kv_block_seconds_beyond_fp``: KV blocks in use above the capacity full precision
  has (``experiments/metrics/kv_usage.py``), at the peak and integrated over time;
- ``mean_queueing_delay_reduction`` / ``p95_...``: baseline's queueing delay / the policy's;
- ``total_preemptions``: requests preempted (recomputed) for lack of KV blocks;
- ``layer_store_mb`` and ``layer_store_vs_weights``: host memory of every layer variant the runtime holds (the
  full-precision masters included) and its ratio to the model's full-precision weights.
"""
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from experiments.metrics import format_table
from experiments.plots.policy_bars import plot_policy_bars
from experiments.replay.comparison import compare
from experiments.replay.figures import register_schemas, run_policies_with_baseline
from experiments.replay.run import ReplayResult

MB = 1 << 20
COLUMNS = ("policy", "mean_kv_utilization", "kv_utilization_vs_static_int4", "peak_kv_blocks_beyond_fp",
           "kv_block_seconds_beyond_fp", "mean_queueing_delay_ms", "mean_queueing_delay_reduction",
           "p95_queueing_delay_reduction", "total_preemptions", "layer_store_mb", "layer_store_vs_weights")
PANELS = [("mean_kv_utilization", "mean KV utilization"), ("peak_kv_blocks_beyond_fp", "peak KV blocks beyond FP"),
          ("mean_queueing_delay_reduction", "queueing delay: FP / policy"), ("total_preemptions", "preemptions"),
          ("layer_store_mb", "layer store host memory (MB)")]


def summary_rows(results: dict[str, ReplayResult], baseline: str, simulated: bool) -> list[dict]:
    rows = compare(results, baseline, simulated)
    static_int4 = next((row for row, result in zip(rows, results.values()) if _is_static_int4(result)), None)
    for row in rows:
        row["layer_store_mb"] = row["layer_store_bytes"] / MB
        if static_int4 is not None:
            row["kv_utilization_vs_static_int4"] = row["mean_kv_utilization"] / static_int4["mean_kv_utilization"]
    return [{column: row.get(column) for column in COLUMNS} for row in rows]


def _is_static_int4(result: ReplayResult) -> bool:
    policy = result.metadata.get("policy", {})
    return policy.get("kind") == "static" and policy.get("precision") == "int4"


register_schemas()


@hydra.main(config_path="../configs", config_name="figure", version_base=None)
def main(raw: DictConfig) -> None:
    cfg = OmegaConf.to_object(raw)
    rows = summary_rows(run_policies_with_baseline(cfg, "the summary compares with"), cfg.baseline,
                        cfg.backend.simulated)
    print(format_table(rows, COLUMNS))
    files = plot_policy_bars(rows, PANELS, Path(cfg.figure_dir), "summary_section4",
                             title=f"{cfg.model.name}, {cfg.trace.kind} trace")
    print(f"wrote {files.png} and {files.csv}")


if __name__ == "__main__":
    main()
