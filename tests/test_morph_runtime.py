"""The morph loop on a live engine (tiny random model): equivalence, mid-decode swaps, provenance,
budget and block invariants under random swaps, faults, the controller loop, and config errors."""
import json
import random

import pytest
import torch

from morph.controller import ControllerConfig
from morph.layer_store import LayerStore
from morph.layer_swapper import LayerSwapper
from morph.monitor import MonitorConfig
from morph.plan import MorphPlan, Precision
from morph.policy_config import MorphPolicy, PolicyConfig
from morph.policy_presets import load_policy
from morph.runtime import MorphConfig, MorphRuntime, attach_morph
from swiftllm import EngineConfig, LLMEngine, SamplingParams
from swiftllm.quant.spec import VariantSpec

FP, INT8, INT4 = Precision.FP, Precision.INT8, Precision.INT4
RTN = MorphConfig(policy=None, int4_method="rtn", variant_cache_dir=None)


@pytest.fixture(autouse=True)
def one_thread():
    """The tiny model's ops are far too small for intra-op threads, which only contend with other processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _engine(path: str, **overrides) -> LLMEngine:
    config = dict(model=path, num_kv_blocks=256, block_size=4, max_model_len=200, max_num_batched_tokens=256)
    return LLMEngine(EngineConfig(**(config | overrides)))


def _prompts(n: int, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(3, 256) for _ in range(rng.randint(4, 40))] for _ in range(n)]


def _generate(engine: LLMEngine, prompts, max_tokens: int = 24):
    params = SamplingParams(temperature=0, max_tokens=max_tokens, ignore_eos=True)
    requests = [engine.add_request(p, params) for p in prompts]
    while engine.has_unfinished():
        engine.step()
    return requests


def _fp_tensors(engine: LLMEngine) -> list[dict[str, torch.Tensor]]:
    return [{k: t.clone() for k, t in layer.tensors().items()} for layer in engine.model_weights.layers]


def _check_invariants(engine: LLMEngine, runtime: MorphRuntime) -> None:
    """Block invariants, the budget, and KV capacity == what the freed weight bytes pay for."""
    memory = engine.memory
    engine.block_manager.check_invariants(engine.scheduler.running)
    assert memory.weight_bytes + memory.kv_bytes + memory.workspace_bytes <= memory.budget_bytes
    assert engine.worker.kv_cache.num_blocks == engine.block_manager.capacity == memory.num_kv_blocks
    assert engine.block_manager.capacity == runtime.resizer.capacity_for(runtime.swapper.freed_bytes())
    assert engine.num_quantized_layers == sum(p != FP for p in runtime.swapper.precisions)


def test_attached_but_never_triggered_gives_the_plain_engines_greedy_outputs(tiny_llama):
    prompts = _prompts(6)
    plain = [r.output_token_ids for r in _generate(_engine(tiny_llama), prompts)]
    engine = _engine(tiny_llama)
    runtime = attach_morph(engine, MorphConfig(policy="morph_accuracy", int4_method="rtn", variant_cache_dir=None))
    requests = _generate(engine, prompts)
    assert [r.output_token_ids for r in requests] == plain
    assert runtime.events == [] and all(p == FP for p in runtime.swapper.precisions)
    assert all(rec.num_quantized_layers == 0 and rec.precision_version == 0 for r in requests for rec in r.token_records)
    runtime.close()


def test_swap_to_int4_and_back_mid_decode(tiny_llama):
    prompt, other = _prompts(2, seed=1)
    plain_engine = _engine(tiny_llama)
    reference, other_reference = (r.output_token_ids for r in _generate(plain_engine, [prompt, other], max_tokens=40))
    engine = _engine(tiny_llama)
    originals = _fp_tensors(engine)
    runtime = attach_morph(engine, RTN)
    req = engine.add_request(prompt, SamplingParams(temperature=0, max_tokens=40, ignore_eos=True))
    for _ in range(10):
        engine.step()
    events = runtime.apply([INT4] * 3)
    assert [e.status for e in events] == ["done"] * 3 and engine.num_quantized_layers == 3
    for _ in range(10):
        engine.step()
    runtime.apply([FP] * 3)
    for layer, expected in zip(engine.model_weights.layers, originals):
        assert all(torch.equal(t, expected[k]) for k, t in layer.tensors().items())
    while engine.has_unfinished():
        engine.step()
    assert req.output_token_ids[:10] == reference[:10]
    assert len(req.output_token_ids) == 40 and req.finish_reason == "length"
    assert [r.num_quantized_layers for r in req.token_records] == [0] * 10 + [3] * 10 + [0] * 20
    assert [runtime.precision_map(r.precision_version) for r in req.token_records[9:11]] == [(FP,) * 3, (INT4,) * 3]
    assert _generate(engine, [other], max_tokens=40)[0].output_token_ids == other_reference
    runtime.close()


def test_random_swaps_keep_the_budget_and_block_invariants(tiny_llama, monkeypatch):
    sizes = dict(max_num_seqs=8, max_num_batched_tokens=64, max_model_len=120)
    probe = _engine(tiny_llama, num_kv_blocks=40, **sizes).memory
    budget = probe.weight_bytes + probe.workspace_bytes + probe.kv_bytes       # exactly full at 40 blocks
    engine = _engine(tiny_llama, num_kv_blocks=None, memory_budget_bytes=budget, **sizes)
    runtime = attach_morph(engine, RTN)
    resizes = _record_resizes(runtime, monkeypatch)
    base_capacity = engine.block_manager.capacity
    rng = random.Random(5)
    requests, capacities = [], set()
    for iteration in range(4000):       # at least 400; more while the background swaps lag (a loaded machine)
        if iteration >= 400 and _exercised(runtime, resizes):
            break
        if rng.random() < 0.5:
            requests += _add_random_request(engine, rng)
        if not runtime.actuator.busy and rng.random() < 0.2:
            plan = MorphPlan(tuple(rng.choice([FP, INT8, INT4]) for _ in range(3)))
            runtime.actuator.apply(plan, engine.clock())
            _check_invariants(engine, runtime)
        engine.step()
        _check_invariants(engine, runtime)
        capacities.add(engine.block_manager.capacity)
    while engine.has_unfinished():
        engine.step()
    statuses = [e.status for e in runtime.events]
    assert statuses.count("done") > 40 and set(statuses) == {"done"}
    assert all(len(r.output_token_ids) == r.params.max_tokens for r in requests)
    assert min(capacities) == base_capacity and len(capacities) > 5
    assert sum(r.moved_blocks for r in resizes if r is not None) > 10, "no shrink had to move live blocks"
    assert resizes.count(None) > 5, "no raise had to wait for live KV blocks to fit"
    runtime.close()


def _exercised(runtime: MorphRuntime, resizes: list) -> bool:
    """Enough swaps done, shrinks that moved live blocks, and raises that waited for room."""
    moved = sum(r.moved_blocks for r in resizes if r is not None)
    return len(runtime.events) > 45 and moved > 10 and resizes.count(None) > 5


def _record_resizes(runtime: MorphRuntime, monkeypatch) -> list:
    """Every KV resize the runtime attempts (``None``: refused because the live blocks did not fit)."""
    attempts = []
    resize = runtime.resizer.resize

    def recorded(new_capacity):
        attempts.append(resize(new_capacity))
        return attempts[-1]
    monkeypatch.setattr(runtime.resizer, "resize", recorded)
    return attempts


def test_a_restore_waits_until_the_live_kv_blocks_fit(tiny_llama):
    engine = _engine(tiny_llama, num_kv_blocks=40, watermark=0.0)
    runtime = attach_morph(engine, RTN)
    runtime.apply([INT4] * 3)
    grown = engine.block_manager.capacity
    requests = [engine.add_request(p, SamplingParams(temperature=0, max_tokens=60, ignore_eos=True))
                for p in _prompts(10, seed=6)]
    for _ in range(100):
        if engine.block_manager.num_used > grown - 30:        # more than a pool with one layer back at FP holds
            break
        engine.step()
    assert engine.block_manager.num_used > grown - 30
    runtime.actuator.apply(MorphPlan((FP,) * 3), engine.clock())
    assert runtime.actuator.waiting and engine.num_quantized_layers > 0
    waited_steps = 0
    while runtime.actuator.waiting or runtime.actuator.busy:
        engine.step()
        _check_invariants(engine, runtime)
        waited_steps += 1
    assert waited_steps > 5 and runtime.swapper.precisions == [FP] * 3 and engine.block_manager.capacity == 40
    while engine.has_unfinished():
        engine.step()
    assert all(len(r.output_token_ids) == 60 for r in requests)
    runtime.close()


def _add_random_request(engine: LLMEngine, rng: random.Random):
    prompt = [rng.randrange(3, 256) for _ in range(rng.randint(2, 30))]
    return [engine.add_request(prompt, SamplingParams(temperature=0, max_tokens=rng.randint(1, 50), ignore_eos=True))]


def test_faults_are_contained_and_serving_continues(tiny_llama, tmp_path, monkeypatch):
    log = tmp_path / "events.jsonl"
    engine = _engine(tiny_llama)
    originals = _fp_tensors(engine)
    runtime = attach_morph(engine, MorphConfig(policy=None, int4_method="rtn", variant_cache_dir=None, event_log_path=str(log)))
    runtime.swapper.store.layer(1, INT4).gate_up_proj.weight.view(-1)[5] ^= 0x22
    requests = _generate(engine, _prompts(2, seed=2), max_tokens=4)
    events = runtime.apply([INT4] * 3)
    assert {e.layer: e.status for e in events} == {0: "done", 1: "refused", 2: "done"}   # in the order they ended
    assert runtime.swapper.precisions == [INT4, FP, INT4]

    copy_slices = runtime.swapper.slots.copy_slices
    def fail_int8_copies(i, variant):
        if variant is runtime.swapper.store.layer(i, INT8):
            raise OSError("injected copy failure")
        return copy_slices(i, variant)
    monkeypatch.setattr(runtime.swapper.slots, "copy_slices", fail_int8_copies)
    [event] = runtime.apply([INT4, INT8, INT4])
    assert (event.layer, event.status, event.source, event.target) == (1, "rolled_back", "fp", "int8")
    assert "injected copy failure" in event.error and runtime.swapper.precisions == [INT4, FP, INT4]
    layer = engine.model_weights.layers[1]
    assert all(torch.equal(t, originals[1][k]) for k, t in layer.tensors().items())

    requests += _generate(engine, _prompts(3, seed=3), max_tokens=8)
    assert all(r.finish_reason == "length" for r in requests)
    _check_invariants(engine, runtime)
    runtime.close()
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted((e["layer"], e["status"]) for e in logged[:3]) == [(0, "done"), (1, "refused"), (2, "done")]
    assert (logged[3]["layer"], logged[3]["status"]) == (1, "rolled_back")
    first_done = next(e for e in logged if e["status"] == "done")
    assert first_done["kv_capacity_after"] > first_done["kv_capacity_before"] and first_done["bytes_copied"] > 0


def test_awq_variants_are_calibrated_on_a_text_and_cached(tiny_llama, tmp_path, monkeypatch):
    text = tmp_path / "calibration.txt"
    text.write_text(" ".join(f"w{3 + 7 * i % 250}" for i in range(400)))
    config = MorphConfig(policy=None, int4_method="awq", group_size=64, calibration_text_path=str(text),
                         calibration_seq_len=32, calibration_num_seqs=4, precisions=("fp", "int4"),
                         variant_cache_dir=str(tmp_path / "variants"))
    first = attach_morph(_engine(tiny_llama), config)
    assert [e.status for e in first.apply([INT4] * 3)] == ["done"] * 3
    monkeypatch.setattr("morph.layer_store.quantized_layers", _fail_quantize)
    cached = attach_morph(_engine(tiny_llama), config)
    for i in range(3):
        expected = first.swapper.store.layer(i, INT4).tensors()
        assert all(torch.equal(t, expected[k]) for k, t in cached.swapper.store.layer(i, INT4).tensors().items())
    first.close()
    cached.close()


def _fail_quantize(*args, **kwargs):
    raise AssertionError("the AWQ variant should have come from the cache")


class FakeClock:
    """Engine time that advances only when the test says so."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_loop_morphs_under_kv_pressure_and_restores_when_load_falls(tiny_llama, tmp_path):
    clock = FakeClock()
    engine = LLMEngine(EngineConfig(model=tiny_llama, num_kv_blocks=40, block_size=4, max_model_len=200, watermark=0.0),
                       clock=clock)
    policy = MorphPolicy("test", MonitorConfig(short_window_s=0.05, long_window_s=0.3, trend_bin_s=0.1),
                         ControllerConfig(num_layers=3, kv_usage_trigger=0.85, kv_usage_release=0.3,
                                          queue_delay_trigger_s=10.0, queue_delay_release_s=5.0, cooldown_s=0.05,
                                          layers_per_step=1))
    store = LayerStore.prepare(engine.model_weights, engine.model_config, (FP, INT4), VariantSpec("rtn"))
    swapper = LayerSwapper.into_slots(engine.install_layer, store, "cpu")
    runtime = MorphRuntime(engine, policy, swapper, str(tmp_path / "events.jsonl"))
    requests = [engine.add_request(p, SamplingParams(temperature=0, max_tokens=40, ignore_eos=True))
                for p in _prompts(8, seed=4)]
    most_quantized = 0
    while engine.has_unfinished() or engine.num_quantized_layers:
        clock.now += 0.02
        if not engine.has_unfinished():
            runtime.swapper.wait_for_work()   # an idle server sleeps between its ticks; the swap thread runs then
        engine.step()
        _check_invariants(engine, runtime)
        most_quantized = max(most_quantized, engine.num_quantized_layers)
        assert clock.now < 60, "the loop did not settle"
    assert most_quantized == 3 and runtime.resizer.capacity == 40
    assert max(e.kv_capacity_after for e in runtime.events) > 40
    assert {(e.source, e.target) for e in runtime.events} == {("fp", "int4"), ("int4", "fp")}
    assert any(k > 0 for r in requests for k in (rec.num_quantized_layers for rec in r.token_records))
    assert all(len(r.output_token_ids) == 40 for r in requests)
    runtime.close()
    assert len((tmp_path / "events.jsonl").read_text().splitlines()) == len(runtime.events)


