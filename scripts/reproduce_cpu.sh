#!/usr/bin/env bash
# Regenerates every CPU result of docs/ (tables, figures) from the real traces and eval sets.
# Needs the shared data folder (default ../shared; set SHARED=/path). Takes about 1.5-2 hours on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/shared_data.sh
require_shared traces/AzureLLMInferenceTrace_code.csv datasets/wikitext2_tokens_valid.txt
AWQ="policy.quant_method=awq policy.calibration_text=$SHARED/datasets/wikitext2_tokens_valid.txt"

# Issue 3 / Table 1: perplexity of the variants, LIS profiling, perplexity per swap order.
python3 experiments/perplexity.py data.datasets_dir="$SHARED/datasets"
python3 experiments/profile_layers.py data.datasets_dir="$SHARED/datasets"
python3 experiments/table1.py data.datasets_dir="$SHARED/datasets"

# Figures 4, 5, 7 share their replays: one run per policy and trace, saved under results/figures/<trace>/runs
# and reused by every script given the same configuration. Each trace is paired with an eval set for quality.
for pair in azure_code:gov_report azure_conv:qmsum_goldspan; do
  trace=${pair%%:*} dataset=${pair##*:}
  for figure in fig4_pareto fig5_kv_capacity fig7_tpot_cdf compare_policies; do
    python3 experiments/$figure.py trace=$trace dataset=$dataset $AWQ figure_dir=results/figures/$trace
  done
done
# Figure 6 (its 1.5x point is the run above).
python3 experiments/fig6_rate_sweep.py trace=azure_conv dataset=qmsum_goldspan 'policies=[fp,morph_accuracy]' \
  'time_scales=[3.0,1.5,1.0]' $AWQ figure_dir=results/figures/azure_conv
