"""Nothing hangs, nothing poisons: requests validated at the door (property-based), a failing request contained,
ids that cannot collide, no request that can never run, async consumers that always get an answer, a sandboxed
chat template, caches that recover, experiment inputs checked before the model loads."""
import asyncio
import dataclasses
import json
import logging
import math
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from morph.runtime import MorphConfig, attach_morph
from swiftllm import LLM, EngineConfig, LLMEngine, SamplingParams
from swiftllm.server.async_engine import AsyncLLMEngine, EngineShutDown, RequestFailed
from swiftllm.server.tokenization import LlamaTokenizer
from tests.tiny_model import VOCAB

GREEDY = SamplingParams(temperature=0, max_tokens=8, ignore_eos=True)
RTN = MorphConfig(policy=None, int4_method="rtn", variant_cache_dir=None)
MAX_STEPS = 2000      # a loop that needs more steps than this is a hang
SOAK_OPERATIONS = 20_000


def _engine(path: str, **overrides) -> LLMEngine:
    config = dict(model=path, num_kv_blocks=64, block_size=4, max_model_len=128, max_num_batched_tokens=128)
    return LLMEngine(EngineConfig(**(config | overrides)))


def _run_to_completion(engine: LLMEngine) -> int:
    """Step until nothing is left; fails (instead of hanging) after MAX_STEPS steps."""
    for steps in range(MAX_STEPS):
        if not engine.has_unfinished():
            return steps
        engine.step()
    pytest.fail(f"requests still unfinished after {MAX_STEPS} steps: the engine hangs")


@pytest.fixture(scope="module")
def engine(tiny_llama):
    return _engine(tiny_llama)


# ---- 1. poison requests: validated at the door, property-based -------------------------------------------------

ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e-45, 1e-6, 0.5, 2.0, -0.0]), st.text(max_size=3), st.binary(max_size=3),
    st.lists(st.integers(-3, 300), max_size=3), st.lists(st.text(max_size=2), max_size=2),
)
FIELDS = {
    "temperature": st.one_of(st.floats(0, 3), ANY_VALUE),
    "top_k": st.one_of(st.integers(-2, 300), ANY_VALUE),
    "top_p": st.one_of(st.floats(0, 1), ANY_VALUE),
    "seed": st.one_of(st.none(), st.integers(0, 2 ** 64 - 1), ANY_VALUE),
    "max_tokens": st.one_of(st.integers(-1, 6), st.integers(100, 10 ** 6), ANY_VALUE),
    "stop_token_ids": st.one_of(st.lists(st.integers(0, VOCAB - 1), max_size=2), ANY_VALUE),
    "stop": st.one_of(st.lists(st.sampled_from(["w3", "w17 w4", "x"]), max_size=2), ANY_VALUE),
    "ignore_eos": st.one_of(st.booleans(), ANY_VALUE),
}
PROMPTS = st.one_of(
    st.lists(st.integers(0, VOCAB - 1), min_size=1, max_size=40),
    st.lists(st.one_of(st.integers(-5, VOCAB + 5), st.floats(allow_nan=True), st.booleans()), max_size=6),
    st.text(alphabet="w0123456789 ", max_size=30), st.binary(max_size=5), st.none(), st.integers(),
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.fixed_dictionaries({}, optional=FIELDS), prompt=PROMPTS)
def test_every_request_is_rejected_at_the_door_naming_the_field_or_runs_to_completion(engine, fields, prompt):
    try:
        params = SamplingParams(**fields)
    except (TypeError, ValueError) as refused:
        assert any(name in str(refused) for name in fields), (fields, refused)
        return
    try:
        request = engine.add_request(prompt, params)
    except (TypeError, ValueError) as refused:
        assert any(word in str(refused) for word in ("prompt", "KV blocks", "context")), (prompt, refused)
        return
    _run_to_completion(engine)
    assert request.is_finished and request.finish_reason in ("stop", "length") and request.error is None
    assert 1 <= request.num_output_tokens <= params.max_tokens
    engine.block_manager.check_invariants(engine.scheduler.running)
    assert engine.block_manager.num_used == 0


@pytest.mark.parametrize("fields, error, name", [
    (dict(temperature=float("nan")), ValueError, "temperature"), (dict(temperature=-1.0), ValueError, "temperature"),
    (dict(top_k=2.5), TypeError, "top_k"), (dict(seed=2 ** 70), ValueError, "seed"), (dict(seed="abc"), TypeError, "seed"),
    (dict(stop_token_ids=None), TypeError, "stop_token_ids"), (dict(stop=[5]), TypeError, "stop[0]"),
    (dict(max_tokens=2.5), TypeError, "max_tokens"), (dict(top_p=True), TypeError, "top_p"),
    (dict(ignore_eos="yes"), TypeError, "ignore_eos"),
])
def test_the_seen_poison_params_are_refused_by_name(fields, error, name):
    with pytest.raises(error, match=name.replace("[", r"\[").replace("]", r"\]")):
        SamplingParams(**fields)