@pytest.mark.parametrize("fields,error,message", [
    (dict(policy="fastest"), ValueError, "unknown policy preset 'fastest'"),
    (dict(policy="fp"), ValueError, "is full precision: serve without a morph runtime"),
    (dict(int4_method="gptq"), ValueError, "int4_method must be one of"),
    (dict(int4_method="rtn", group_size=100), ValueError, "group_size must be one of"),
    (dict(int4_method="rtn", precisions=("fp", "int2")), ValueError, "unknown precision 'int2'"),
    (dict(int4_method="awq"), ValueError, "AWQ INT4 variants need calibration_text_path"),
    (dict(int4_method="awq", calibration_text_path="/nonexistent/wiki.txt"), FileNotFoundError, "calibration text"),
    (dict(int4_method="rtn", event_log_path="/nonexistent/dir/events.jsonl"), FileNotFoundError, "does not exist"),
    (dict(int4_method="rtn", calibration_num_seqs=0), ValueError, "must be >= 1"),
])
def test_bad_configs_fail_at_construction(fields, error, message):
    with pytest.raises(error, match=message):
        MorphConfig(**fields)


def _accuracy_with(section: str, **values) -> PolicyConfig:
    policy = load_policy("morph_accuracy")
    for name, value in values.items():
        setattr(getattr(policy, section), name, value)
    return policy


@pytest.mark.parametrize("fields,error,message", [
    (dict(policy=_accuracy_with("swap_order", source="/nonexistent/order.json")), FileNotFoundError,
     "swap order file not found"),
    (dict(policy=_accuracy_with("controller", max_quantized_layers="7")), ValueError,
     r"max_quantized_layers must lie in \[0, num_layers=3\]"),
    (dict(precisions=("fp", "int8")), ValueError, "needs precisions the store would not prepare"),
])
def test_bad_configs_fail_at_attach_before_any_work(tiny_llama, fields, error, message):
    engine = _engine(tiny_llama)
    layers = list(engine.model_weights.layers)
    with pytest.raises(error, match=message):
        attach_morph(engine, MorphConfig(int4_method="rtn", variant_cache_dir=None, **fields))
    assert engine.model_weights.layers == layers and engine.step_hooks == ()
