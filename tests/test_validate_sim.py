"""experiments/validate_sim.py's comparison: the real runs' spread and the simulation's error against their mean,
on hand-made figures."""
import pytest

from experiments.validate_sim import FIGURES, compare


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
