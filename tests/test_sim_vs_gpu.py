"""benchmarks/sim_vs_gpu.py: every point of the recorded H200 run predicted beside its measurement, the swap
predictions following the hardware's link and checksum speeds, a missing result refused by name."""
import dataclasses
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import sim_vs_gpu  # noqa: E402

RUN = ROOT / "docs" / "gpu_runs" / "2026-11-29-h200.json"


@pytest.fixture(scope="module")
def measured() -> dict:
    return json.loads(RUN.read_text())


@pytest.fixture(scope="module")
def h200():
    return sim_vs_gpu.load_hardware_yaml(str(ROOT / "configs" / "hardware" / "h200.yaml"))


def test_every_measured_point_has_a_prediction_and_its_error(measured, h200):
    rows = sim_vs_gpu.comparisons(measured, h200)
    assert len(rows) == len(measured["decode"]) + len(measured["prefill"]) + 3
    assert rows[0]["measured_ms"] == measured["decode"][0]["step_ms"]
    for row in rows:
        assert row["predicted_ms"] > 0
        assert row["error"] == pytest.approx(row["predicted_ms"] / row["measured_ms"] - 1)
    by_point = {row["point"]: row["predicted_ms"] for row in rows}
    assert by_point["decode int4 batch 1 ctx 512"] < by_point["decode fp batch 1 ctx 512"]
    assert by_point["decode fp batch 64 ctx 4096"] > by_point["decode fp batch 1 ctx 4096"]


def test_swap_predictions_follow_the_link_and_checksum_speeds(measured, h200):
    base = {r["point"]: r["predicted_ms"] for r in sim_vs_gpu.comparisons(measured, h200)}
    faster = dataclasses.replace(h200, host_link_gbs=2 * h200.host_link_gbs, checksum_gbs=4 * h200.checksum_gbs)
    quick = {r["point"]: r["predicted_ms"] for r in sim_vs_gpu.comparisons(measured, faster)}
    assert quick["swap copy INT4->FP per layer"] == pytest.approx(base["swap copy INT4->FP per layer"] / 2)
    assert quick["swap verify INT4 variant per layer"] == pytest.approx(base["swap verify INT4 variant per layer"] / 4)
    assert base["swap copy INT4->FP per layer"] > 3 * base["swap copy FP->INT4 per layer"]   # ~3.6x the bytes


def test_a_missing_result_is_refused_by_name(tmp_path):
    with pytest.raises(SystemExit, match="no GPU benchmark result at .*absent.json"):
        sim_vs_gpu.main([str(tmp_path / "absent.json")])
