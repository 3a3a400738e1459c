"""The single-process server: one engine (with the runtime attached to it, if any) behind the OpenAI-compatible
app, on uvicorn.

Nothing here knows morph: the composition root above both (``morph/serve.py``, the ``morphserve`` console script)
puts ``attach_morph`` into ``ServeConfig.attach_runtime``.
"""
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from swiftllm.engine_config import EngineConfig
from swiftllm.server.api.app import build_app
from swiftllm.server.api.engine_client import LocalEngineClient
from swiftllm.server.engine import LLMEngine

logger = logging.getLogger(__name__)

AttachRuntime = Callable[[LLMEngine], object]
DEFAULT_MAX_QUEUED = 256


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """What ``morphserve serve`` was asked for. ``replicas > 1`` (or a ``ray_address``) serves on Ray Serve.
    ``max_queued_requests``: requests each server holds beyond what its engines run (``max_num_seqs`` each) before
    it answers 429.

    ``attach_runtime`` is called once on every engine built, before it serves, and returns the runtime that changes
    it (e.g. ``functools.partial(morph.runtime.attach_morph, config=...)``); the engine client reads its telemetry
    and ``close()``s it at shutdown. On Ray it runs in each replica's actor, so it must pickle: a module-level
    function or a ``functools.partial`` over one. ``None`` serves a plain engine."""
    model: str = "embedded"
    served_model_name: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    max_queued_requests: int = DEFAULT_MAX_QUEUED
    max_num_seqs: int = 64
    max_model_len: int | None = None
    memory_budget_bytes: int | None = None
    threads: int | None = None
    replicas: int = 1
    ray_address: str | None = None
    attach_runtime: AttachRuntime | None = None

    def __post_init__(self):
        if self.replicas < 1:
            raise ValueError(f"replicas must be >= 1, got {self.replicas}")
        if self.max_queued_requests < 0:
            raise ValueError(f"max_queued_requests must be >= 0, got {self.max_queued_requests}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must lie in [1, 65535], got {self.port}")

    @property
    def model_name(self) -> str:
        return self.served_model_name or self.model

    def engine_config(self) -> EngineConfig:
        return EngineConfig(model=self.model, max_num_seqs=self.max_num_seqs, max_model_len=self.max_model_len,
                            memory_budget_bytes=self.memory_budget_bytes)

    def admission_limit(self, num_engines: int) -> int:
        return num_engines * self.max_num_seqs + self.max_queued_requests


def build_local_client(config: ServeConfig) -> LocalEngineClient:
    """An engine for ``config`` with ``config.attach_runtime``'s runtime attached (if any), not yet started."""
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    engine = LLMEngine(config.engine_config())
    runtime = None if config.attach_runtime is None else config.attach_runtime(engine)
    return LocalEngineClient(engine, config.model_name, runtime)


def serve(config: ServeConfig) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM); then the requests in flight end and the engine is restored."""
    import uvicorn
    client = build_local_client(config)
    client.start()

    def shut_down() -> None:
        client.shutdown()
        logger.info("engine loop stopped, runtime detached")

    app = build_app(client, config.admission_limit(1), config.api_key, on_shutdown=shut_down)
    uvicorn.run(app, host=config.host, port=config.port, log_level="info")
