"""Elastic KV pool: BlockManager grow/shrink with block-table remaps, PagedKVCache commit/release/move,
and the KVResizer under live requests (>= 1,000 randomized steps, greedy outputs unchanged)."""
import random

import pytest
import torch

from morph.kv_resizer import KVResizer
from swiftllm import EngineConfig, LLMEngine, SamplingParams
from swiftllm.model_config import LlamaModelConfig
from swiftllm.server.block_manager import BlockManager
from swiftllm.server.structs import Request
from swiftllm.worker.kv_cache import PagedKVCache
from tests.test_memory_arena import rss_bytes

MiB = 1 << 20


@pytest.fixture(autouse=True)
def one_thread():
    """The tiny model's ops are far too small for intra-op threads, which only contend with other processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _request(num_tokens: int) -> Request:
    return Request(prompt_token_ids=list(range(3, 3 + num_tokens)), params=SamplingParams(max_tokens=1), arrival_time=0.0)


def _live_manager(capacity: int = 16, block_size: int = 4) -> tuple[BlockManager, list[Request]]:
    """A manager with three requests whose blocks interleave (so a shrink must move some of them)."""
    manager = BlockManager(capacity, block_size, watermark=0.0)
    reqs = [_request(12) for _ in range(3)]
    for tokens in (4, 8, 12):
        for req in reqs:
            manager.allocate(req, tokens)
            req.num_computed = tokens
    return manager, reqs


def test_grow_adds_free_blocks_at_the_top():
    manager, reqs = _live_manager()
    tables = [list(r.block_table) for r in reqs]
    manager.grow(24)
    assert manager.capacity == 24 and manager.num_free == 24 - 9
    assert [r.block_table for r in reqs] == tables
    manager.check_invariants(reqs)


def test_shrink_moves_live_blocks_below_the_new_capacity_and_remaps_tables():
    manager = BlockManager(16, 4, watermark=0.0)
    a, b, c = _request(12), _request(24), _request(16)
    for req in (a, b, c):                          # a: 0..2, b: 3..8, c: 9..12
        manager.allocate(req, req.num_tokens)
        req.num_computed = req.num_tokens
    manager.free(b)
    assert manager.shrink(10) == [(10, 3), (11, 4), (12, 5)]
    assert a.block_table == [0, 1, 2] and c.block_table == [9, 3, 4, 5]
    assert manager.capacity == 10 and sorted(manager.free_blocks) == [6, 7, 8]
    manager.check_invariants([a, c])


def test_shrink_drops_free_blocks_without_moving_when_live_blocks_are_low():
    manager, reqs = _live_manager(capacity=32)
    assert manager.shrink(10) == []
    assert manager.capacity == 10 and manager.num_free == 1
    manager.check_invariants(reqs)


@pytest.mark.parametrize("call,message", [
    (lambda m: m.shrink(8), "9 blocks are in use"),
    (lambda m: m.shrink(0), "1 <= new_capacity <= capacity"),
    (lambda m: m.shrink(17), "1 <= new_capacity <= capacity"),
    (lambda m: m.grow(15), "new_capacity >= capacity"),
])
def test_bad_resizes_are_refused_and_change_nothing(call, message):
    manager, reqs = _live_manager()
    with pytest.raises(ValueError, match=message):
        call(manager)
    assert manager.capacity == 16
    manager.check_invariants(reqs)


def _config(num_layers=2, num_kv_heads=2, head_dim=64) -> LlamaModelConfig:
    return LlamaModelConfig(num_layers=num_layers, hidden_size=128, intermediate_size=256, num_q_heads=num_kv_heads,
                            num_kv_heads=num_kv_heads, head_dim=head_dim, vocab_size=32, max_position_embeddings=256)


def test_resize_keeps_the_kept_blocks_and_move_blocks_copies_every_layer():
    cache = PagedKVCache(_config(), 8, 16, torch.float32, "cpu", max_blocks=64)
    for i, (k, v) in enumerate(zip(cache.k, cache.v)):
        k.copy_(torch.randn_like(k))
        v.copy_(torch.randn_like(v) + i)
    kept = [t[:6].clone() for t in cache.k + cache.v]
    cache.resize(40)
    assert cache.num_blocks == 40 and all(t.shape[0] == 40 for t in cache.k + cache.v)
    assert all(torch.equal(t[:6], old) for t, old in zip(cache.k + cache.v, kept))
    cache.move_blocks([(2, 30), (5, 31)])
    assert all(torch.equal(t[30], t[2]) and torch.equal(t[31], t[5]) for t in cache.k + cache.v)
    cache.resize(6)
    assert all(torch.equal(t[:6], old) for t, old in zip(cache.k + cache.v, kept))
    assert cache.nbytes() == 6 * PagedKVCache.block_bytes(_config(), 16, torch.float32)


def test_shrinking_the_pool_returns_memory_to_the_os():
    cache = PagedKVCache(_config(), 1, 16, torch.float32, "cpu", max_blocks=1024)   # 8 KB per block and layer
    cache.resize(1024)
    for t in cache.k + cache.v:
        t.fill_(1.0)
    filled = rss_bytes()
    cache.resize(1)
    released = 4 * 1023 * 16 * 2 * 64 * 4
    assert filled - rss_bytes() > 0.9 * released, (filled - rss_bytes(), released)


@pytest.mark.parametrize("blocks,message", [(0, "num_blocks <= max_blocks"), (9, "num_blocks <= max_blocks")])
def test_bad_pool_sizes_are_refused(blocks, message):
    with pytest.raises(ValueError, match=message):
        PagedKVCache(_config(), blocks, 16, torch.float32, "cpu", max_blocks=8)
    cache = PagedKVCache(_config(), 4, 16, torch.float32, "cpu", max_blocks=8)
    with pytest.raises(ValueError, match="max_blocks=8"):
        cache.resize(9)


def _engine(path: str) -> LLMEngine:
    return LLMEngine(EngineConfig(model=path, num_kv_blocks=48, block_size=4, watermark=0.02,
                                  max_num_batched_tokens=64, max_num_seqs=10, max_model_len=120))


def _arrivals(num_steps: int, seed: int) -> dict[int, list[list[int]]]:
    """step -> prompts arriving before it (a fixed schedule, so both runs see the same workload)."""
    rng = random.Random(seed)
    schedule = {}
    for step in range(num_steps):
        if rng.random() < 0.3:
            schedule[step] = [[rng.randrange(3, 256) for _ in range(rng.randint(2, 30))]]
    return schedule


def _replay(engine: LLMEngine, schedule, num_steps: int, between_steps) -> dict[str, list[int]]:
    rng = random.Random(7)
    requests = []
    for step in range(num_steps):
        for prompt in schedule.get(step, []):
            params = SamplingParams(temperature=0, max_tokens=rng.randint(1, 60), ignore_eos=True)
            requests.append(engine.add_request(prompt, params, request_id=str(len(requests))))
        engine.step()
        between_steps(engine)
    while engine.has_unfinished():
        engine.step()
    return {r.request_id: r.output_token_ids for r in requests}


def test_random_grow_and_shrink_under_live_requests_keeps_invariants_and_greedy_outputs(tiny_llama):
    num_steps = 1200
    schedule = _arrivals(num_steps, seed=3)
    reference = _replay(_engine(tiny_llama), schedule, num_steps, lambda engine: None)

    engine = _engine(tiny_llama)
    resizer = KVResizer(engine)
    rng = random.Random(11)
    counts = {"grow": 0, "shrink": 0, "moved": 0, "refused": 0}

    def resize_randomly(engine: LLMEngine) -> None:
        if rng.random() < 0.3:
            resize = resizer.resize(rng.randint(36, 80))
            if resize is not None and resize.after != resize.before:
                counts["grow" if resize.after > resize.before else "shrink"] += 1
                counts["moved"] += resize.moved_blocks
        used, capacity = engine.block_manager.num_used, engine.block_manager.capacity
        if used >= 2 and rng.random() < 0.1:
            assert resizer.resize(used - 1) is None and engine.block_manager.capacity == capacity
            counts["refused"] += 1
        engine.block_manager.check_invariants(engine.scheduler.running)
        assert engine.worker.kv_cache.num_blocks == engine.block_manager.capacity == engine.memory.num_kv_blocks
        assert all(not r.block_table for r in engine.scheduler.waiting)

    outputs = _replay(engine, schedule, num_steps, resize_randomly)
    assert outputs == reference
    assert counts["grow"] > 50 and counts["shrink"] > 50 and counts["moved"] > 50 and counts["refused"] > 10, counts
