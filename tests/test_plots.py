"""Paper figures: each writes a non-empty PNG and the CSV of the plotted data; helpers computed by hand."""
import csv
from pathlib import Path

import numpy as np
import pytest

from experiments.metrics.timeline import Timeline
from experiments.fig4_pareto import ParetoPoint, pareto_frontier, plot_pareto
from experiments.fig5_kv_capacity import plot_kv_capacity
from experiments.fig6_rate_sweep import RateSweepPoint, plot_rate_sweep
from experiments.fig7_tpot_cdf import empirical_cdf, plot_tpot_cdf

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 5000


def test_pareto_frontier_keeps_undominated_points():
    fp, morph, int4, bad = (ParetoPoint("fp", 9000, 0.30), ParetoPoint("morph_accuracy", 2000, 0.298),
                            ParetoPoint("static_int4", 1800, 0.27), ParetoPoint("x", 5000, 0.25))
    assert pareto_frontier([fp, morph, int4, bad]) == [int4, morph, fp]


def test_fig4_writes_png_and_csv(tmp_path):
    points = [ParetoPoint("fp", 9000, 0.30), ParetoPoint("morph_accuracy", 2000, 0.298),
              ParetoPoint("x", 5000, 0.25)]
    files = plot_pareto(points, tmp_path, title="azure code / qmsum")
    assert_png(files.png)
    rows = read_csv(files.csv)
    assert [(r["policy"], r["on_frontier"]) for r in rows] == [("fp", "True"), ("morph_accuracy", "True"),
                                                               ("x", "False")]


def test_fig5_writes_png_and_long_format_csv(tmp_path):
    times = np.array([0.0, 1.0, 2.0])
    timelines = {
        "fp": Timeline(times, {"kv_blocks_used": np.array([5, 8, 8]), "kv_blocks_capacity": np.array([8, 8, 8])}),
        "morph_accuracy": Timeline(times, {"kv_blocks_used": np.array([5, 10, 6]),
                                           "kv_blocks_capacity": np.array([8, 12, 8])}),
    }
    files = plot_kv_capacity(timelines, fp_capacity_blocks=8, out_dir=tmp_path)
    assert_png(files.png)
    rows = read_csv(files.csv)
    assert len(rows) == 6
    assert rows[4] == {"policy": "morph_accuracy", "time_s": "1.0", "kv_blocks_used": "10.0",
                       "kv_blocks_capacity": "12.0"}
    with pytest.raises(ValueError, match=r"'fp' lacks series \['kv_blocks_capacity'\]"):
        plot_kv_capacity({"fp": Timeline(times, {"kv_blocks_used": times})}, 8, tmp_path)


def test_fig6_writes_png_and_csv(tmp_path):
    points = [RateSweepPoint(policy, rate, ttft, tput) for policy, scale in (("fp", 1.0), ("morph_accuracy", 0.4))
              for rate, ttft, tput in ((0.5, 300 * scale, 40.0), (1.0, 2000 * scale, 60.0), (2.0, 9000 * scale, 62))]
    files = plot_rate_sweep(points, tmp_path)
    assert_png(files.png)
    assert len(read_csv(files.csv)) == 6
    with pytest.raises(ValueError, match="nothing to plot: points is empty"):
        plot_rate_sweep([], tmp_path)


def test_empirical_cdf():
    x, cdf = empirical_cdf([30.0, 10.0, 20.0, 20.0])
    np.testing.assert_array_equal(x, [10.0, 20.0, 20.0, 30.0])
    np.testing.assert_allclose(cdf, [0.25, 0.5, 0.75, 1.0])


def test_fig7_writes_png_and_csv(tmp_path):
    rng = np.random.default_rng(0)
    files = plot_tpot_cdf({"fp": rng.normal(50, 5, 200), "morph_accuracy": rng.normal(45, 4, 200)}, tmp_path)
    assert_png(files.png)
    rows = read_csv(files.csv)
    assert len(rows) == 400 and rows[199]["cdf"] == "1.0"
    with pytest.raises(ValueError, match="the TPOTs of 'fp' is empty"):
        plot_tpot_cdf({"fp": []}, tmp_path)


def test_motivation_figure_panels_from_two_runs(tmp_path):
    from experiments.fig1_motivation import plot_motivation
    from experiments.metrics import RequestRecord
    from experiments.replay.run import ReplayResult
    from tests.morph_stats import step_stats

    def run(outputs, quantized):
        records = [RequestRecord(request_id=str(i), prompt_len=4, arrival_time=10.0 + i, first_scheduled_time=10.0 + i,
                                 token_times=[10.5 + i, 11.0 + i], token_quantized_layers=[quantized] * 2,
                                 finish_time=11.0 + i, output_token_ids=out) for i, out in enumerate(outputs)]
        steps = [step_stats(10.0 + t, num_quantized_layers=quantized) for t in range(3)]
        return ReplayResult({}, records, steps, 8, 10.0)

    results = {"fp": run([[1, 2], [3, 4]], 0), "static_int4": run([[1, 9], [3, 4]], 2)}
    files = plot_motivation(results, "fp", 2000.0, tmp_path)
    rows = list(csv.DictReader(files.csv.open()))
    loss = {(r["policy"], r["time_s"]): float(r["value"]) for r in rows if r["panel"] == "quality_loss"}
    assert loss == {("fp", "0.0"): 0.0, ("fp", "1.0"): 0.0, ("static_int4", "0.0"): 0.5, ("static_int4", "1.0"): 0.0}
    ttft = [float(r["value"]) for r in rows if r["panel"] == "ttft_ms" and r["policy"] == "fp"]
    assert ttft == [500.0, 500.0] and files.png.stat().st_size > 0
    assert {float(r["value"]) for r in rows if r["panel"] == "quantized_layers" and r["policy"] == "static_int4"} == {2.0}


def test_policy_bars_skip_missing_values(tmp_path):
    from experiments.plots.policy_bars import plot_policy_bars
    rows = [{"policy": "fp", "a": 1.0, "b": None}, {"policy": "morph_accuracy", "a": 2.0, "b": 3.0}]
    files = plot_policy_bars(rows, [("a", "A"), ("b", "B")], tmp_path, "bars")
    assert files.png.stat().st_size > 0 and list(csv.DictReader(files.csv.open()))[1]["b"] == "3.0"
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_policy_bars([], [("a", "A")], tmp_path, "empty")