@pytest.mark.parametrize("prompt, error, name", [
    ([1, float("nan")], TypeError, r"prompt\[1\]"), ([1.0, 2.0], TypeError, r"prompt\[0\]"),
    (b"\x01\x02", TypeError, "prompt must be"), ([1, True], TypeError, r"prompt\[1\]"),
    ([VOCAB], ValueError, "prompt token ids"), ([], ValueError, "empty"),
])
def test_the_seen_poison_prompts_are_refused_by_name(engine, prompt, error, name):
    with pytest.raises(error, match=name):
        engine.add_request(prompt, GREEDY)
    assert not engine.has_unfinished()


def test_a_tiny_temperature_samples_greedily_and_params_are_frozen(engine):
    params = SamplingParams(temperature=1e-45, max_tokens=6, ignore_eos=True)
    greedy = engine.add_request([5, 6, 7], GREEDY)
    tiny = engine.add_request([5, 6, 7], params)
    _run_to_completion(engine)
    assert tiny.output_token_ids == greedy.output_token_ids[:6]
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.max_tokens = 100
    assert SamplingParams(stop="w3").stop == ("w3",)


def test_a_bad_request_in_a_batch_leaves_the_good_ones_unchanged(tiny_llama, engine):
    prompts = [[(11 * i + j) % 250 + 3 for j in range(4 + 5 * i)] for i in range(6)]
    reference = [o.outputs[0].token_ids for o in LLM(EngineConfig(model=tiny_llama, num_kv_blocks=64, block_size=4,
                                                                   max_model_len=128)).generate(prompts, GREEDY)]
    good = []
    for i, prompt in enumerate(prompts):
        good.append(engine.add_request(prompt, GREEDY))
        with pytest.raises((TypeError, ValueError)):
            engine.add_request([1, float("nan")] if i % 2 else prompt, SamplingParams(top_k=0))
    _run_to_completion(engine)
    assert [r.output_token_ids for r in good] == reference


def test_a_request_whose_own_work_fails_ends_with_an_error_and_the_others_go_on(tiny_llama, monkeypatch):
    prompts = [[(13 * i + j) % 250 + 3 for j in range(5 + 3 * i)] for i in range(5)]
    clean = _engine(tiny_llama)
    unpoisoned = [clean.add_request(p, GREEDY) for p in prompts]
    _run_to_completion(clean)
    engine = _engine(tiny_llama)
    execute = engine.worker.execute

    def poisoned(batch):
        if any(c.seq_id == "poison" and c.start >= 8 for c in batch.chunks):
            raise RuntimeError("kernel assert in the poisoned sequence")
        return execute(batch)
    monkeypatch.setattr(engine.worker, "execute", poisoned)
    good = [engine.add_request(p, GREEDY) for p in prompts]
    bad = engine.add_request(prompts[0], GREEDY, request_id="poison")
    _run_to_completion(engine)
    assert bad.finish_reason == "error" and "kernel assert" in bad.error and bad.num_output_tokens > 0
    assert [r.output_token_ids for r in good] == [r.output_token_ids for r in unpoisoned]
    assert engine.block_manager.num_used == 0 and not engine.requests


def test_offline_generate_queues_all_prompts_or_none(tiny_llama):
    llm = LLM(EngineConfig(model=tiny_llama, num_kv_blocks=64, block_size=4, max_model_len=128))
    with pytest.raises(TypeError, match=r"prompt 2: prompt\[0\] must be an int"):
        llm.generate([[5, 6], [7, 8], [1.5]], GREEDY)
    assert not llm.engine.has_unfinished() and llm.engine.block_manager.num_used == 0
    assert len(llm.generate([[5, 6]], GREEDY)[0].outputs[0].token_ids) == GREEDY.max_tokens


# ---- 2. request ids -------------------------------------------------------------------------------------------------

def test_automatic_ids_never_collide_with_a_live_custom_id(engine):
    custom = [engine.add_request([5, 6], GREEDY, request_id=str(i)) for i in range(3)]
    automatic = [engine.add_request([7, 8], GREEDY) for _ in range(3)]
    assert len({r.request_id for r in custom + automatic}) == 6
    with pytest.raises(TypeError, match="request_id"):
        engine.add_request([5], GREEDY, request_id=7)
    assert engine.abort("1") is not None
    _run_to_completion(engine)
    assert all(r.is_finished for r in custom + automatic)


