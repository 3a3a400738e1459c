import asyncio

import pytest

from swiftllm import LLM, EngineConfig, LLMEngine, SamplingParams
from swiftllm.server.async_engine import AsyncLLMEngine

PARAMS = SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)


async def _collect(engine, prompt, params=PARAMS, **kw):
    outs = [o async for o in engine.generate(prompt, params, **kw)]
    return outs


def test_streams_match_offline_generation(tiny_llama):
    prompts = [[5, 6, 7, 8], list(range(10, 60)), [9] * 30]
    offline = LLM(EngineConfig(model=tiny_llama, num_kv_blocks=128, block_size=8)).generate(prompts, PARAMS)
    online = AsyncLLMEngine(LLMEngine(EngineConfig(model=tiny_llama, num_kv_blocks=128, block_size=8)))
    online.start()
    try:
        async def main():
            return await asyncio.gather(*[_collect(online, p) for p in prompts])
        streams = asyncio.run(main())
    finally:
        online.shutdown()
    for stream, ref in zip(streams, offline):
        assert [len(o.outputs[0].token_ids) for o in stream] == list(range(1, 13))   # one output per token
        assert stream[-1].finished and stream[-1].outputs[0].token_ids == ref.outputs[0].token_ids


def test_abort_and_bad_request(tiny_llama):
    online = AsyncLLMEngine(LLMEngine(EngineConfig(model=tiny_llama, num_kv_blocks=128, block_size=8)))
    online.start()
    try:
        async def main():
            long = SamplingParams(temperature=0, max_tokens=400, ignore_eos=True)
            outs = []
            async for out in online.generate([5, 6], long, request_id="victim"):
                if not outs:
                    online.abort("victim")          # after the first token, long before the 400th
                outs.append(out)
            assert outs[-1].outputs[0].finish_reason == "abort" and len(outs[-1].outputs[0].token_ids) < 400
            with pytest.raises(ValueError, match="empty"):
                await _collect(online, [])
        asyncio.run(main())
    finally:
        online.shutdown()
