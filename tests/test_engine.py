"""Engine behaviour: batching, chunked prefill and preemption leave greedy tokens unchanged; stops; bad input."""
import random

import pytest

from swiftllm import LLM, EngineConfig, LLMEngine, SamplingParams
from tests.test_model_reference import PROMPTS

GREEDY = SamplingParams(temperature=0, max_tokens=24, ignore_eos=True)


def _prompts(n, seed=0, low=4, high=120):
    rng = random.Random(seed)
    return [[rng.randrange(3, 256) for _ in range(rng.randint(low, high))] for _ in range(n)]


def _tokens(llm, prompts, params=GREEDY):
    return [o.outputs[0].token_ids for o in llm.generate(prompts, params)]


def test_batched_equals_one_at_a_time_tiny(tiny_llama):
    llm = LLM(EngineConfig(model=tiny_llama, num_kv_blocks=256, block_size=8))
    prompts = _prompts(8)
    assert _tokens(llm, prompts) == [_tokens(llm, [p])[0] for p in prompts]


def test_chunked_prefill_and_preemption_give_the_same_tokens_tiny(tiny_llama):
    prompts = _prompts(8, seed=1)
    reference = _tokens(LLM(EngineConfig(model=tiny_llama, num_kv_blocks=256, block_size=8)), prompts)
    chunked = LLM(EngineConfig(model=tiny_llama, num_kv_blocks=256, block_size=8, max_num_batched_tokens=48))
    assert _tokens(chunked, prompts) == reference
    tight = LLM(EngineConfig(model=tiny_llama, num_kv_blocks=24, block_size=8, watermark=0.0))
    outs = tight.generate(prompts, GREEDY)
    assert sum(o.metrics.num_preemptions for o in outs) > 0, "the cache was meant to be too small for all requests at once"
    assert [o.outputs[0].token_ids for o in outs] == reference


def test_embedded_batched_chunked_and_preempted_equal_one_at_a_time(embedded_llm):
    tok = embedded_llm.engine.tokenizer
    prompts = [tok.encode(p) for p in PROMPTS[:6]]
    params = SamplingParams(temperature=0, max_tokens=32, ignore_eos=True)
    single = [_tokens(embedded_llm, [p], params)[0] for p in prompts]
    assert _tokens(embedded_llm, prompts, params) == single
    tight = LLM(EngineConfig(model="embedded", num_kv_blocks=8, block_size=16, watermark=0.0, max_num_batched_tokens=16))
    outs = tight.generate(prompts, params)
    assert sum(o.metrics.num_preemptions for o in outs) > 0
    assert [o.outputs[0].token_ids for o in outs] == single


def test_stop_conditions(tiny_llama):
    llm = LLM(EngineConfig(model=tiny_llama, num_kv_blocks=128, block_size=8))
    prompt = _prompts(1, seed=3)[0]
    free_run = _tokens(llm, [prompt], SamplingParams(temperature=0, max_tokens=20, ignore_eos=True))[0]
    stop_at = free_run[5]
    out = llm.generate([prompt], SamplingParams(temperature=0, max_tokens=20, stop_token_ids=[stop_at], ignore_eos=True))[0]
    assert out.outputs[0].token_ids == free_run[:free_run.index(stop_at) + 1] and out.outputs[0].finish_reason == "stop"
    word = f"w{stop_at}"
    out = llm.generate([prompt], SamplingParams(temperature=0, max_tokens=20, stop=[word], ignore_eos=True))[0]
    assert word not in out.outputs[0].text and out.outputs[0].finish_reason == "stop"
    out = llm.generate([prompt], SamplingParams(temperature=0, max_tokens=7, ignore_eos=True))[0]
    assert len(out.outputs[0].token_ids) == 7 and out.outputs[0].finish_reason == "length"


def test_eos_stops_unless_ignored(tiny_llama):
    llm = LLM(EngineConfig(model=tiny_llama, num_kv_blocks=128, block_size=8))
    llm.engine.model_config.eos_token_ids = []
    prompt = _prompts(1, seed=4)[0]
    run = _tokens(llm, [prompt], SamplingParams(temperature=0, max_tokens=12, ignore_eos=True))[0]
    llm.engine.tokenizer.eos_token_id = run[3]
    stopped = _tokens(llm, [prompt], SamplingParams(temperature=0, max_tokens=12))[0]
    assert stopped == run[:run.index(run[3]) + 1]
    assert _tokens(llm, [prompt], SamplingParams(temperature=0, max_tokens=12, ignore_eos=True))[0] == run