# ---- 3. hangs ------------------------------------------------------------------------------------------------------

def test_a_request_that_needs_exactly_the_whole_pool_runs(tiny_llama):
    engine = _engine(tiny_llama, num_kv_blocks=10, watermark=0.1)
    request = engine.add_request(list(range(3, 39)), SamplingParams(temperature=0, max_tokens=4, ignore_eos=True))
    assert engine.block_manager.blocks_for(36 + 4) == 10 == engine.kv_capacity
    _run_to_completion(engine)
    assert request.num_output_tokens == 4
    with pytest.raises(ValueError, match="KV blocks"):
        engine.add_request(list(range(3, 40)), SamplingParams(temperature=0, max_tokens=4, ignore_eos=True))


def test_a_request_accepted_in_a_grown_pool_is_not_stranded_when_layers_return_to_fp(tiny_llama):
    engine = _engine(tiny_llama, num_kv_blocks=10, watermark=0.0)
    runtime = attach_morph(engine, RTN)
    runtime.apply(["int4"] * 3)
    assert engine.kv_capacity > 20
    big = engine.add_request(list(range(3, 60)), SamplingParams(temperature=0, max_tokens=20, ignore_eos=True))
    runtime.apply(["fp"] * 3)                    # the raise must wait: big needs more than the FP pool
    assert engine.kv_capacity >= engine.block_manager.blocks_for(77) and runtime.actuator.waiting
    _run_to_completion(engine)
    assert big.num_output_tokens == 20 and big.finish_reason == "length"
    engine.step()                                # the boundary at which the waiting raises begin
    runtime.apply(["fp"] * 3)
    assert engine.kv_capacity == 10 and engine.num_quantized_layers == 0
    runtime.close()


# ---- 4. async engine -----------------------------------------------------------------------------------------------

def test_shutdown_answers_every_consumer_and_empties_the_engine(tiny_llama):
    engine = _engine(tiny_llama, num_kv_blocks=128)
    online = AsyncLLMEngine(engine)
    online.start()
    long = SamplingParams(temperature=0, max_tokens=100, ignore_eos=True)

    async def consume(prompt):
        async for _ in online.generate(prompt, long):
            pass

    async def main():
        tasks = [asyncio.create_task(consume([5 + i, 6, 7])) for i in range(3)]
        await asyncio.sleep(0.05)
        await asyncio.to_thread(online.shutdown)
        return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=1.0)
    results = asyncio.run(main())
    assert all(isinstance(r, EngineShutDown) for r in results)
    assert not engine.requests and engine.block_manager.num_used == 0


def test_a_cancelled_consumer_aborts_its_request(tiny_llama):
    engine = _engine(tiny_llama, num_kv_blocks=128)
    online = AsyncLLMEngine(engine)
    online.start()

    async def consume():
        async for _ in online.generate([5, 6, 7], SamplingParams(temperature=0, max_tokens=120, ignore_eos=True),
                                       request_id="walks-away"):
            pass

    async def main():
        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        task.cancel()
        deadline = time.monotonic() + 1.0
        while "walks-away" in engine.requests and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    try:
        asyncio.run(main())
    finally:
        online.shutdown()
    assert "walks-away" not in engine.requests and engine.block_manager.num_used == 0


def test_a_failing_request_raises_request_failed_for_its_consumer_only(tiny_llama, monkeypatch):
    engine = _engine(tiny_llama, num_kv_blocks=128)
    execute = engine.worker.execute

    def poisoned(batch):
        if any(c.seq_id == "poison" for c in batch.chunks):
            raise RuntimeError("injected")
        return execute(batch)
    monkeypatch.setattr(engine.worker, "execute", poisoned)
    online = AsyncLLMEngine(engine)
    online.start()

    async def last(request_id):
        out = None
        async for out in online.generate([5, 6, 7], GREEDY, request_id=request_id):
            pass
        return out

    async def main():
        return await asyncio.gather(last("poison"), last("fine"), return_exceptions=True)
    try:
        poisoned_result, fine = asyncio.run(main())
    finally:
        online.shutdown()
    assert isinstance(poisoned_result, RequestFailed) and "injected" in str(poisoned_result)
    assert fine.finished and len(fine.outputs[0].token_ids) == GREEDY.max_tokens


# ---- 5. chat template sandbox ---------------------------------------------------------------------------------------

