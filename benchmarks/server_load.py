"""Bursts of streaming requests: over HTTP against a running server, and replayed in process on an engine.

A request is (prompt token ids, max_tokens), always run to ``max_tokens`` (``ignore_eos``), so both sides produce
the same tokens. Over HTTP, TTFT is measured by the client: from sending the request to the first frame that
carries tokens; in process, from ``generate()`` to the first output. Throughput is output tokens over the time
from the first request sent to the last one finished.
"""
import asyncio
import json
import random
import statistics
import time
from dataclasses import dataclass, field

import httpx

from swiftllm.sampling_params import SamplingParams
from swiftllm.server.async_engine import AsyncLLMEngine


@dataclass(frozen=True, slots=True)
class LoadRequest:
    prompt: list[int]
    max_tokens: int
    delay_s: float = 0.0          # when it is sent, after the burst starts


@dataclass(slots=True)
class Outcome:
    """What happened to one request: ``status`` 200 with tokens, or the error status with the error body."""
    status: int
    ttft_s: float | None = None
    tokens: int = 0
    finish_reason: str | None = None
    error: dict | None = None


@dataclass(slots=True)
class BurstResult:
    outcomes: list[Outcome]
    wall_s: float
    extra: dict = field(default_factory=dict)

    @property
    def completed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == 200 and o.finish_reason is not None]

    def summary(self) -> dict:
        ttfts = sorted(o.ttft_s for o in self.completed)
        tokens = sum(o.tokens for o in self.completed)
        return {"requests": len(self.outcomes), "completed": len(self.completed), "p50_ttft_s": quantile(ttfts, 0.5),
                "p95_ttft_s": quantile(ttfts, 0.95), "tokens_per_s": tokens / self.wall_s, "wall_s": self.wall_s}


def quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    if len(sorted_values) == 1:
        return sorted_values[0]
    return statistics.quantiles(sorted_values, n=100, method="inclusive")[round(q * 100) - 1]


def mixed_burst(n: int, vocab: int, seed: int = 0, long_share: float = 0.0, long_tokens: int = 96,
                short_tokens: int = 16, spread_s: float = 0.0) -> list[LoadRequest]:
    """``n`` prompts of 8-32 random tokens; a ``long_share`` of them asks ``long_tokens`` outputs, the rest
    ``short_tokens``; send times uniform in ``[0, spread_s]`` (0: all at once)."""
    rng = random.Random(seed)
    return [LoadRequest([rng.randrange(3, vocab) for _ in range(rng.randint(8, 32))],
                        long_tokens if rng.random() < long_share else short_tokens,
                        rng.uniform(0, spread_s)) for _ in range(n)]


async def burst_over_http(base_url: str, model: str, requests: list[LoadRequest], timeout_s: float = 300.0,
                          headers: dict | None = None) -> BurstResult:
    limits = httpx.Limits(max_connections=len(requests) + 8, max_keepalive_connections=len(requests) + 8)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout_s, limits=limits, headers=headers) as client:
        start = time.perf_counter()
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(_one_over_http(client, model, r, start) for r in requests)), timeout_s)
        return BurstResult(list(outcomes), time.perf_counter() - start)


async def _one_over_http(client: httpx.AsyncClient, model: str, request: LoadRequest, start: float) -> Outcome:
    await asyncio.sleep(max(0.0, start + request.delay_s - time.perf_counter()))
    body = {"model": model, "prompt": request.prompt, "max_tokens": request.max_tokens, "ignore_eos": True,
            "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
    sent = time.perf_counter()
    async with client.stream("POST", "/v1/completions", json=body) as response:
        if response.status_code != 200:
            return Outcome(response.status_code, error=json.loads(await response.aread()).get("error"))
        outcome = Outcome(200)
        async for line in response.aiter_lines():
            _read_frame(line, outcome, sent)
        return outcome


def _read_frame(line: str, outcome: Outcome, sent: float) -> None:
    if not line.startswith("data: ") or line == "data: [DONE]":
        return
    chunk = json.loads(line[len("data: "):])
    if "error" in chunk:
        outcome.error = chunk["error"]
        return
    for choice in chunk["choices"]:
        if outcome.ttft_s is None and choice["precision_provenance"]["precision_versions"]:
            outcome.ttft_s = time.perf_counter() - sent
        outcome.finish_reason = choice["finish_reason"] or outcome.finish_reason
    if chunk.get("usage"):
        outcome.tokens = chunk["usage"]["completion_tokens"]


async def burst_in_process(engine: AsyncLLMEngine, requests: list[LoadRequest], timeout_s: float = 300.0) -> BurstResult:
    """The same requests straight into a started ``AsyncLLMEngine``: the engine's share of the server's numbers."""
    start = time.perf_counter()
    outcomes = await asyncio.wait_for(asyncio.gather(*(_one_in_process(engine, r, start) for r in requests)), timeout_s)
    return BurstResult(list(outcomes), time.perf_counter() - start)


async def _one_in_process(engine: AsyncLLMEngine, request: LoadRequest, start: float) -> Outcome:
    await asyncio.sleep(max(0.0, start + request.delay_s - time.perf_counter()))
    params = SamplingParams(temperature=0, max_tokens=request.max_tokens, ignore_eos=True)
    sent = time.perf_counter()
    outcome = Outcome(200)
    async for output in engine.generate(request.prompt, params):
        if outcome.ttft_s is None:
            outcome.ttft_s = time.perf_counter() - sent
        outcome.tokens = len(output.outputs[0].token_ids)
        outcome.finish_reason = output.outputs[0].finish_reason
    return outcome


def table(rows: dict[str, dict]) -> str:
    lines = [f"{'run':<28} {'requests':>8} {'done':>6} {'P50 TTFT s':>11} {'P95 TTFT s':>11} {'tokens/s':>9} {'wall s':>7}"]
    for name, s in rows.items():
        lines.append(f"{name:<28} {s['requests']:>8} {s['completed']:>6} {s['p50_ttft_s']:>11.3f} {s['p95_ttft_s']:>11.3f} "
                     f"{s['tokens_per_s']:>9.1f} {s['wall_s']:>7.2f}")
    return "\n".join(lines)
