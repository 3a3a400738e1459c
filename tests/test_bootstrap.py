"""Bootstrap confidence intervals on hand-made examples."""
import numpy as np
import pytest

from experiments.metrics.bootstrap import MeanInterval, bootstrap_mean_ci, paired_bootstrap_ci


def test_a_constant_difference_has_a_point_interval():
    interval = paired_bootstrap_ci([0.1, 0.5, 0.9], [0.2, 0.6, 1.0])
    assert (interval.mean, interval.low, interval.high) == pytest.approx((0.1, 0.1, 0.1))


def test_two_opposite_differences_span_both():
    # resampling two differences {+1, -1}: means -1, 0, +1 with probabilities 1/4, 1/2, 1/4
    interval = paired_bootstrap_ci([0.0, 1.0], [1.0, 0.0])
    assert interval == MeanInterval(0.0, -1.0, 1.0)


def test_the_interval_of_a_known_sample_matches_its_resampled_means():
    values = [1.0, 2.0, 3.0, 10.0]
    interval = bootstrap_mean_ci(values, confidence=0.5, num_resamples=20_000, seed=3)
    # all 4^4 equally likely resamples, enumerated: their quartiles are the exact 50 % interval
    grid = np.array(np.meshgrid(*[values] * 4)).reshape(4, -1).mean(axis=0)
    assert interval.mean == 4.0
    assert interval.low == pytest.approx(np.quantile(grid, 0.25), abs=0.3)
    assert interval.high == pytest.approx(np.quantile(grid, 0.75), abs=0.3)


def test_pairing_resolves_a_small_shift_that_request_spread_would_hide():
    rng = np.random.default_rng(0)
    baseline = rng.uniform(0.0, 1.0, size=60)                     # requests differ a lot
    candidate = baseline - 0.01 + rng.normal(0.0, 0.002, size=60)   # every request loses about 0.01
    paired = paired_bootstrap_ci(baseline, candidate)
    assert paired.high < 0 and paired.low > -0.02
    unpaired_low = bootstrap_mean_ci(candidate).low - bootstrap_mean_ci(baseline).high
    assert unpaired_low < -0.1                                    # independent intervals overlap widely


def test_the_same_seed_gives_the_same_interval_and_bad_input_is_refused():
    assert bootstrap_mean_ci([0.3, 0.1, 0.7], seed=5) == bootstrap_mean_ci([0.3, 0.1, 0.7], seed=5)
    with pytest.raises(ValueError, match="one per request"):
        paired_bootstrap_ci([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_mean_ci([])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_mean_ci([1.0], confidence=1.0)