def _template_tokenizer(template: str) -> LlamaTokenizer:
    return LlamaTokenizer(tokenizer=None, chat_template=template, bos_token_id=None, eos_token_id=None, add_bos=False)


def test_a_chat_template_cannot_reach_python_internals():
    attack = _template_tokenizer("{{ cycler.__init__.__globals__.os.getpid() }}")
    with pytest.raises(ValueError, match="unsafe"):
        attack.apply_chat_template([{"role": "user", "content": "hi"}])
    mutate = _template_tokenizer("{% set _ = messages.append({'role': 'x'}) %}{{ messages | length }}")
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(ValueError, match="unsafe"):
        mutate.apply_chat_template(messages)
    assert len(messages) == 1


def test_ordinary_templates_still_render_and_can_reject_a_conversation():
    plain = _template_tokenizer("{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
                                "{% if add_generation_prompt %}<assistant>{% endif %}")
    assert plain.apply_chat_template([{"role": "user", "content": "hi"}]) == "<user>hi<assistant>"
    strict = _template_tokenizer("{% if messages[0].role != 'user' %}{{ raise_exception('user first') }}{% endif %}")
    with pytest.raises(ValueError, match="user first"):
        strict.apply_chat_template([{"role": "system", "content": "x"}])


# ---- 6. caches -------------------------------------------------------------------------------------------------------

def _corrupt_manifest(manifest_path, how: str) -> None:
    manifest = json.loads(manifest_path.read_text())
    entry = next(iter(manifest["variants"].values()))
    if how == "not json":
        manifest_path.write_text("{ this is not json")
        return
    if how == "missing key":
        del entry["sha256"]
    elif how == "wrong layer count":
        entry["num_layers"] = 7
    elif how == "escaping path":
        entry["file"] = "../../outside.safetensors"
    manifest_path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("how", ["not json", "missing key", "wrong layer count", "escaping path"])
def test_a_malformed_variant_manifest_is_refused_and_rebuilt(tiny_llama, tmp_path, caplog, how):
    config = dataclasses.replace(RTN, variant_cache_dir=str(tmp_path))
    attach_morph(_engine(tiny_llama), config).close()
    [manifest_path] = tmp_path.glob("*/manifest.json")
    _corrupt_manifest(manifest_path, how)
    engine = _engine(tiny_llama)
    with caplog.at_level(logging.WARNING):
        runtime = attach_morph(engine, config)
    assert any("refusing cached variant" in r.message for r in caplog.records)
    runtime.apply(["int4"] * 3)
    assert engine.num_quantized_layers == 3
    runtime.close()
    assert json.loads(manifest_path.read_text())["variants"]["rtn-int4-g128"]["num_layers"] == 3   # rewritten


def test_a_safetensors_index_may_not_point_outside_its_folder(tiny_llama, tmp_path):
    import shutil
    folder = tmp_path / "model"
    shutil.copytree(tiny_llama, folder)
    weights = next(folder.glob("*.safetensors"))
    index = {"weight_map": {"model.embed_tokens.weight": "../" + weights.name}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="not a file in that folder"):
        LLMEngine(EngineConfig(model=str(folder), num_kv_blocks=8))


def test_attaching_twice_is_refused(tiny_llama):
    engine = _engine(tiny_llama)
    runtime = attach_morph(engine, RTN)
    with pytest.raises(RuntimeError, match="already attached"):
        attach_morph(engine, RTN)
    runtime.close()
    attach_morph(engine, RTN).close()            # after close a new runtime may attach


# ---- 7. experiment inputs --------------------------------------------------------------------------------------------

def test_an_infinite_time_scale_is_refused():
    from experiments.workload.scaling import TraceShaping
    for value in (math.inf, math.nan, -1.0):
        with pytest.raises(ValueError, match="time_scale must be > 0 and finite"):
            TraceShaping(time_scale=value)


def _write(path, text: str, bom: bool = False):
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


def test_non_finite_trace_timestamps_are_refused_with_their_line(tmp_path):
    from experiments.workload.traces import TraceFormatError, load_trace
    header = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
    trace = _write(tmp_path / "b.csv", header + "1.0,ChatGPT,10,20,30,Conversation log\n"
                                              "nan,ChatGPT,10,20,30,Conversation log\n")
    with pytest.raises(TraceFormatError, match=r"b.csv:3: bad Timestamp"):
        load_trace(trace)


