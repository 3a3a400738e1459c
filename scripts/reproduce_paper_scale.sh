#!/usr/bin/env bash
# The paper's experiments at paper scale, simulated (backend=sim): Vicuna-7B, Llama-2-7B and Llama-3-8B on an L4,
# CodeLlama-34B on an A100; the Azure conv and code windows (time x4.75) and BurstGPT (x1.75); policies fp,
# static_int4, morph_accuracy, morph_performance. Writes Figures 1 and 4-7 (6: saturation rate and throughput there),
# the TPOT ratios, the section-4 summary and comparison tables per model and trace under
# results/paper_scale/<model>/<trace>/ (quality cannot be simulated: the share of full-precision tokens stands in),
# then results/paper_scale/paper_scale_summary.{csv,json}: every model, trace and policy in one table beside the
# paper's headlines. Needs the shared traces (SHARED, default ../shared); no GPU, no checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/shared_data.sh
require_shared traces/AzureLLMInferenceTrace_conv.csv traces/AzureLLMInferenceTrace_code.csv \
  traces/BurstGPT_1_seg744286_72s.csv

for pair in vicuna-7b-v1.5:l4 llama-2-7b:l4 llama-3-8b:l4 codellama-34b:a100; do
  model=${pair%%:*} gpu=${pair##*:}
  for trace in azure_conv_paper azure_code_paper burstgpt_paper; do
    out=results/paper_scale/$model/$trace
    args=(backend=sim engine=gpu hardware=$gpu model=$model trace=$trace figure_dir=$out)
    for figure in compare_policies fig1_motivation fig4_pareto fig5_kv_capacity fig7_tpot_cdf summary_figures; do
      python3 experiments/$figure.py "${args[@]}"
    done
    # From far below the paper's load (FP was already past the SLO at x9.5 on Azure and x3.5 on BurstGPT for every
    # model) to the paper's x4.75 (Azure) and x1.75 (BurstGPT) and beyond, so that each policy's crossing is bracketed.
    scales='[60,40,25,15,9.5,7.0,4.75,3.5]'
    [ "$trace" = burstgpt_paper ] && scales='[22,15,9.5,5.5,3.5,2.6,1.75,1.3]'
    python3 experiments/fig6_rate_sweep.py "${args[@]}" "time_scales=$scales"
  done
done
python3 experiments/paper_scale_summary.py results/paper_scale
