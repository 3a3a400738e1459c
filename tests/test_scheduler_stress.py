"""Randomized stress: arrivals, aborts, chunked prefill and preemption; block invariants after every step."""
import random

from swiftllm import EngineConfig, LLMEngine, SamplingParams


def test_block_invariants_hold_for_2000_steps(tiny_llama):
    rng = random.Random(0)
    engine = LLMEngine(EngineConfig(model=tiny_llama, num_kv_blocks=40, block_size=4, watermark=0.05,
                                    max_num_batched_tokens=64, max_num_seqs=12, max_model_len=150))
    requests, live = [], {}
    finished = 0
    for _ in range(2000):
        if len(live) < 24 and rng.random() < 0.4:
            prompt = [rng.randrange(3, 256) for _ in range(rng.randint(1, 40))]
            params = SamplingParams(temperature=rng.choice([0, 0.7]), max_tokens=rng.randint(1, 100), ignore_eos=True)
            req = engine.add_request(prompt, params)
            requests.append(req)
            live[req.request_id] = req
        if live and rng.random() < 0.02:
            engine.abort(rng.choice(list(live)))
        for out in engine.step():
            if out.finished:
                finished += 1
                assert len(out.outputs[0].token_ids) == live[out.request_id].params.max_tokens
        engine.block_manager.check_invariants(engine.scheduler.running)
        assert all(not r.block_table for r in engine.scheduler.waiting)
        live = {k: r for k, r in live.items() if not r.is_finished}
    preemptions = sum(r.num_preemptions for r in requests)
    assert finished > 50 and preemptions > 10, (finished, preemptions)
