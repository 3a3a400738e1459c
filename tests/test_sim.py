"""The simulator: the real engine and morph loop over a cost-model worker on a virtual clock. Determinism, the cost
model against the operator tables, the memory and KV arithmetic against the real engine, the same scheduling
decisions as a real run given its step times, and clear errors for bad hardware and models."""
import dataclasses
import json
import os
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

from experiments.calibration import step_fit
from experiments.replay.figures import register_schemas
from experiments.replay.run import run_replay
from experiments.replay.sim_driver import replay_simulated
from experiments.workload.content import WorkloadRequest
from morph.runtime import MorphConfig, attach_morph
from swiftllm import EngineConfig, LLMEngine, SamplingParams
from swiftllm.model_presets import preset_config
from swiftllm.server.model_source import ModelSource
from swiftllm.sim.clock import VirtualClock
from swiftllm.sim.cost_model import CostModel, ProfiledOps, RooflineOps
from swiftllm.sim.cpu_ops import SHAPE_FIELDS, CpuOps, CpuOpTable, load_cpu_op_table
from swiftllm.sim.engine import simulated_engine
from swiftllm.sim.hardware import HardwareSpec, SpeedupCurve
from swiftllm.sim.hardware_config import load_hardware
from swiftllm.sim.model_bytes import meta_weights
from swiftllm.sim.profile_table import LINEAR_OPS, OTHER_LAYER_OPS, load_op_profile
from swiftllm.sim.worker import SimWorker
from swiftllm.worker.batch import SequenceChunk, WorkerBatch
from swiftllm.worker.weight_loader import load_model_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
SHARED = Path(os.environ.get("MORPHSERVE_SHARED", ROOT.parent / "shared"))
VIDUR = SHARED / "profiles" / "vidur"
needs_profiles = pytest.mark.skipif(not VIDUR.is_dir(), reason=f"Vidur operator tables not found in {VIDUR}")
register_schemas()


def hardware(name: str, **changes) -> HardwareSpec:
    values = OmegaConf.to_container(OmegaConf.load(CONFIGS / "hardware" / f"{name}.yaml"), resolve=True)
    values.pop("num_threads")
    return load_hardware({**values, **changes})


def synthetic_cpu_table(cfg, path: Path) -> str:
    """An op table for ``cfg``'s shapes with simple made-up costs (the arithmetic tests need a table, not a
    machine)."""
    table = CpuOpTable(
        model={"name": "tiny", **{f: getattr(cfg, f) for f in SHAPE_FIELDS}}, layer_tokens=(1, 64, 512),
        layer_seconds={"fp": (1e-4, 2e-4, 1e-3), "int8": (6e-5, 1.5e-4, 1.1e-3), "int4": (4e-5, 1.4e-4, 1.2e-3)},
        decode_attention={"per_call_s": 1e-5, "per_sequence_s": 1e-6, "per_context_token_s": 1e-8},
        prefill_attention={"per_call_s": 1e-5, "per_query_key_s": 1e-9, "per_context_token_s": 1e-8},
        head_rows=(1, 64), head_seconds=(1e-4, 5e-4),
        overhead={"layer_scale": {"fp": 1.0, "int8": 1.0, "int4": 1.0}, "step_s": 1e-4, "per_sequence_s": 1e-5},
        machine={"read_gbs": 20.0, "copy_gbs": 2.0, "checksum_gbs": 1.0, "threads": 1}, provenance={"made": "by a test"})
    path.write_text(json.dumps(table.to_json()))
    return str(path)


@pytest.fixture
def tiny_cpu(tiny_llama, tmp_path) -> HardwareSpec:
    table = synthetic_cpu_table(load_model_config(tiny_llama), tmp_path / "tiny_ops.json")
    return hardware("cpu", op_table=table)


# ---- the cost model against the operator tables --------------------------------------------------------------------

@needs_profiles
@pytest.mark.parametrize("table, preset", [("a100_meta-llama_Llama-2-7b-hf", "llama-2-7b"),
                                           ("a100_codellama_CodeLlama-34b-Instruct-hf", "codellama-34b"),
                                           ("h100_meta-llama_Llama-2-7b-hf", "llama-2-7b")])
