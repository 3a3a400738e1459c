"""The replay entry point: config validation through Hydra, and a short end-to-end run on a tiny model."""
import dataclasses
import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf
from hydra.errors import ConfigCompositionException

from experiments.replay.config import ReplayConfig
from experiments.replay.run import run_replay
from experiments.run_replay import replay_and_plot

CONFIGS = str(Path(__file__).resolve().parents[1] / "configs")
ConfigStore.instance().store(name="replay_schema", node=ReplayConfig)


def _compose(overrides: list[str]) -> ReplayConfig:
    with initialize_config_dir(config_dir=CONFIGS, version_base=None):
        return OmegaConf.to_object(compose(config_name="config", overrides=overrides))


def test_default_config_composes_and_validates():
    cfg = _compose([])
    assert cfg.model.path == "embedded" and cfg.trace.kind == "synthetic" and cfg.policy.name == "morph_accuracy"
    assert cfg.dataset.name is None


@pytest.mark.parametrize("overrides, error, match", [
    (["policy=turbo"], ConfigCompositionException, "policy/turbo"),
    (["policy.kind=turbo"], ValueError, "policy.kind must be one of"),
    (["baseline=turbo"], ValueError, "unknown policy preset 'turbo'"),
    (["engine.memory_budget_mb=-1"], ValueError, "memory_budget_mb"),
    (["trace.kind=parquet"], ValueError, "trace kind"),
    (["engine.memroy_budget_mb=100"], ConfigCompositionException, "memroy_budget_mb"),
    (["model=llama-2-7b"], ValueError, "model.path"),
])
def test_bad_configs_fail_at_start(overrides, error, match):
    with pytest.raises(error, match=match):
        _compose(overrides)


def test_the_engine_section_selects_the_device_and_dtype(monkeypatch):
    import experiments.replay.run as replay_run
    built = []
    monkeypatch.setattr(replay_run, "LLMEngine", built.append)
    replay_run.build_engine(_compose(["engine.device=cuda:1", "engine.dtype=bfloat16", "engine.memory_budget_mb=null"]))
    replay_run.build_engine(_compose([]))
    gpu, cpu = built
    assert (gpu.device, gpu.dtype, gpu.memory_budget_bytes) == ("cuda:1", "bfloat16", None)
    assert (cpu.device, cpu.dtype, cpu.memory_budget_bytes) == ("cpu", "auto", 720 << 20)


@pytest.mark.parametrize("override,match", [("engine.device=tpu", "device must be"),
                                            ("engine.dtype=float8", "dtype must be one of")])
def test_bad_devices_and_dtypes_fail_before_the_model_loads(override, match):
    from experiments.replay.run import build_engine
    with pytest.raises(ValueError, match=match):
        build_engine(_compose([override]))


def test_paper_trace_configs_point_at_the_shared_traces():
    cfg = _compose(["trace=azure_code"])
    assert cfg.trace.kind == "azure" and cfg.trace.path.endswith("AzureLLMInferenceTrace_code.csv")
    assert cfg.trace.shaping.keep_every == 12 and cfg.trace.shaping.fixed_prompt_len == cfg.model.prompt_len


def test_short_fp_replay_end_to_end(tiny_llama, tmp_path):
    cfg = _compose([f"model.path={tiny_llama}", "model.chat_template=false", "policy=fp", "trace.synthetic.num_requests=6",
                    "trace.synthetic.request_rate=20", "trace.synthetic.prompt_len.low=8", "trace.synthetic.prompt_len.high=40",
                    "trace.synthetic.output_len.low=4", "trace.synthetic.output_len.high=12", f"output_dir={tmp_path}",
                    "engine.memory_budget_mb=8", "engine.max_model_len=256"])
    row = replay_and_plot(cfg).row
    assert row["completed"] == 6 and row["policy"] == "fp" and row["share_tokens_quantized"] == 0.0
    records = [json.loads(line) for line in open(tmp_path / "requests.jsonl")]
    assert len(records) == 6 and all(r["token_times"] for r in records)
    assert all(r["token_times"][0] >= r["arrival_time"] for r in records)
    assert (tmp_path / "fig5_kv_capacity.png").stat().st_size > 0 and (tmp_path / "metrics.json").exists()


