"""The sweep summary on hand-made job folders: one row per finished job, the differing overrides as its setting, and
the quality axis the jobs support."""
import json

import pytest

from experiments.summarize_sweep import summarize


def _job(sweep, number, overrides, row, backend="real", baseline_row=None):
    job = sweep / str(number)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (job / ".hydra" / "config.yaml").write_text(f"backend:\n  kind: {backend}\n")
    base = {"policy": row["policy"], "p95_ttft_ms": 100.0, "share_tokens_quantized": 0.5}
    (job / "metrics.json").write_text(json.dumps([{**base, **row}]))
    if baseline_row is not None:
        (job / "comparison.json").write_text(json.dumps([baseline_row, {**base, **row, "mean_prefix_agreement": 0.4}]))


def test_rows_settings_and_rouge_l_quality(tmp_path):
    _job(tmp_path, 1, ["policy=morph_accuracy", "trace=azure_conv", "policy.controller.cooldown_s=2"],
         {"policy": "morph_accuracy", "rouge_l": 0.2, "p95_ttft_ms": 300.0})
    _job(tmp_path, 0, ["policy=morph_accuracy", "trace=azure_conv", "policy.controller.cooldown_s=1"],
         {"policy": "morph_accuracy", "rouge_l": 0.3})
    (tmp_path / "2" / ".hydra").mkdir(parents=True)                       # an unfinished job is left out
    rows = summarize(tmp_path)
    assert [(r["job"], r["setting"]) for r in rows] == [(0, "cooldown_s=1"), (1, "cooldown_s=2")]
    pareto = (tmp_path / "sweep_pareto.csv").read_text().splitlines()
    assert pareto[0] == "policy,p95_ttft_ms,quality,on_frontier" and pareto[1] == "cooldown_s=1,100.0,0.3,True"


def test_agreement_with_the_baseline_when_there_is_no_eval_set(tmp_path):
    fp = {"policy": "fp", "p95_ttft_ms": 900.0, "share_tokens_quantized": 0.0, "mean_prefix_agreement": 1.0}
    for job, policy in enumerate(["morph_accuracy", "morph_performance"]):
        _job(tmp_path, job, [f"policy={policy}"], {"policy": policy}, baseline_row=fp)
    rows = summarize(tmp_path)
    assert [r["mean_prefix_agreement"] for r in rows] == [0.4, 0.4] and rows[1]["setting"] == "morph_performance"
    assert [line.split(",")[2] for line in (tmp_path / "sweep_pareto.csv").read_text().splitlines()[1:]] == ["0.4"] * 2
    with pytest.raises(ValueError, match="have no rouge_l"):
        summarize(tmp_path, "rouge_l")


def test_simulated_jobs_use_the_share_of_full_precision_tokens(tmp_path):
    _job(tmp_path, 0, ["policy=static_int4"], {"policy": "static_int4", "share_tokens_quantized": 1.0}, backend="sim")
    [row] = summarize(tmp_path)
    assert row["share_tokens_fp"] == 0.0 and row["setting"] == "static_int4"
    assert (tmp_path / "sweep_pareto.csv").read_text().splitlines()[1] == "static_int4,100.0,0.0,True"


def test_an_empty_sweep_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no finished job"):
        summarize(tmp_path)
