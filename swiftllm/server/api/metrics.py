"""Prometheus metrics under vLLM's names and buckets (labels ``model_name`` and ``engine``, as vLLM's V1 engine
labels them), so existing dashboards and routers read MorphServe unchanged, plus MorphServe's own ``morphserve:*``.

Each app owns its ``CollectorRegistry``. Request-level histograms are observed when a request finishes; gauges and
engine counters are refreshed from the engines' ``EngineLoad`` whenever ``/metrics`` is scraped (counters advance
by the growth of the engine's totals since the last scrape).
"""
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from swiftllm.server.api.telemetry import EngineLoad
from swiftllm.server.structs import RequestOutput

LABELS = ["model_name", "engine"]
TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
                40.0, 80.0, 160.0, 640.0, 2560.0]
INTER_TOKEN_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
                       40.0, 80.0]
REQUEST_LATENCY_BUCKETS = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
                           240.0, 480.0, 960.0, 1920.0, 7680.0]


class ServerMetrics:
    def __init__(self, model_name: str):
        self.model_name = model_name
        self.registry = CollectorRegistry()
        r = self.registry
        self.running = Gauge("vllm:num_requests_running", "Number of requests in model execution batches.", LABELS,
                             registry=r)
        self.waiting = Gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", LABELS,
                             registry=r)
        self.kv_usage = Gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", LABELS,
                              registry=r)
        self.ttft = Histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
                              LABELS, buckets=TTFT_BUCKETS, registry=r)
        self.inter_token = Histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
                                     LABELS, buckets=INTER_TOKEN_BUCKETS, registry=r)
        self.e2e = Histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
                             LABELS, buckets=REQUEST_LATENCY_BUCKETS, registry=r)
        self.queue_time = Histogram("vllm:request_queue_time_seconds",
                                    "Histogram of time spent in WAITING phase for request.", LABELS,
                                    buckets=REQUEST_LATENCY_BUCKETS, registry=r)
        self.prompt_tokens = Counter("vllm:prompt_tokens", "Number of prefill tokens processed.", LABELS, registry=r)
        self.generation_tokens = Counter("vllm:generation_tokens", "Number of generation tokens processed.", LABELS,
                                         registry=r)
        self.preemptions = Counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.", LABELS,
                                   registry=r)
        self.quantized_layers = Gauge("morphserve:num_quantized_layers",
                                      "Decoder layers running below full precision now.", LABELS, registry=r)
        self.kv_capacity = Gauge("morphserve:kv_cache_capacity_blocks", "KV-cache capacity in blocks now.", LABELS,
                                 registry=r)
        self.transitions = Counter("morphserve:layer_transitions",
                                   "Layer precision transitions completed, by direction (down: fewer bits).",
                                   LABELS + ["direction"], registry=r)
        self.bytes_swapped = Counter("morphserve:swap_bytes", "Bytes copied by layer swaps.", LABELS, registry=r)
        self._reported: dict[str, EngineLoad] = {}

    def observe_finished(self, engine: str, output: RequestOutput) -> None:
        """A finished request's latencies (engine clock) and token counts."""
        labels = (self.model_name, engine)
        metrics, completion = output.metrics, output.outputs[0]
        self.prompt_tokens.labels(*labels).inc(len(output.prompt_token_ids))
        self.generation_tokens.labels(*labels).inc(len(completion.token_ids))
        if metrics.first_token_time is not None:
            self.ttft.labels(*labels).observe(metrics.first_token_time - metrics.arrival_time)
        for before, after in zip(completion.token_times, completion.token_times[1:]):
            self.inter_token.labels(*labels).observe(after - before)
        if metrics.finished_time is not None:
            self.e2e.labels(*labels).observe(metrics.finished_time - metrics.arrival_time)
        if metrics.first_scheduled_time is not None:
            self.queue_time.labels(*labels).observe(metrics.first_scheduled_time - metrics.arrival_time)

    def observe_loads(self, loads: dict[str, EngineLoad]) -> None:
        for engine, load in loads.items():
            labels = (self.model_name, engine)
            self.running.labels(*labels).set(load.num_running)
            self.waiting.labels(*labels).set(load.num_waiting)
            self.kv_usage.labels(*labels).set(load.kv_usage)
            self.quantized_layers.labels(*labels).set(load.num_quantized_layers)
            self.kv_capacity.labels(*labels).set(load.kv_blocks_capacity)
            self._advance_counters(engine, load)
            self._reported[engine] = load

    def _advance_counters(self, engine: str, load: EngineLoad) -> None:
        labels = (self.model_name, engine)
        before = self._reported.get(engine)
        self.preemptions.labels(*labels).inc(_growth(load.num_preemptions_total,
                                                     before and before.num_preemptions_total))
        self.bytes_swapped.labels(*labels).inc(_growth(load.bytes_swapped_total, before and before.bytes_swapped_total))
        for direction, total in load.transitions_total.items():
            self.transitions.labels(*labels, direction).inc(
                _growth(total, before and before.transitions_total.get(direction, 0)))


def _growth(total: int, reported: int | None) -> int:
    """What a counter gains from an engine total; a total below the reported one means the engine restarted."""
    reported = reported or 0
    return total - reported if total >= reported else total