def test_mixed_time_zones_and_a_byte_order_mark(tmp_path):
    from experiments.workload.traces import TraceFormatError, load_trace
    header = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
    mixed = _write(tmp_path / "a.csv", header + "2023-11-16 18:15:46.6805900,10,20\n"
                                              "2023-11-16 18:15:47.0000000+00:00,10,20\n")
    with pytest.raises(TraceFormatError, match="a.csv:3: .*mixes time-zone-aware and naive"):
        load_trace(mixed)
    with_bom = _write(tmp_path / "bom.csv", header + "2023-11-16 18:15:46.68,10,20\n2023-11-16 18:15:47.68,5,6\n",
                      bom=True)
    requests = load_trace(with_bom)
    assert [r.arrival_s for r in requests] == pytest.approx([0.0, 1.0])


def test_an_empty_window_fails_before_the_model_loads(tmp_path, monkeypatch):
    from experiments.replay import run
    from experiments.replay.config import ReplayConfig
    from experiments.workload import TraceConfig
    from experiments.workload.scaling import TraceShaping
    monkeypatch.setattr(run, "build_engine", lambda cfg: pytest.fail("the model was loaded"))
    cfg = ReplayConfig(trace=TraceConfig(shaping=TraceShaping(start_s=1e6, duration_s=10.0)), output_dir=str(tmp_path))
    with pytest.raises(ValueError, match="window holds no request"):
        run.run_replay(cfg)


# ---- the soak ---------------------------------------------------------------------------------------------------------

def test_soak_random_adds_aborts_steps_and_morph_plans_keep_every_invariant(tiny_llama):
    """Twenty thousand random operations on a small pool, the invariants checked after every one."""
    import random
    rng = random.Random(11)
    engine = _engine(tiny_llama, num_kv_blocks=40, max_num_seqs=12, max_num_batched_tokens=96)
    runtime = attach_morph(engine, RTN)
    memory = engine.memory
    requests, counts = [], {"add": 0, "refused": 0, "abort": 0, "plan": 0, "step": 0}
    for _ in range(SOAK_OPERATIONS):
        operation = rng.choices(["add", "abort", "plan", "step"], weights=[3, 1, 1, 6])[0]
        if operation == "add":
            try:
                params = SamplingParams(temperature=rng.choice([0, 0.8]), max_tokens=rng.randint(1, 40),
                                        seed=rng.choice([None, rng.randrange(1000)]), ignore_eos=rng.random() < 0.8)
                prompt_len = rng.choice([rng.randint(1, 70), rng.randint(100, 140)])      # some can never run
                requests.append(engine.add_request([rng.randrange(3, VOCAB) for _ in range(prompt_len)], params))
            except ValueError:
                counts["refused"] += 1
                continue
        elif operation == "abort" and engine.requests:
            engine.abort(rng.choice(list(engine.requests)))
        elif operation == "plan" and not runtime.actuator.busy:
            runtime.actuator.apply(_random_plan(rng), engine.clock())
        elif operation == "step":
            engine.step()
        counts[operation] += 1
        _check_engine_invariants(engine, runtime, memory.budget_bytes)
    steps = _run_to_completion(engine)
    runtime.close()
    assert all(r.is_finished and r.finish_reason in ("length", "stop", "abort") for r in requests)
    assert engine.block_manager.num_used == 0 and engine.kv_capacity == memory.num_kv_blocks
    statuses = {e.status for e in runtime.events}
    moved = sum(e.kv_blocks_moved for e in runtime.events)
    print(f"soak: {counts}, {steps} closing steps, {len(runtime.events)} transitions, {moved} live blocks moved, "
          f"{sum(r.finish_reason == 'abort' for r in requests)} aborted of {len(requests)}")
    assert statuses == {"done"} and len(runtime.events) > 500 and moved > 50 and counts["refused"] > 20, counts


def _random_plan(rng):
    from morph.plan import MorphPlan
    return MorphPlan(tuple(rng.choice(["fp", "int8", "int4"]) for _ in range(3)), "soak")


def _check_engine_invariants(engine: LLMEngine, runtime, budget: int) -> None:
    engine.block_manager.check_invariants(engine.scheduler.running)
    assert all(not r.block_table for r in engine.scheduler.waiting)
    memory = engine.memory
    assert memory.weight_bytes + memory.kv_bytes + memory.workspace_bytes <= budget
    assert engine.worker.kv_cache.num_blocks == engine.kv_capacity == memory.num_kv_blocks
    assert engine.kv_capacity >= engine.min_kv_capacity
    assert set(engine.requests) == {r.request_id for r in (*engine.scheduler.waiting, *engine.scheduler.running)}
    assert engine.num_quantized_layers == sum(p != "fp" for p in runtime.swapper.precisions)
