"""Trace loaders: both published CSV formats, failed-row filtering, malformed rows, missing files."""
import logging
from pathlib import Path

import pytest

from experiments.workload.traces import (
    TraceFormatError, TraceRequest, detect_trace_format, load_azure_trace, load_burstgpt_trace, load_trace,
)

SHARED_TRACES = Path(__file__).resolve().parents[1].parent / "shared" / "traces"

AZURE_CSV = (
    "TIMESTAMP,ContextTokens,GeneratedTokens\r\n"
    "2023-11-16 18:17:03.9799600,4808,10\r\n"
    "2023-11-16 18:17:04.0319600,3180,8\r\n"
    "2023-11-16 18:17:05.4799600,110,27\r\n"
)
BURSTGPT_CSV = (
    "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\r\n"
    "744286,ChatGPT,1623,338,1961,Conversation log\r\n"
    "744287,ChatGPT,0,0,0,Conversation log\r\n"
    "744290,GPT-4,337,126,463,Conversation log\r\n"
    "744290,ChatGPT,12,0,12,API log\r\n"
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def test_azure_offsets_are_seconds_from_first_request(tmp_path):
    trace = load_azure_trace(write(tmp_path, "azure.csv", AZURE_CSV))
    assert [r.prompt_len for r in trace] == [4808, 3180, 110]
    assert [r.output_len for r in trace] == [10, 8, 27]
    assert [r.arrival_s for r in trace] == pytest.approx([0.0, 0.052, 1.5])


def test_burstgpt_drops_failed_rows_and_logs_the_count(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="experiments.workload.traces"):
        trace = load_burstgpt_trace(write(tmp_path, "burst.csv", BURSTGPT_CSV))
    assert trace == [TraceRequest(0.0, 1623, 338), TraceRequest(4.0, 337, 126), TraceRequest(4.0, 12, 0)]
    assert "dropped 1 failed requests" in caplog.text


def test_unsorted_rows_come_back_sorted(tmp_path):
    text = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n" \
           "20,ChatGPT,5,6,11,API log\n10,ChatGPT,7,8,15,API log\n"
    trace = load_burstgpt_trace(write(tmp_path, "b.csv", text))
    assert trace == [TraceRequest(0.0, 7, 8), TraceRequest(10.0, 5, 6)]


def test_format_is_detected_from_the_header(tmp_path):
    azure = write(tmp_path, "a.csv", AZURE_CSV)
    burst = write(tmp_path, "b.csv", BURSTGPT_CSV)
    assert detect_trace_format(azure) == "azure"
    assert detect_trace_format(burst) == "burstgpt"
    assert load_trace(burst) == load_burstgpt_trace(burst)
    with pytest.raises(TraceFormatError, match=r"neither Azure"):
        detect_trace_format(write(tmp_path, "c.csv", "time,tokens\n1,2\n"))
    with pytest.raises(ValueError, match="unknown trace format 'sharegpt'"):
        load_trace(azure, "sharegpt")


@pytest.mark.parametrize("bad_row, message", [
    ("2023-11-16 18:17:09.1,abc,3", r"bad ContextTokens value 'abc'"),
    ("yesterday,12,3", r"bad TIMESTAMP value 'yesterday'"),
    ("2023-11-16 18:17:09.1,12,-3", r"GeneratedTokens must be >= 0"),
    ("2023-11-16 18:17:09.1,12", r"expected 3 fields, got 2"),
    ("2023-11-16 18:17:09.1,12,3,4", r"expected 3 fields, got 4"),
])
def test_malformed_azure_row_names_file_and_line(tmp_path, bad_row, message):
    path = write(tmp_path, "azure.csv", AZURE_CSV + bad_row + "\r\n")
    with pytest.raises(TraceFormatError, match=rf"azure\.csv:5: {message}"):
        load_azure_trace(path)


def test_malformed_burstgpt_row_names_file_and_line(tmp_path):
    path = write(tmp_path, "burst.csv", BURSTGPT_CSV.replace("744290,GPT-4,337", "74x290,GPT-4,337"))
    with pytest.raises(TraceFormatError, match=r"burst\.csv:4: bad Timestamp value '74x290'"):
        load_burstgpt_trace(path)


def test_missing_columns_and_empty_traces_are_errors(tmp_path):
    with pytest.raises(TraceFormatError, match=r"header lacks columns \['GeneratedTokens'\]"):
        load_azure_trace(write(tmp_path, "a.csv", "TIMESTAMP,ContextTokens\n2023-11-16 18:17:09,1\n"))
    with pytest.raises(TraceFormatError, match="holds no requests"):
        load_azure_trace(write(tmp_path, "e.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n"))


def test_missing_file_says_where_to_get_traces(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.csv is missing.*AzurePublicDataset.*HPMLL/BurstGPT.*shared/traces"):
        load_trace(tmp_path / "nope.csv")


@pytest.mark.skipif(not SHARED_TRACES.is_dir(), reason="../shared/traces is not present")
@pytest.mark.parametrize("name, rows, span_s", [
    ("AzureLLMInferenceTrace_code.csv", 8819, 3435.9),
    ("AzureLLMInferenceTrace_conv.csv", 19366, 3501.7),
    ("BurstGPT_1_first400.csv", 400 - 17, 37269.0),
    ("BurstGPT_1_seg744286_72s.csv", 106 - 1, 71.0),
])
def test_real_traces_match_their_published_statistics(name, rows, span_s):
    trace = load_trace(SHARED_TRACES / name)
    assert len(trace) == rows
    assert trace[0].arrival_s == 0.0
    assert trace[-1].arrival_s == pytest.approx(span_s, abs=0.05)
    assert all(a.arrival_s <= b.arrival_s for a, b in zip(trace, trace[1:]))