def test_static_int4_replay_grows_the_kv_pool_and_marks_every_token(tiny_llama, tmp_path):
    cfg = _compose([f"model.path={tiny_llama}", "model.chat_template=false", "policy=static_int4",
                    "quant.variant_cache_dir=null", "trace.synthetic.num_requests=4", "trace.synthetic.request_rate=50",
                    "trace.synthetic.prompt_len.low=8", "trace.synthetic.prompt_len.high=30",
                    "trace.synthetic.output_len.low=4", "trace.synthetic.output_len.high=8", f"output_dir={tmp_path}",
                    "engine.memory_budget_mb=3.9", "engine.max_num_batched_tokens=128", "engine.max_num_seqs=8",
                    "engine.max_model_len=256", "engine.block_size=8", "plots=false"])
    result = run_replay(cfg)
    assert result.row["completed"] == 4 and result.row["share_tokens_quantized"] == 1.0
    assert min(s.kv_blocks_capacity for s in result.steps) > result.fp_kv_blocks
    events = [json.loads(line) for line in open(tmp_path / "morph_events.jsonl")]
    served, closing = events[:3], events[3:]          # closing the runtime after the replay restores full precision
    assert all(e["target"] == "int4" and e["status"] == "done" for e in served)
    assert len(closing) == 3 and all(e["target"] == "fp" and e["status"] == "done" for e in closing)


def _tiny_figure_config(tiny_llama, figure_dir, policies: str = "[fp]") -> "FigureConfig":
    from experiments.replay import figures
    figures.register_schemas()
    with initialize_config_dir(config_dir=CONFIGS, version_base=None):
        raw = compose(config_name="figure", overrides=[
            f"model.path={tiny_llama}", "model.chat_template=false", f"policies={policies}",
            "trace.synthetic.num_requests=3", "trace.synthetic.prompt_len.low=8", "trace.synthetic.prompt_len.high=20",
            "trace.synthetic.output_len.low=4", "trace.synthetic.output_len.high=6", "engine.memory_budget_mb=8",
            "engine.max_model_len=256", f"figure_dir={figure_dir}"])
    return OmegaConf.to_object(raw)


def test_figure_runs_are_shared_between_scripts(tiny_llama, tmp_path, monkeypatch):
    from experiments.replay import figures, saved_runs
    cfg = _tiny_figure_config(tiny_llama, tmp_path)
    first = figures.run_policies(cfg)["fp"]
    monkeypatch.setattr(saved_runs, "run_replay", lambda run: pytest.fail("a saved run was replayed again"))
    again = figures.run_policies(cfg)["fp"]
    assert again.row == first.row and len(again.steps) == len(first.steps)
    assert [r.token_times for r in again.records] == [r.token_times for r in first.records]
    cfg.trace.synthetic.seed = 1
    with pytest.raises(pytest.fail.Exception):
        figures.run_policies(cfg)


def test_a_run_is_reused_across_commits_of_other_files_and_replayed_for_other_code(tiny_llama, tmp_path, monkeypatch,
                                                                                    capsys):
    from experiments.replay import figures, saved_runs
    from experiments.replay.code_version import CodeVersion
    cfg = _tiny_figure_config(tiny_llama, tmp_path)
    first = figures.run_policies(cfg)["fp"]
    made_by = saved_runs.code_version()
    assert first.metadata["code_version"] == dataclasses.asdict(made_by)
    replayed = []
    monkeypatch.setattr(saved_runs, "run_replay", lambda run: replayed.append(run) or first)
    monkeypatch.setattr(saved_runs, "code_version", lambda: dataclasses.replace(made_by, commit="1" * 40))
    figures.run_policies(cfg)                         # a later commit of other files: the same sources
    assert replayed == []
    capsys.readouterr()
    monkeypatch.setattr(saved_runs, "code_version", lambda: CodeVersion("0" * 40, "other sources", "edited"))
    figures.run_policies(cfg)
    assert len(replayed) == 1 and replayed[0].output_dir == str(next(tmp_path.glob("runs/fp-*/")))
    assert "the saved run was made by other code" in capsys.readouterr().err
