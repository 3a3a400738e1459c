"""The server's overhead under a burst: N streaming clients at once against ``morphserve serve`` (its own process,
on loopback), then the same requests replayed in this process straight into an ``AsyncLLMEngine``.

    python benchmarks/bench_server.py [--model embedded] [--clients 200] [--output-tokens 16] [--policy none]
"""
import argparse
import asyncio
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import httpx  # noqa: E402

from benchmarks.server_load import burst_in_process, burst_over_http, mixed_burst, table  # noqa: E402
from swiftllm import EngineConfig, LLMEngine  # noqa: E402
from swiftllm.server.async_engine import AsyncLLMEngine  # noqa: E402
from swiftllm.server.tokenization import LlamaTokenizer  # noqa: E402

MiB = 1 << 20


def wait_for_health(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server at {url} did not come up in {timeout_s} s")


def over_http(args, requests):
    command = [sys.executable, "-m", "morph.serve", "serve", "--model", args.model, "--port", str(args.port),
               "--policy", args.policy, "--memory-budget-mib", str(args.memory_budget_mib),
               "--max-queued-requests", str(args.clients)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{args.port}"
    try:
        wait_for_health(url, 300)
        return asyncio.run(burst_over_http(url, args.model, requests))
    finally:
        server.terminate()
        server.wait(timeout=60)


def in_process(args, requests):
    engine = AsyncLLMEngine(LLMEngine(EngineConfig(model=args.model, memory_budget_bytes=args.memory_budget_mib * MiB)))
    engine.start()
    try:
        return asyncio.run(burst_in_process(engine, requests))
    finally:
        engine.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--output-tokens", type=int, default=16)
    parser.add_argument("--policy", default="none", help="the server's morph policy (the replay runs without one)")
    parser.add_argument("--memory-budget-mib", type=int, default=1024)
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    requests = mixed_burst(args.clients, LlamaTokenizer.load(args.model).vocab_size, seed=7,
                           short_tokens=args.output_tokens)
    rows = {"HTTP server (own process)": over_http(args, requests).summary(),
            "in-process AsyncLLMEngine": in_process(args, requests).summary()}
    print(table(rows))


if __name__ == "__main__":
    main()
