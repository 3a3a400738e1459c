"""The saturation point of a rate sweep, computed by hand."""
import pytest

from experiments.metrics.saturation import AT_OR_BELOW, BEYOND, INTERPOLATED, LoadPoint, saturation


def test_the_crossing_is_interpolated_between_the_points_around_it():
    points = [LoadPoint(2.0, 3000.0, 80.0), LoadPoint(0.5, 400.0, 40.0), LoadPoint(1.0, 1200.0, 60.0)]
    point = saturation(points, slo_ttft_ms=2000.0)     # 1200 -> 3000 ms between 1.0 and 2.0 req/s: 4/9 of the way
    assert point.bound == INTERPOLATED
    assert point.request_rate == pytest.approx(1.0 + 4 / 9) and point.output_throughput == pytest.approx(60 + 20 * 4 / 9)


def test_bounds_when_the_sweep_does_not_bracket_the_crossing():
    assert saturation([LoadPoint(1.0, 2500.0, 10.0), LoadPoint(2.0, 5000.0, 12.0)], 2000.0).bound == AT_OR_BELOW
    beyond = saturation([LoadPoint(1.0, 500.0, 10.0), LoadPoint(2.0, 900.0, 20.0)], 2000.0)
    assert (beyond.bound, beyond.request_rate, beyond.output_throughput) == (BEYOND, 2.0, 20.0)
    with pytest.raises(ValueError, match="at least one"):
        saturation([], 2000.0)


def test_rows_per_policy_with_ratios_to_the_baseline():
    from experiments.fig6_rate_sweep import RateSweepPoint, saturation_rows
    points = [RateSweepPoint("fp", 1.0, 1000.0, 50.0), RateSweepPoint("fp", 2.0, 3000.0, 60.0),
              RateSweepPoint("morph", 1.0, 500.0, 55.0), RateSweepPoint("morph", 2.0, 1500.0, 90.0)]
    fp, morph = saturation_rows(points, 2000.0, "fp")
    assert (fp["saturation_rate"], fp["throughput_at_saturation"]) == (1.5, 55.0)
    assert morph["bound"] == BEYOND and morph["saturation_rate_vs_fp"] == pytest.approx(2.0 / 1.5)
    assert morph["throughput_at_saturation_vs_fp"] == pytest.approx(90.0 / 55.0)
