"""Ray Serve on a local Ray cluster (loopback only): 2 replicas of the embedded model, one torch thread and one morph
runtime each, serve a burst under the Request Dispatcher and under round-robin; every request completes, both
replicas serve under both policies, and the per-replica load plot and the P95 TTFT of each policy come out (a small
version of benchmarks/bench_ray_dispatch.py)."""
import pytest

from swiftllm.server.replicas.loopback import keep_ray_on_loopback

keep_ray_on_loopback()
ray = pytest.importorskip("ray", reason="Ray Serve is not installed: pip install -e .[ray]")
pytest.importorskip("httpx", reason="the server's extra is not installed: pip install -e .[serve]")

import httpx  # noqa: E402
from ray import serve  # noqa: E402

from benchmarks.bench_ray_dispatch import ROUTINGS, compare, plot, report  # noqa: E402
from benchmarks.server_load import mixed_burst  # noqa: E402
from morph.serve import morph_attacher  # noqa: E402
from swiftllm.server.api_server import ServeConfig  # noqa: E402
from swiftllm.server.replicas.ray_app import APP_NAME, start_on_ray  # noqa: E402
from swiftllm.server.tokenization import LlamaTokenizer  # noqa: E402
from tests.server_support import free_port  # noqa: E402

NUM_REQUESTS = 24


@pytest.fixture(scope="module")
def two_replicas():
    port = free_port()
    config = ServeConfig(model="embedded", replicas=2, port=port, threads=1, memory_budget_bytes=1 << 30,
                         max_model_len=512, attach_runtime=morph_attacher("morph_accuracy"))
    try:
        start_on_ray(config)
        yield f"http://127.0.0.1:{port}", serve.get_app_handle(APP_NAME)
    finally:
        serve.shutdown()
        ray.shutdown()


def test_two_replicas_serve_a_burst_under_the_dispatcher_and_round_robin(two_replicas, tmp_path):
    url, ingress = two_replicas
    health = httpx.get(f"{url}/health", timeout=30).json()
    assert health["status"] == "ok" and len(health["engines"]) == 2
    requests = mixed_burst(NUM_REQUESTS, LlamaTokenizer.load("embedded").vocab_size, seed=3, long_share=0.25,
                           long_tokens=48, short_tokens=8, spread_s=1.0)
    runs = compare(url, "embedded", requests, lambda routing: ingress.set_routing.remote(routing).result())
    for routing in ROUTINGS:
        result, series, served = runs[routing]
        assert len(result.completed) == NUM_REQUESTS, routing
        assert all(o.tokens == r.max_tokens for o, r in zip(result.outcomes, requests))
        assert sum(served.values()) == NUM_REQUESTS and all(served[e] > 0 for e in ("0", "1")), (routing, served)
        assert series and {"0", "1"} <= set(series[-1][1])
    path = tmp_path / "ray_replica_load.png"
    plot(runs, str(path))
    assert path.stat().st_size > 10_000
    print("\n" + report(runs))
    after = httpx.get(f"{url}/health", timeout=30).json()
    assert all(e["kv_blocks_used"] == 0 and e["num_running"] == 0 for e in after["engines"])