def test_the_cost_model_reproduces_the_profile_tables_and_interpolates_monotonically(table, preset):
    profile = load_op_profile(str(VIDUR / f"{table}.mlp.csv"))
    ops = ProfiledOps(hardware("a100"), preset_config(preset), profile)
    for i, tokens in enumerate(profile.tokens):
        measured = sum(profile.times[op][i] * (2 if op == "add" else 1) for op in LINEAR_OPS + OTHER_LAYER_OPS)
        assert ops.layer(tokens, "fp") == pytest.approx(measured, rel=0.02)
    for low, high in zip(profile.tokens, profile.tokens[1:]):
        ends = sorted((ops.layer(low, "fp"), ops.layer(high, "fp")))
        for tokens in range(low, high + 1, max(1, (high - low) // 4)):
            assert ends[0] - 1e-12 <= ops.layer(tokens, "fp") <= ends[1] + 1e-12


@needs_profiles
def test_the_stated_efficiencies_are_the_fit_to_the_a100_table():
    from swiftllm.sim.efficiency_fit import fit_efficiencies
    profile = load_op_profile(str(VIDUR / "a100_meta-llama_Llama-2-7b-hf.mlp.csv"))
    fitted = fit_efficiencies(profile, preset_config("llama-2-7b"), hardware("a100"))
    for name in ("l4", "a100"):
        spec = hardware(name)
        assert spec.compute_efficiency == pytest.approx(fitted.compute, abs=0.01)
        assert spec.memory_efficiency == pytest.approx(fitted.memory, abs=0.01)


def test_the_roofline_is_memory_bound_at_decode_and_compute_bound_at_prefill():
    ops = RooflineOps(hardware("l4"), preset_config("llama-2-7b"))
    l4 = hardware("l4")
    weights = 2 * ops.linear_params
    assert ops.layer(1, "fp") == pytest.approx(weights / (l4.memory_bandwidth_gbs * 1e9 * l4.memory_efficiency), rel=0.01)
    flops = 2 * 2048 * ops.linear_params
    assert ops.layer(2048, "fp") == pytest.approx(flops / (l4.peak_tflops * 1e12 * l4.compute_efficiency), rel=0.01)
    assert ops.layer(1, "int4") == pytest.approx(ops.layer(1, "fp") / 3.0)
    assert ops.layer(2, "fp") < ops.layer(200, "fp") < ops.layer(2000, "fp")


def test_the_time_scale_multiplies_every_step_and_must_be_positive(tiny_llama, tiny_cpu):
    ops = CpuOps(load_cpu_op_table(tiny_cpu.op_table), load_model_config(tiny_llama))
    sample = SamplingParams(max_tokens=4)
    batch = WorkerBatch([SequenceChunk("a", [7] * 5, 0, [0, 1], sample), SequenceChunk("b", [9], 40, list(range(11)), sample)])
    precisions = ["fp", "int4", "int8"]
    assert CostModel(ops, time_scale=1.25).step_time(batch, precisions) == \
        pytest.approx(1.25 * CostModel(ops).step_time(batch, precisions))
    with pytest.raises(ValueError, match="time_scale must be finite and > 0"):
        dataclasses.replace(tiny_cpu, time_scale=0.0)


def test_a_layer_time_scale_multiplies_only_its_precisions_layers(tiny_llama, tiny_cpu):
    ops = CpuOps(load_cpu_op_table(tiny_cpu.op_table), load_model_config(tiny_llama))
    sample = SamplingParams(max_tokens=4)
    batch = WorkerBatch([SequenceChunk("a", [7] * 5, 0, [0, 1], sample), SequenceChunk("b", [9], 40, list(range(11)), sample)])
    precisions = ["fp", "int4", "int4", "int8"]
    base = CostModel(ops, time_scale=1.25).step_time(batch, precisions)
    scaled = CostModel(ops, time_scale=1.25, layer_time_scales={"int4": 0.5}).step_time(batch, precisions)
    assert scaled == pytest.approx(base - 1.25 * 2 * 0.5 * ops.layer(batch.num_tokens, "int4"))
    assert scaled < base
    with pytest.raises(ValueError, match="layer_time_scales.int8 must be finite and > 0"):
        dataclasses.replace(tiny_cpu, layer_time_scales={"int8": -1.0})
    with pytest.raises(ValueError, match="unknown precision 'int3'"):
        dataclasses.replace(tiny_cpu, layer_time_scales={"int3": 1.0})


def test_speedup_curves_interpolate_on_log_tokens_and_hold_beyond_the_ends():
    curve = SpeedupCurve((1, 16, 256), (3.0, 2.0, 1.0))
    assert (curve.at(1), curve.at(16), curve.at(4), curve.at(64), curve.at(10_000)) == (3.0, 2.0, 2.5, 1.5, 1.0)
    with pytest.raises(ValueError, match="increasing"):
        SpeedupCurve((4, 1), (1.0, 1.0))



def test_the_step_fit_recovers_each_precisions_layer_scale_and_the_overheads(tiny_llama, tmp_path):
    """Step periods made from known factors (fp layers x1.3, INT4 layers x0.8, 20 ms + 1 ms per sequence) over
    all-fp, all-INT4 and mixed steps: the fit finds those factors, and the table's ops then predict every period."""
    cfg = load_model_config(tiny_llama)
    table = load_cpu_op_table(synthetic_cpu_table(cfg, tmp_path / "ops.json"))
    unscaled = {"layer_scale": {"fp": 1.0, "int8": 1.0, "int4": 1.0}, "step_s": 0.0, "per_sequence_s": 0.0}
    cost = CostModel(CpuOps(dataclasses.replace(table, overhead=unscaled), cfg))
    truth = {"layer_scale": {"fp": 1.3, "int4": 0.8}, "step_s": 0.02, "per_sequence_s": 0.001}
    samples = []
    for i, (decode_rows, prompt) in enumerate([(1, 0), (4, 0), (12, 0), (2, 40), (0, 300), (16, 64), (7, 9)] * 3):
        mix = ("fp", "int4", "mixed")[i % 3]
        precisions = [("int4" if layer % 2 else "fp") if mix == "mixed" else mix for layer in range(cfg.num_layers)]
        batch = WorkerBatch([_chunk(f"d{r}", 1, 100 + 50 * r) for r in range(decode_rows)]
                            + ([_chunk("p", prompt, 0)] if prompt else []))
        layers = step_fit.layer_seconds_by_precision(step_fit.StepSample(0.0, batch, tuple(precisions)), cost)
        other = cost.step_time(batch, precisions) - sum(layers.values())
        period = (sum(truth["layer_scale"][p] * t for p, t in layers.items()) + other
                  + truth["step_s"] + truth["per_sequence_s"] * len(batch.chunks))
        samples.append(step_fit.StepSample(period, batch, tuple(precisions)))
    fitted = step_fit.fit_overhead(samples, cost)
    assert fitted["layer_scale"] == pytest.approx(truth["layer_scale"], rel=1e-6)
    assert (fitted["step_s"], fitted["per_sequence_s"]) == pytest.approx((truth["step_s"], truth["per_sequence_s"]))
    fitted["layer_scale"]["int8"] = 1.0
    calibrated = CostModel(CpuOps(dataclasses.replace(table, overhead=fitted), cfg))
    for sample in samples:
        assert calibrated.step_time(sample.batch, sample.precisions) == pytest.approx(sample.period, rel=1e-6)


def _chunk(seq_id: str, num_tokens: int, start: int) -> SequenceChunk:
    return SequenceChunk(seq_id, [1] * num_tokens, start, list(range((start + num_tokens) // 16 + 1)),
                         SamplingParams(max_tokens=4))


def test_an_op_table_without_the_fitted_factors_is_refused_with_the_command_that_writes_it(tiny_llama, tmp_path):
    cfg, path = load_model_config(tiny_llama), tmp_path / "ops.json"
    values = json.loads(Path(synthetic_cpu_table(cfg, path)).read_text())
    del values["overhead"]["layer_scale"]["int8"]
    path.write_text(json.dumps(values))
    with pytest.raises(ValueError, match=r"no fitted layer_scale for \['int8'\].*calibrate_cpu\.py"):
        CpuOps(load_cpu_op_table(str(path)), cfg)
    del values["overhead"]["layer_scale"]
    path.write_text(json.dumps(values))
    with pytest.raises(ValueError, match=r"malformed.*layer_scale.*calibrate_cpu\.py"):
        load_cpu_op_table(str(path))

# ---- memory and KV arithmetic: one code path with the real engine ---------------------------------------------------

def test_the_memory_plan_and_kv_capacity_equal_the_real_engines(tiny_llama, tiny_cpu):
    config = EngineConfig(model=tiny_llama, memory_budget_bytes=3_000_000, block_size=4, max_num_seqs=8,
                          max_num_batched_tokens=64, max_model_len=128)
    real, sim = LLMEngine(config), simulated_engine(config, tiny_cpu)
    assert sim.memory == real.memory and sim.max_kv_blocks == real.max_kv_blocks
    rtn = MorphConfig(policy=None, int4_method="rtn", variant_cache_dir=None)
    real_runtime, sim_runtime = attach_morph(real, rtn), attach_morph(sim, rtn)
    for plan in (["int4", "fp", "int8"], ["int4"] * 3, ["int8", "int4", "int8"], ["fp"] * 3):
        real_runtime.apply(plan)
        sim_runtime.apply(plan)
        assert sim.kv_capacity == real.kv_capacity and sim.memory == real.memory
        assert sim.num_quantized_layers == real.num_quantized_layers
    for precision in ("fp", "int8", "int4"):
        from morph.plan import Precision
        assert sim_runtime.swapper.variant_bytes(0, Precision(precision)) == \
            real_runtime.swapper.variant_bytes(0, Precision(precision))
    real_runtime.close()
    sim_runtime.close()


@pytest.mark.parametrize("gpu", [False, True])
def test_simulated_swaps_follow_the_real_phases_of_their_device(tiny_llama, tiny_cpu, gpu):
    """A GPU verifies a variant, then runs it from the start of its copy; a CPU copy checks its bytes as it goes and
    the layer runs its new precision from the settle, as in the real swapper."""
    from morph.plan import Precision
    spec = dataclasses.replace(tiny_cpu, op_table=None, host_link_gbs=1e-3, checksum_gbs=2e-3) if gpu else tiny_cpu
    engine = simulated_engine(EngineConfig(model=tiny_llama, num_kv_blocks=24, block_size=4, max_model_len=128), spec)
    runtime = attach_morph(engine, MorphConfig(policy=None, int4_method="rtn", variant_cache_dir=None))
    swapper = runtime.swapper
    swapper.begin(0, Precision.INT4)
    nbytes = swapper.variant_bytes(0, Precision.INT4)
    seen = []
    while swapper.in_flight:
        swapper.wait_for_work()
        ended = swapper.poll()
        seen.append((engine.clock(), swapper.precisions[0], bool(ended)))
    copy_seconds = nbytes / (spec.host_link_gbs * 1e9)
    if gpu:
        verify_seconds = nbytes / (spec.checksum_gbs * 1e9)
        assert seen == [(pytest.approx(verify_seconds), Precision.INT4, False),
                        (pytest.approx(verify_seconds + copy_seconds), Precision.INT4, True)]
    else:
        assert seen == [(pytest.approx(copy_seconds), Precision.INT4, True)]
    runtime.close()


def test_paper_models_fit_their_gpus_and_too_large_a_model_is_refused():
    engine = simulated_engine(EngineConfig(model="llama-2-7b", max_num_seqs=256, max_num_batched_tokens=2048,
                                           max_model_len=2048), hardware("l4"))
    assert engine.memory.weight_bytes == pytest.approx(6.74e9 * 2, rel=0.01) and engine.kv_capacity > 500
    with pytest.raises(ValueError, match="too small"):
        simulated_engine(EngineConfig(model="codellama-34b", max_model_len=2048), hardware("l4"))
    with pytest.raises(ValueError, match="unknown model preset|not found"):
        simulated_engine(EngineConfig(model="llama-9-900b"), hardware("l4"))


def test_bad_hardware_names_and_values_fail_clearly():
    with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
        with pytest.raises(MissingConfigException, match="hardware/tpu"):
            compose("config", overrides=["hardware=tpu"])
        with pytest.raises(ValueError, match="memory_efficiency must lie in"):
            OmegaConf.to_object(compose("config", overrides=["backend=sim", "hardware=l4", "model=llama-2-7b",
                                                             "engine=gpu", "hardware.memory_efficiency=1.5"]))
        with pytest.raises(ValueError, match="hardware=l4 is a GPU: run it with engine.device=cuda"):
            OmegaConf.to_object(compose("config", overrides=["hardware=l4"]))
        gpu_run = OmegaConf.to_object(compose("config", overrides=["hardware=h200", "engine.device=cuda"]))
        assert gpu_run.hardware.name == "h200" and gpu_run.engine.device == "cuda"


# ---- determinism and the same decisions as a real run ------------------------------------------------------------------

def _workload(n: int = 24, seed: int = 3) -> list[WorkloadRequest]:
    import random
    rng = random.Random(seed)
    arrivals = sorted(rng.uniform(0.0, 0.05) for _ in range(n))
    return [WorkloadRequest(t, [rng.randrange(3, 250) for _ in range(rng.randint(4, 60))], rng.randint(4, 30))
            for t in arrivals]


def test_a_simulated_replay_is_deterministic(tiny_llama, tiny_cpu):
    def run():
        engine = simulated_engine(EngineConfig(model=tiny_llama, num_kv_blocks=24, block_size=4, max_model_len=128,
                                               max_num_batched_tokens=64), tiny_cpu)
        runtime = attach_morph(engine, MorphConfig(policy="morph_performance", int4_method="rtn", variant_cache_dir=None))
        outputs = replay_simulated(engine, engine.clock, _workload(), show_progress=False)
        runtime.close()
        return [(o.outputs[0].token_times, o.outputs[0].token_quantized_layers) for o in outputs], runtime.events
    (first, events), (second, again) = run(), run()
    assert first == second and events == again and events, "the run was meant to morph"


class RecordedDurations:
    """A cost model that replays the step durations of a real run, in order."""

    def __init__(self, durations: list[float]):
        self.durations = list(durations)

    def step_time(self, batch: WorkerBatch, precisions) -> float:
        return self.durations.pop(0)


def _decisions(engine: LLMEngine, clock: VirtualClock, workload) -> dict:
    """Replay ``workload`` with the event-driven driver and record each step's batch, preemptions and first tokens."""
    batches, preemptions = [], []
    execute = engine.worker.execute

    def recorded(batch: WorkerBatch):
        batches.append([(c.seq_id, c.num_tokens) for c in batch.chunks])
        return execute(batch)
    engine.worker.execute = recorded
    engine.add_step_hook(lambda stats: preemptions.append(stats.num_preemptions))
    outputs = replay_simulated(engine, clock, workload, show_progress=False)
    return {"batches": batches, "preemptions": preemptions,
            "first_token": [o.outputs[0].token_times[0] for o in outputs]}


def test_with_a_real_runs_step_times_the_simulator_makes_the_same_decisions(tiny_llama, tiny_cpu):
    config = EngineConfig(model=tiny_llama, num_kv_blocks=20, block_size=4, max_model_len=128, max_num_batched_tokens=48,
                          watermark=0.0)
    real_clock = VirtualClock()
    real = LLMEngine(config, clock=real_clock)
    durations, execute = [], real.worker.execute

    def timed(batch: WorkerBatch):
        start = time.perf_counter()
        tokens = execute(batch)
        durations.append(time.perf_counter() - start)
        real_clock.advance(durations[-1])
        return tokens
    real.worker.execute = timed
    reference = _decisions(real, real_clock, _workload())
    assert sum(reference["preemptions"]) > 0, "the pool was meant to be too small"
    sim_clock = VirtualClock()
    weights = meta_weights(real.model_config, config.torch_dtype())
    source = ModelSource(real.model_config, real.tokenizer, weights, config.torch_dtype(),
                         lambda plan, max_len: SimWorker(RecordedDurations(durations), tiny_cpu, sim_clock, weights,
                                                         plan.max_kv_blocks, plan.block_bytes, 5))
    simulated = _decisions(LLMEngine(config, clock=sim_clock, source=source), sim_clock, _workload())
    assert simulated == reference


def test_the_replay_entry_point_runs_the_simulator_at_paper_scale_quickly(tmp_path):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
        cfg = OmegaConf.to_object(compose("config", overrides=[
            "backend=sim", "hardware=l4", "model=llama-2-7b", "engine=gpu", "policy=morph_performance",
            "trace.synthetic.num_requests=120", "trace.synthetic.request_rate=8", "trace.shaping.fixed_prompt_len=512",
            "trace.shaping.fixed_output_len=256", "plots=false",
            f"output_dir={tmp_path}"]))
    start = time.perf_counter()
    result = run_replay(cfg)
    assert time.perf_counter() - start < 30
    assert result.row["completed"] == 120 and result.row["morph_transitions"] > 0
    assert max(s.kv_blocks_capacity for s in result.steps) > result.fp_kv_blocks
    assert "rouge_l" not in result.row and 0 < result.row["share_tokens_quantized"] <= 1
