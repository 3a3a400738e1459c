"""The Request Dispatcher against round-robin on Ray Serve: the same burst, the same replicas, both policies.

Starts a local Ray cluster (on the loopback interface), deploys N engine replicas of the model (one torch thread
each, each with its morph runtime) behind the ingress, and sends one burst under each policy: a mix of short and
long requests (``--long-share`` of them ask ``--long-tokens`` outputs) sent within ``--spread`` seconds. Prints the
P50/P95 TTFT and throughput of each run and how many requests each replica served, and plots each replica's load
(running + waiting requests, read from ``/metrics`` every 0.1 s) over time.

    python benchmarks/bench_ray_dispatch.py [--model embedded] [--requests 96] [--replicas 2] [--out results/serving]
"""
import argparse
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from swiftllm.server.replicas.loopback import keep_ray_on_loopback  # noqa: E402

keep_ray_on_loopback()

import httpx  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from benchmarks.server_load import BurstResult, burst_over_http, mixed_burst, table  # noqa: E402

LOAD_SAMPLE_S = 0.1
ROUTINGS = ("headroom", "round_robin")


def engine_values(metrics_text: str, name: str) -> dict[str, float]:
    """The samples called ``name`` by their ``engine`` label."""
    return {sample.labels["engine"]: sample.value for family in text_string_to_metric_families(metrics_text)
            for sample in family.samples if sample.name == name}


async def sample_loads(client: httpx.AsyncClient, stop: asyncio.Event, series: list) -> None:
    """Append (seconds, {engine: running + waiting}) every ``LOAD_SAMPLE_S`` until ``stop``."""
    start = time.perf_counter()
    while not stop.is_set():
        text = (await client.get("/metrics")).text
        running = engine_values(text, "vllm:num_requests_running")
        waiting = engine_values(text, "vllm:num_requests_waiting")
        series.append((time.perf_counter() - start, {e: running[e] + waiting.get(e, 0) for e in running}))
        await asyncio.sleep(LOAD_SAMPLE_S)


async def measured_burst(url: str, model: str, requests) -> tuple[BurstResult, list, dict[str, float]]:
    """The burst's result, the replicas' load over time, and how many requests each replica finished."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        before = engine_values((await client.get("/metrics")).text, "vllm:e2e_request_latency_seconds_count")
        stop, series = asyncio.Event(), []
        sampler = asyncio.create_task(sample_loads(client, stop, series))
        result = await burst_over_http(url, model, requests)
        stop.set()
        await sampler
        after = engine_values((await client.get("/metrics")).text, "vllm:e2e_request_latency_seconds_count")
    served = {engine: after[engine] - before.get(engine, 0) for engine in after}
    return result, series, served


def compare(url: str, model: str, requests, set_routing) -> dict[str, tuple[BurstResult, list, dict]]:
    runs = {}
    for routing in ROUTINGS:
        set_routing(routing)
        runs[routing] = asyncio.run(measured_burst(url, model, requests))
    return runs


def plot(runs: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs), 3.5), sharey=True)
    for axis, (routing, (result, series, _)) in zip(axes, runs.items()):
        engines = sorted({engine for _, loads in series for engine in loads})
        for engine in engines:
            axis.plot([t for t, _ in series], [loads.get(engine, 0) for _, loads in series], label=f"replica {engine}")
        p95 = result.summary()["p95_ttft_s"]
        axis.set_title(f"{routing}: P95 TTFT {p95:.2f} s")
        axis.set_xlabel("seconds since the burst began")
        axis.legend()
    axes[0].set_ylabel("running + waiting requests")
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=120)


def report(runs: dict) -> str:
    lines = [table({routing: result.summary() for routing, (result, _, _) in runs.items()}), "requests per replica:"]
    for routing, (_, _, served) in runs.items():
        lines.append(f"  {routing:<12} " + ", ".join(f"replica {e}: {int(n)}" for e, n in sorted(served.items())))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--requests", type=int, default=96)
    parser.add_argument("--long-share", type=float, default=0.25)
    parser.add_argument("--long-tokens", type=int, default=128)
    parser.add_argument("--short-tokens", type=int, default=16)
    parser.add_argument("--spread", type=float, default=2.0, help="seconds over which the burst is sent")
    parser.add_argument("--policy", default="morph_accuracy", help="each replica's morph policy, or 'none'")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--out", default="results/serving")
    args = parser.parse_args()

    from ray import serve
    from morph.serve import morph_attacher
    from swiftllm.server.api_server import ServeConfig
    from swiftllm.server.replicas.ray_app import APP_NAME, start_on_ray
    from swiftllm.server.tokenization import LlamaTokenizer

    config = ServeConfig(model=args.model, replicas=args.replicas, port=args.port, threads=1,
                         attach_runtime=morph_attacher(args.policy), memory_budget_bytes=1 << 30)
    start = time.perf_counter()
    start_on_ray(config)
    print(f"{args.replicas} replicas of {args.model} up in {time.perf_counter() - start:.1f} s")
    ingress = serve.get_app_handle(APP_NAME)
    vocab = LlamaTokenizer.load(args.model).vocab_size
    requests = mixed_burst(args.requests, vocab, seed=1, long_share=args.long_share, long_tokens=args.long_tokens,
                           short_tokens=args.short_tokens, spread_s=args.spread)
    url = f"http://127.0.0.1:{args.port}"
    try:
        runs = compare(url, args.model, requests, lambda routing: ingress.set_routing.remote(routing).result())
    finally:
        serve.shutdown()
    print(report(runs))
    path = os.path.join(args.out, "ray_replica_load.png")
    plot(runs, path)
    print(f"per-replica load plot: {path}")


if __name__ == "__main__":
    main()
