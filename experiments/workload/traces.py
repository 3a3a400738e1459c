"""Loaders for the published request-arrival traces: Azure LLM inference 2023 and BurstGPT CSVs.

Both loaders return requests sorted by arrival, with ``arrival_s`` measured from the first request.
"""
import csv
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

logger = logging.getLogger(__name__)

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
BURSTGPT_COLUMNS = ("Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens", "Log Type")

WHERE_TO_GET_TRACES = (
    "Azure traces: https://github.com/Azure/AzurePublicDataset (data/AzureLLMInferenceTrace_{code,conv}.csv); "
    "BurstGPT: https://github.com/HPMLL/BurstGPT (data/BurstGPT_1.csv). "
    "In the MorphServe workspace, ../shared/traces holds copies of both."
)


class TraceFormatError(ValueError):
    """A trace file does not have the published format; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class TraceRequest:
    """One request of a trace: when it arrives and how many tokens it reads and writes."""
    arrival_s: float    # seconds from the first request of the trace (or of the selected window)
    prompt_len: int     # tokens
    output_len: int     # tokens


def load_trace(path: str | Path, trace_format: str = "auto") -> list[TraceRequest]:
    """Load an Azure 2023 or BurstGPT CSV; ``trace_format`` is "azure", "burstgpt" or "auto" (from the header)."""
    loaders = {"azure": load_azure_trace, "burstgpt": load_burstgpt_trace}
    if trace_format == "auto":
        trace_format = detect_trace_format(path)
    if trace_format not in loaders:
        raise ValueError(f"unknown trace format {trace_format!r}; expected one of {sorted(loaders)} or 'auto'")
    return loaders[trace_format](path)


def detect_trace_format(path: str | Path) -> str:
    """Return "azure" or "burstgpt" from the CSV header."""
    header = tuple(_read_header(_existing_file(path)))
    for name, columns in (("azure", AZURE_COLUMNS), ("burstgpt", BURSTGPT_COLUMNS)):
        if set(columns) <= set(header):
            return name
    raise TraceFormatError(
        f"{path}:1: header {list(header)} is neither Azure {list(AZURE_COLUMNS)} nor BurstGPT {list(BURSTGPT_COLUMNS)}"
    )


def load_azure_trace(path: str | Path) -> list[TraceRequest]:
    """Azure LLM inference 2023: TIMESTAMP (``YYYY-MM-DD HH:MM:SS.fffffff``), ContextTokens, GeneratedTokens."""
    path = _existing_file(path)
    stamps, prompt_lens, output_lens = [], [], []
    for line, row in _data_rows(path, AZURE_COLUMNS):
        stamp = _parse_value(row["TIMESTAMP"], datetime.fromisoformat, "TIMESTAMP", path, line)
        if stamps and (stamp.tzinfo is None) != (stamps[0].tzinfo is None):
            raise TraceFormatError(f"{path}:{line}: TIMESTAMP {row['TIMESTAMP']!r} mixes time-zone-aware and naive "
                                   "times (the first row's is " + ("naive" if stamps[0].tzinfo is None else "aware") + ")")
        stamps.append(stamp)
        prompt_lens.append(_parse_token_count(row, "ContextTokens", path, line))
        output_lens.append(_parse_token_count(row, "GeneratedTokens", path, line))
    times_s = [(stamp - stamps[0]).total_seconds() for stamp in stamps]
    return _sorted_requests(path, times_s, prompt_lens, output_lens)


def load_burstgpt_trace(path: str | Path) -> list[TraceRequest]:
    """BurstGPT: Timestamp (s), Request tokens, Response tokens, ... Failed rows (both counts 0) are dropped."""
    path = _existing_file(path)
    times_s, prompt_lens, output_lens = [], [], []
    num_failed = 0
    for line, row in _data_rows(path, BURSTGPT_COLUMNS):
        time_s = _parse_value(row["Timestamp"], _finite_float, "Timestamp", path, line)
        prompt_len = _parse_token_count(row, "Request tokens", path, line)
        output_len = _parse_token_count(row, "Response tokens", path, line)
        if prompt_len == 0 and output_len == 0:
            num_failed += 1
            continue
        times_s.append(time_s)
        prompt_lens.append(prompt_len)
        output_lens.append(output_len)
    logger.info("%s: dropped %d failed requests (request and response tokens both 0)", path, num_failed)
    return _sorted_requests(path, times_s, prompt_lens, output_lens)


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trace file {path} is missing. {WHERE_TO_GET_TRACES}")
    return path


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _read_header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        return next(csv.reader(f), [])


def _data_rows(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) for every data row, after checking the header and the field count. A byte-order
    mark before the header is skipped."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise TraceFormatError(f"{path}:1: header lacks columns {missing}; got {reader.fieldnames}")
        for row in reader:
            num_fields = len(reader.fieldnames) + len(row.get(None, [])) - list(row.values()).count(None)
            if num_fields != len(reader.fieldnames):
                raise TraceFormatError(
                    f"{path}:{reader.line_num}: expected {len(reader.fieldnames)} fields, got {num_fields}"
                )
            yield reader.line_num, row


def _parse_value(text: str, parse: Callable, column: str, path: Path, line: int):
    try:
        return parse(text.strip())
    except ValueError as error:
        raise TraceFormatError(f"{path}:{line}: bad {column} value {text!r} ({error})") from None


def _parse_token_count(row: dict[str, str], column: str, path: Path, line: int) -> int:
    count = _parse_value(row[column], int, column, path, line)
    if count < 0:
        raise TraceFormatError(f"{path}:{line}: {column} must be >= 0, got {count}")
    return count


def _sorted_requests(path: Path, times_s: list[float], prompt_lens: list[int],
                     output_lens: list[int]) -> list[TraceRequest]:
    """Sort by arrival and measure arrivals from the first request."""
    if not times_s:
        raise TraceFormatError(f"{path}: the trace holds no requests")
    order = sorted(range(len(times_s)), key=times_s.__getitem__)
    first_s = times_s[order[0]]
    return [TraceRequest(times_s[i] - first_s, prompt_lens[i], output_lens[i]) for i in order]
