"""Trace/dataset config schemas: OmegaConf merges reject typos, bad values fail with clear messages, and a
config turns into the intended workload."""
import pytest
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError

from experiments.metrics.latency import SLO
from experiments.workload.config import DatasetConfig, TraceConfig, build_workload, load_workload_trace
from experiments.workload.scaling import mean_request_rate
from experiments.workload.traces import TraceRequest

BURSTGPT_CSV = ("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                "100,ChatGPT,900,50,950,API log\n101,ChatGPT,30,20,50,API log\n110,ChatGPT,40,10,50,API log\n")


def to_config(schema, overrides: dict):
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), overrides))


def test_csv_trace_config_loads_and_shapes(tmp_path):
    path = tmp_path / "burst.csv"
    path.write_text(BURSTGPT_CSV)
    config = to_config(TraceConfig, {"kind": "burstgpt", "path": str(path),
                                     "shaping": {"duration_s": 5, "time_scale": 1.75, "max_model_len": 512}})
    assert load_workload_trace(config) == [TraceRequest(0.0, 462, 50), TraceRequest(1.75, 30, 20)]


def test_synthetic_trace_config_and_mean_rate():
    config = to_config(TraceConfig, {"synthetic": {"num_requests": 2000, "request_rate": 4.0,
                                                   "prompt_len": {"low": 8, "high": 16}}})
    trace = load_workload_trace(config)
    assert len(trace) == 2000 and {r.prompt_len for r in trace} <= set(range(8, 17))
    assert mean_request_rate(trace) == pytest.approx(4.0, rel=0.08)
    with pytest.raises(ValueError, match="needs a positive duration"):
        mean_request_rate(trace[:1])


def test_random_dataset_config_needs_no_files():
    trace = [TraceRequest(0.0, 12, 3)]
    workload = build_workload(trace, to_config(DatasetConfig, {"seed": 5}), tokenizer=None, token_range=range(17, 99))
    assert len(workload[0].prompt_token_ids) == 12 and workload[0].output_len == 3


def test_eval_set_config_reads_the_datasets_dir(tmp_path):
    (tmp_path / "gov_report.jsonl").write_text('{"id": "g1", "context": "xyz", "input": "", "answers": ["a"]}\n')
    config = to_config(DatasetConfig, {"name": "gov_report", "datasets_dir": str(tmp_path)})

    class Chars:
        def encode(self, text):
            return [ord(c) for c in text]

    workload = build_workload([TraceRequest(0.0, 500, 3)], config, Chars(), range(1), chat_frame=("<u>", "</u>"))
    text = "".join(map(chr, workload[0].prompt_token_ids))
    assert text.startswith("<u>You are given a report") and "Report:\nxyz\n" in text and text.endswith("</u>")
    assert workload[0].dataset_id == "g1"


@pytest.mark.parametrize("schema, overrides, message", [
    (TraceConfig, {"kind": "sharegpt"}, "trace kind must be one of"),
    (TraceConfig, {"kind": "azure"}, "needs trace.path"),
    (TraceConfig, {"shaping": {"time_scale": 0}}, "time_scale must be > 0"),
    (TraceConfig, {"synthetic": {"burstiness": -1}}, "burstiness must be a finite number > 0"),
    (DatasetConfig, {"name": "squad"}, "dataset name must be one of"),
    (SLO, {"ttft_ms": -5}, "SLO ttft_ms must be > 0"),
])
def test_bad_values_fail_with_clear_messages(schema, overrides, message):
    with pytest.raises(ValueError, match=message):
        to_config(schema, overrides)


def test_typos_fail_at_merge():
    with pytest.raises(ConfigKeyError, match="time_scal"):
        to_config(TraceConfig, {"shaping": {"time_scal": 4.75}})
