"""The paper-scale summary gathers each model and trace's comparison and Figure 6 saturation into one row per policy,
and says what to run when there is nothing to gather."""
import json

import pytest

from experiments.paper_scale_summary import summary_rows


def _comparison(policy: str, p95_ttft_ms: float, reduction: float) -> dict:
    return {"policy": policy, "p95_ttft_ms": p95_ttft_ms, "p95_ttft_reduction": reduction,
            "ttft_slo_violation_rate": 0.5, "throughput_vs_fp": 1.2, "tpot_ratio_mean": 0.9,
            "p99_tpot_reduction": 1.1, "share_tokens_quantized": 0.25, "mean_quantized_layers_per_token": 3.5}


def test_one_row_per_model_trace_and_policy_with_the_saturation_where_figure_6_ran(tmp_path):
    conv = tmp_path / "llama-2-7b" / "azure_conv_paper"
    code = tmp_path / "llama-2-7b" / "azure_code_paper"
    for folder in (conv, code):
        folder.mkdir(parents=True)
        (folder / "comparison.json").write_text(json.dumps([_comparison("fp", 9000.0, 1.0),
                                                            _comparison("static_int4", 3000.0, 3.0)]))
    (conv / "fig6_saturation.csv").write_text(
        "policy,saturation_rate,throughput_at_saturation,bound,saturation_rate_vs_fp,throughput_at_saturation_vs_fp\n"
        "fp,1.5,300,interpolated,1.0,1.0\nstatic_int4,2.5,450,beyond the highest rate,1.67,1.5\n")
    rows = summary_rows(tmp_path)
    assert [(r["trace"], r["policy"]) for r in rows] == [("azure_code_paper", "fp"), ("azure_code_paper", "static_int4"),
                                                         ("azure_conv_paper", "fp"), ("azure_conv_paper", "static_int4")]
    int4 = rows[3]
    assert (int4["model"], int4["p95_ttft_s"], int4["p95_ttft_reduction"]) == ("llama-2-7b", 3.0, 3.0)
    assert (int4["saturation_rate"], int4["throughput_at_saturation_vs_fp"]) == (2.5, 1.5)
    assert int4["saturation_bound"] == "beyond the highest rate"
    assert int4["mean_quantized_layers_per_token"] == 3.5
    assert "saturation_rate" not in rows[1]                  # no Figure 6 on the code window


def test_nothing_to_gather_names_the_script_that_makes_it(tmp_path):
    with pytest.raises(SystemExit, match="reproduce_paper_scale.sh"):
        summary_rows(tmp_path)
