"""A bounded burst on loopback: 200 streaming clients at once against the server on the tiny model. Every request
completes or gets a status, none is lost, no KV block is left behind, and the P50/P95 TTFT and throughput are
printed beside the in-process replay of the same requests (the server's overhead)."""
import asyncio

import pytest

pytest.importorskip("fastapi", reason="the server's extra is not installed: pip install -e .[serve]")
pytest.importorskip("httpx", reason="the server's extra is not installed: pip install -e .[serve]")

from benchmarks.server_load import burst_in_process, burst_over_http, mixed_burst, table  # noqa: E402
from swiftllm import EngineConfig, LLMEngine  # noqa: E402
from swiftllm.server.api.app import build_app  # noqa: E402
from swiftllm.server.api.engine_client import LocalEngineClient  # noqa: E402
from swiftllm.server.async_engine import AsyncLLMEngine  # noqa: E402
from tests.server_support import served  # noqa: E402

NUM_CLIENTS = 200
OUTPUT_TOKENS = 16


def _engine(tiny_llama) -> LLMEngine:
    return LLMEngine(EngineConfig(model=tiny_llama, num_kv_blocks=2048, block_size=8))


def test_a_burst_of_200_streaming_clients_completes_without_loss_or_leak(tiny_llama):
    requests = mixed_burst(NUM_CLIENTS, vocab=256, seed=7, short_tokens=OUTPUT_TOKENS)
    client = LocalEngineClient(_engine(tiny_llama), "tiny")
    client.start()
    try:
        app = build_app(client, admission_limit=NUM_CLIENTS + 64)
        with served(app) as url:
            over_http = asyncio.run(burst_over_http(url, "tiny", requests, timeout_s=240))
        engine = client.engine
        assert engine.requests == {} and engine.kv_blocks_used == 0 and engine.block_manager.num_free == engine.kv_capacity
        assert app.state.server.gate.in_flight == 0
    finally:
        client.shutdown()

    assert len(over_http.outcomes) == NUM_CLIENTS
    for outcome in over_http.outcomes:
        assert outcome.status == 200 or (outcome.status >= 400 and outcome.error is not None)
    done = over_http.completed
    assert len(done) == NUM_CLIENTS, [o for o in over_http.outcomes if o not in done][:3]
    assert all(o.tokens == OUTPUT_TOKENS and o.finish_reason == "length" and o.error is None for o in done)

    replay = AsyncLLMEngine(_engine(tiny_llama))
    replay.start()
    try:
        in_process = asyncio.run(burst_in_process(replay, requests, timeout_s=240))
    finally:
        replay.shutdown()
    assert len(in_process.completed) == NUM_CLIENTS
    print("\n" + table({"HTTP server (loopback, SSE)": over_http.summary(), "in-process AsyncLLMEngine": in_process.summary()}))
