"""Metrics reports: a compact table on a text stream (one row per policy) and the full rows as JSON and CSV."""
import csv
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

Row = dict[str, object]

COMPACT_COLUMNS = (
    "policy", "completed", "p95_ttft_ms", "mean_tpot_ms", "p99_tpot_ms", "ttft_slo_violation_rate",
    "request_throughput", "output_throughput", "request_goodput", "rouge_l", "f1", "mean_prefix_agreement",
    "share_tokens_quantized",
)


@dataclass(frozen=True, slots=True)
class ReportFiles:
    json: Path
    csv: Path


def print_report(rows: Sequence[Row], out_dir: str | Path, stem: str = "metrics",
                 stream: TextIO = sys.stdout) -> ReportFiles:
    """Write ``<stem>.json`` and ``<stem>.csv`` under ``out_dir``, then the compact table and their paths."""
    files = write_report(rows, out_dir, stem)
    stream.write(format_table(rows) + "\n")
    stream.write(f"full metrics: {files.json} and {files.csv}\n")
    return files


def write_report(rows: Sequence[Row], out_dir: str | Path, stem: str = "metrics") -> ReportFiles:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(out_dir / f"{stem}.json", out_dir / f"{stem}.csv")
    files.json.write_text(json.dumps([_json_safe(row) for row in rows], indent=2, ensure_ascii=False) + "\n")
    write_csv(rows, files.csv)
    return files


def write_csv(rows: Sequence[Row], path: str | Path) -> Path:
    """Columns are the union of the rows' keys in first-seen order; a missing value is left empty."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=_all_columns(rows), restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path


def format_table(rows: Sequence[Row], columns: Sequence[str] = COMPACT_COLUMNS) -> str:
    """Fixed-width text table of the ``columns`` that at least one row has."""
    shown = [c for c in columns if any(c in row for row in rows)]
    cells = [shown] + [[_format_cell(row.get(c, "")) for c in shown] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(shown))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(line, widths)) for line in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _format_cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def _all_columns(rows: Sequence[Row]) -> list[str]:
    return list(dict.fromkeys(key for row in rows for key in row))


def _json_safe(row: Row) -> Row:
    """NaN is not JSON: write it as null."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
