"""Reports: the compact table, JSON (NaN as null) and CSV (union of columns)."""
import csv
import io
import json
import math

from experiments.metrics.report import format_table, print_report

ROWS = [
    {"policy": "fp", "completed": 10, "p95_ttft_ms": 4321.5, "mean_tpot_ms": math.nan, "extra": 1},
    {"policy": "morph_accuracy", "completed": 10, "p95_ttft_ms": 812.25, "rouge_l": 0.251},
]


def test_table_has_one_aligned_row_per_policy():
    lines = format_table(ROWS).splitlines()
    assert lines[0].split() == ["policy", "completed", "p95_ttft_ms", "mean_tpot_ms", "rouge_l"]
    assert lines[2].split() == ["fp", "10", "4322", "nan"]
    assert lines[3].split() == ["morph_accuracy", "10", "812.250", "0.251"]
    assert len({len(line) for line in lines}) == 1


def test_print_report_writes_json_csv_and_the_table(tmp_path):
    stream = io.StringIO()
    files = print_report(ROWS, tmp_path / "out", stem="run", stream=stream)
    assert "morph_accuracy" in stream.getvalue() and str(files.csv) in stream.getvalue()
    loaded = json.loads(files.json.read_text())
    assert loaded[0]["mean_tpot_ms"] is None and loaded[1]["rouge_l"] == 0.251
    with files.csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["policy", "completed", "p95_ttft_ms", "mean_tpot_ms", "extra", "rouge_l"]
    assert rows[1]["extra"] == "" and rows[1]["p95_ttft_ms"] == "812.25"
