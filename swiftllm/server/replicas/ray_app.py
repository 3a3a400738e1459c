"""MorphServe on Ray Serve: N engine replicas, each its own engine and runtime (``ServeConfig.attach_runtime``, e.g.
a morph runtime) in its own Ray actor, behind one ingress that serves the OpenAI API and dispatches every request
to a replica (``DispatchingClient``).

Each replica is a deployment of one replica (``engine-0`` ... ``engine-{N-1}``), so that the dispatcher, not Ray
Serve's own router, picks the replica of every request, from the telemetry it polls. A replica runs one torch
thread unless ``ServeConfig.threads`` says otherwise, and reserves one CPU of the cluster.
"""
import dataclasses
import logging
import os
from collections.abc import AsyncIterator

import ray
from ray import serve

from swiftllm.sampling_params import SamplingParams
from swiftllm.server.api.app import build_app
from swiftllm.server.api.engine_client import EngineHealth, Generation, ModelInfo
from swiftllm.server.api_server import ServeConfig, build_local_client
from swiftllm.server.replicas.dispatching_client import DispatchingClient
from swiftllm.server.tokenization import LlamaTokenizer

logger = logging.getLogger(__name__)

APP_NAME = "morphserve"
LOOPBACK = "127.0.0.1"
QUIET = {"enable_access_log": False}     # one log line per telemetry poll would drown everything else


class EngineReplica:
    """One engine (with its runtime, if any) stepped by its own loop thread inside a Ray actor."""

    def __init__(self, config: ServeConfig):
        config = dataclasses.replace(config, threads=config.threads or 1)
        self.client = build_local_client(config)
        self.client.start()

    async def generate(self, prompt_token_ids: list[int], params: SamplingParams,
                       request_id: str) -> AsyncIterator[Generation]:
        async for generation in self.client.generate(prompt_token_ids, params, request_id):
            yield generation

    def telemetry(self) -> EngineHealth:
        return self.client.health()[0]

    def model_info(self) -> ModelInfo:
        return self.client.info

    def __del__(self):
        self.client.shutdown()


@serve.ingress()
class Ingress:
    """The OpenAI app over a ``DispatchingClient`` of the engine replicas."""

    async def __init__(self, replicas: list, config: ServeConfig, routing: str):
        info = await replicas[0].model_info.remote()
        self.client = DispatchingClient(replicas, info, LlamaTokenizer.load(config.model), routing)
        self.client.start()
        self.admission_limit = config.admission_limit(len(replicas))
        self.api_key = config.api_key

    def __serve_build_asgi_app__(self):
        return build_app(self.client, self.admission_limit, self.api_key)

    def set_routing(self, routing: str) -> None:
        """Switch the dispatcher's policy (``headroom`` or the ``round_robin`` baseline) on the same replicas."""
        self.client.set_routing(routing)


def build_ray_app(config: ServeConfig, routing: str = "headroom") -> serve.Application:
    replica = serve.deployment(EngineReplica, num_replicas=1, ray_actor_options={"num_cpus": 1}, logging_config=QUIET,
                               max_ongoing_requests=config.admission_limit(1))
    replicas = [replica.options(name=f"engine-{i}").bind(config) for i in range(config.replicas)]
    ingress = serve.deployment(Ingress, num_replicas=1, ray_actor_options={"num_cpus": 0}, logging_config=QUIET,
                               max_ongoing_requests=config.admission_limit(config.replicas) + 16)
    return ingress.bind(replicas, config, routing)


def start_local_ray(num_replicas: int) -> None:
    """A local Ray cluster on the loopback address, with a CPU for every replica (more than the machine has
    oversubscribes it rather than leaving replicas unplaced)."""
    num_cpus = max(os.cpu_count() or 1, num_replicas)
    ray.init(num_cpus=num_cpus, include_dashboard=False, _node_ip_address=LOOPBACK)


def start_on_ray(config: ServeConfig, routing: str = "headroom") -> None:
    """Deploy on the Ray cluster at ``config.ray_address`` (a new local one when ``None``, unless Ray is already
    initialized) and return when every replica is up; HTTP on ``config.host:config.port``."""
    if not ray.is_initialized():
        if config.ray_address is None:
            start_local_ray(config.replicas)
        else:
            ray.init(address=config.ray_address)
    serve.start(http_options={"host": config.host, "port": config.port})
    serve.run(build_ray_app(config, routing), name=APP_NAME, route_prefix="/")


def serve_on_ray(config: ServeConfig) -> None:
    """Serve until interrupted, then take the application down."""
    import time
    start_on_ray(config)
    logger.info("serving %s on %d replicas at http://%s:%d", config.model_name, config.replicas, config.host,
                config.port)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
