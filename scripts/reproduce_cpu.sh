#!/usr/bin/env bash
# Regenerates every CPU result of docs/experiments.md (tables, figures) from the real traces and eval sets: the
# perplexity table and Table 1, the LIS profiles the replays use, the README's main job, per workload the policy
# comparison with confidence intervals and Figures 1, 4, 5, 7 and the section-4 summary, Figure 6's rate sweep and a
# 12-job threshold sweep with its summary. Needs the shared data folder (default ../shared; set SHARED=/path).
# Several hours on the 2-core machine (docs/experiments.md says how long each part took); run it on an idle machine.
#
# Replays are saved under results/figures/<workload>/runs (and results/runs) and reused only when their config and
# the code that made them match: each prints "reusing" or "replaying ... (why)".
# SMOKE=1 runs every command on a tiny configuration (a few requests, RTN variants, one short window), to check in
# minutes that the whole pipeline runs; its numbers mean nothing, and it writes under results/smoke/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/shared_data.sh
require_shared traces/AzureLLMInferenceTrace_code.csv traces/AzureLLMInferenceTrace_conv.csv \
  traces/BurstGPT_1_seg744286_72s.csv datasets/wikitext2_tokens_valid.txt datasets/qmsum_val_goldspan.jsonl \
  datasets/gov_report.jsonl datasets/longbench_multi_news.jsonl datasets/dureader.jsonl

RESULTS=results
INT4=awq-int4-g128
QUANT=(quant.method=awq "quant.calibration_text=$SHARED/datasets/wikitext2_tokens_valid.txt")
EVAL=(data.datasets_dir="$SHARED/datasets")
PROFILE=()
REPLAY=()
SCALES='[3.0,2.0,1.5,1.0,0.75]'
if [ "${SMOKE:-0}" = 1 ]; then
  RESULTS=results/smoke INT4=rtn-int4-g128 QUANT=(quant.method=rtn) SCALES='[2.0,1.0]'
  EVAL+=(data.num_windows=1 data.window_len=64)
  PROFILE=(calibration.seq_len=32 calibration.num_seqs=1)
  REPLAY=(trace.shaping.keep_every=150 trace.synthetic.num_requests=4 model.output_len=16 "runs_dir=$RESULTS/runs")
fi
ORDERS=$RESULTS/swap_orders

# Quality of the variants (docs/quality.md): perplexity, the LIS profiles of the embedded model for the AWQ variant
# (the figure runs) and the RTN variant (the README's main job), Table 1.
[ "${SMOKE:-0}" = 1 ] || python3 experiments/perplexity.py "${EVAL[@]}"
for variant in $(printf '%s\n' $INT4 rtn-int4-g128 | sort -u); do
  python3 experiments/profile_layers.py "${EVAL[@]}" "${PROFILE[@]}" int4_variant=$variant \
    "output_path=$ORDERS/smollm2-135m-$variant-lis.json"
done
[ "${SMOKE:-0}" = 1 ] || python3 experiments/table1.py "${EVAL[@]}"

# The README's main job: the default burst under full precision and MorphServe, side by side.
python3 experiments/run_replay.py "${REPLAY[@]}" "policy.swap_order.profile_dir=$ORDERS" "hydra.run.dir=$RESULTS/replay/morph_accuracy"

# Per workload (trace:eval set): the comparison with bootstrap intervals, Figures 1, 4, 5 and 7, the section-4
# summary; every script after the first reuses the four policies' runs.
for pair in azure_conv:qmsum_goldspan azure_code:gov_report burstgpt:multi_news azure_conv:dureader; do
  trace=${pair%%:*} dataset=${pair##*:}
  for script in compare_policies fig1_motivation fig4_pareto fig5_kv_capacity fig7_tpot_cdf summary_figures; do
    python3 experiments/$script.py trace=$trace dataset=$dataset "${QUANT[@]}" "${REPLAY[@]}" \
      "swap_order.profile_dir=$ORDERS" "figure_dir=$RESULTS/figures/$trace-$dataset"
  done
done

# Figure 6: the rate sweep of the four policies on the conv window (its 1.5x point is the run above).
python3 experiments/fig6_rate_sweep.py trace=azure_conv dataset=qmsum_goldspan "time_scales=$SCALES" "${QUANT[@]}" \
  "${REPLAY[@]}" "swap_order.profile_dir=$ORDERS" "figure_dir=$RESULTS/figures/azure_conv-qmsum_goldspan"

# A 12-job sweep (the two morph modes x three KV triggers x LIS or front-to-back order), one job after another
# (the replays measure time: no parallel launcher here), and its summary table and Pareto plot.
python3 experiments/run_replay.py -m trace=azure_conv dataset=qmsum_goldspan "${QUANT[@]}" "${REPLAY[@]}" \
  policy=morph_accuracy,morph_performance policy.controller.kv_usage_trigger=0.85,0.9,0.95 \
  policy.swap_order.source=lis,front_to_back "policy.swap_order.profile_dir=$ORDERS" \
  "hydra.sweep.dir=$RESULTS/sweeps/kv_trigger_x_order"
python3 experiments/summarize_sweep.py "$RESULTS/sweeps/kv_trigger_x_order"
