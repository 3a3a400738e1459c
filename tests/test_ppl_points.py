"""The Table 1 points file: kept between runs, shared by runs in parallel, refused for another setup."""
import pytest

from experiments.eval.ppl_points import PerplexityPoints

IDENTITY = {"model_hash": "abc", "int4_variant": "awq-int4-g128", "num_windows": 4}


def test_points_survive_a_restart(tmp_path):
    path = tmp_path / "points.json"
    PerplexityPoints(path, IDENTITY).put([2, 0], 31.5)
    assert PerplexityPoints(path, IDENTITY).get((0, 2)) == 31.5
    assert PerplexityPoints(path, IDENTITY).get([1]) is None


def test_parallel_runs_see_and_keep_each_others_points(tmp_path):
    path = tmp_path / "points.json"
    first, second = PerplexityPoints(path, IDENTITY), PerplexityPoints(path, IDENTITY)
    first.put([0], 30.0)
    second.put([1], 31.0)
    assert first.get([1]) == 31.0 and second.get([0]) == 30.0
    assert PerplexityPoints(path, IDENTITY).points == {frozenset([0]): 30.0, frozenset([1]): 31.0}


def test_another_setup_is_refused(tmp_path):
    path = tmp_path / "points.json"
    PerplexityPoints(path, IDENTITY).put([], 29.0)
    with pytest.raises(ValueError, match="holds perplexities of another setup"):
        PerplexityPoints(path, IDENTITY | {"num_windows": 40})


def test_without_a_file_points_live_in_memory(tmp_path):
    points = PerplexityPoints(None, IDENTITY)
    points.put([3], 33.0)
    assert points.get([3]) == 33.0 and not list(tmp_path.iterdir())
