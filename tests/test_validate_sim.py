"""experiments/validate_sim.py's comparison: the real runs' spread and the simulation's error against their mean,
on hand-made figures."""
import math

import pytest

from experiments.validate_sim import FIGURES, compare, error_summary, probed_scales


def _figures(value: float) -> dict:
    return {figure: value for figure in FIGURES}


def test_spread_and_error_against_the_mean_of_the_real_runs():
    rows = compare([_figures(90.0), _figures(110.0)], _figures(105.0))
    assert [r["figure"] for r in rows] == list(FIGURES)
    for row in rows:
        assert (row["real_1"], row["real_2"], row["sim"]) == (90.0, 110.0, 105.0)
        assert row["real_spread_pct"] == pytest.approx(20.0)          # (110 - 90) / 100
        assert row["error_pct"] == pytest.approx(5.0)                 # (105 - 100) / 100


def test_one_real_run_has_no_spread_and_a_zero_figure_is_exact_or_infinitely_off():
    real = _figures(50.0) | {"morph_transitions": 0}
    rows = {r["figure"]: r for r in compare([real], _figures(40.0) | {"morph_transitions": 0})}
    assert rows["p95_ttft_ms"]["real_spread_pct"] == 0 and rows["p95_ttft_ms"]["error_pct"] == pytest.approx(-20.0)
    assert rows["morph_transitions"]["error_pct"] == 0.0
    off = {r["figure"]: r for r in compare([real], _figures(40.0) | {"morph_transitions": 3})}
    assert off["morph_transitions"]["error_pct"] == float("inf")


def test_the_simulation_at_the_probed_speed_gets_its_own_error_and_summaries_skip_what_was_not_measured():
    rows = compare([_figures(90.0), _figures(110.0)], _figures(130.0), _figures(102.0), time_scale=0.8)
    for row in rows:
        assert row["error_pct"] == pytest.approx(30.0) and row["time_scale"] == 0.8
        assert (row["sim_probed"], row["error_probed_pct"]) == (102.0, pytest.approx(2.0))
    unprobed = compare([_figures(90.0)], _figures(99.0))
    assert all(math.isnan(r["error_probed_pct"]) and math.isnan(r["time_scale"]) for r in unprobed)
    summary = error_summary([-30.0, 5.0, float("nan")], "probed_")
    assert summary == {"probed_mean_abs_error_pct": 17.5, "probed_max_abs_error_pct": 30.0, "probed_within_10_pct": 1}
    assert math.isnan(error_summary([float("nan")], "")["mean_abs_error_pct"])


def test_probed_scales_give_the_fp_ratio_and_each_quantized_precisions_ratio_relative_to_it():
    table = {"fp": 2.0, "int8": 1.0, "int4": 0.5}
    probes = [{"fp": 1.5, "int8": 0.8, "int4": 0.3}, {"fp": 1.7, "int8": 0.8, "int4": 0.34}]
    time_scale, layer_scales = probed_scales(probes, table)
    assert time_scale == pytest.approx(0.8)                                 # 1.6 / 2.0
    assert layer_scales == {"int8": pytest.approx(1.0), "int4": pytest.approx(0.8)}   # (0.8 / 1.0) / 0.8, (0.32 / 0.5) / 0.8
    rows = compare([_figures(90.0)], _figures(99.0), _figures(95.0), time_scale, layer_scales)
    assert rows[0]["int4_layer_scale"] == pytest.approx(0.8) and rows[0]["int8_layer_scale"] == pytest.approx(1.0)
    assert math.isnan(compare([_figures(90.0)], _figures(99.0))[0]["int4_layer_scale"])