def test_seeded_sampling_is_reproducible_and_top_k_1_is_greedy(tiny_llama):
    llm = LLM(EngineConfig(model=tiny_llama, num_kv_blocks=128, block_size=8))
    prompts = _prompts(3, seed=5)
    seeded = SamplingParams(temperature=1.0, top_p=0.9, top_k=50, seed=123, max_tokens=16, ignore_eos=True)
    assert _tokens(llm, prompts, seeded) == _tokens(llm, prompts, seeded)
    assert _tokens(llm, prompts, seeded) != _tokens(llm, prompts, SamplingParams(temperature=1.0, seed=7, max_tokens=16, ignore_eos=True))
    top1 = SamplingParams(temperature=0.8, top_k=1, max_tokens=16, ignore_eos=True)
    assert _tokens(llm, prompts, top1) == _tokens(llm, prompts, SamplingParams(temperature=0, max_tokens=16, ignore_eos=True))


@pytest.mark.parametrize("kwargs, message", [
    (dict(temperature=-1), "temperature"), (dict(top_k=0), "top_k"), (dict(top_p=0.0), "top_p"),
    (dict(top_p=1.5), "top_p"), (dict(max_tokens=0), "max_tokens"), (dict(stop=[""]), "stop"),
])
def test_bad_sampling_params(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SamplingParams(**kwargs)


def test_bad_requests_are_refused_and_lose_nothing(tiny_llama):
    engine = LLMEngine(EngineConfig(model=tiny_llama, num_kv_blocks=16, block_size=8, max_model_len=64))
    with pytest.raises(ValueError, match="empty"):
        engine.add_request([], GREEDY)
    with pytest.raises(ValueError, match="does not fit the context"):
        engine.add_request(list(range(3, 67)), GREEDY)
    with pytest.raises(ValueError, match="token ids must be in"):
        engine.add_request([5, 999], GREEDY)
    with pytest.raises(ValueError, match="more KV blocks"):
        LLMEngine(EngineConfig(model=tiny_llama, num_kv_blocks=2, block_size=8)).add_request([5] * 10, GREEDY)
    with pytest.raises(TypeError, match="SamplingParams"):
        engine.add_request([5, 6], {"temperature": 0})
    good = engine.add_request([5, 6, 7], GREEDY)
    with pytest.raises(ValueError, match="already in use"):
        engine.add_request([5, 6], GREEDY, request_id=good.request_id)
    while engine.has_unfinished():
        engine.step()
    assert len(good.output_token_ids) == GREEDY.max_tokens


@pytest.mark.parametrize("model", ["no/such/model", "/tmp/missing.gguf"])
def test_unknown_model_path(model):
    with pytest.raises(FileNotFoundError, match="not found"):
        LLM(EngineConfig(model=model))


@pytest.mark.parametrize("kwargs, message", [
    (dict(block_size=12), "power of two"), (dict(dtype="int3"), "dtype"), (dict(device="tpu"), "device"),
    (dict(memory_budget_bytes=-5), "memory_budget_bytes"), (dict(watermark=1.5), "watermark"),
])
def test_bad_engine_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EngineConfig(**kwargs)


def test_budget_too_small_for_the_weights(tiny_llama):
    with pytest.raises(ValueError, match="too small"):
        LLMEngine(EngineConfig(model=tiny_llama, memory_budget_bytes=100_000))


def test_abort_frees_blocks(tiny_llama):
    engine = LLMEngine(EngineConfig(model=tiny_llama, num_kv_blocks=64, block_size=8))
    a = engine.add_request(_prompts(1)[0], GREEDY)
    b = engine.add_request(_prompts(1, seed=9)[0], GREEDY)
    engine.step()
    out = engine.abort(a.request_id)
    assert out.outputs[0].finish_reason == "abort" and a.block_table == []
    engine.block_manager.check_invariants(engine.scheduler.running)
    while engine.has_unfinished():
        engine.step()
    assert len(b.output_token_ids) == GREEDY.max_tokens and engine.block_manager.num_used == 0
