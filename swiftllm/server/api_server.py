"""The single-process server: one engine (with its morph runtime) behind the OpenAI-compatible app, on uvicorn.

This module and the Ray application are the composition roots of the online server: the only places under
``swiftllm/server`` that build a morph runtime (``morph.runtime.attach_morph``) onto an engine.
"""
import logging
from dataclasses import dataclass

import torch

from swiftllm.engine_config import EngineConfig
from swiftllm.server.api.app import build_app
from swiftllm.server.api.engine_client import LocalEngineClient
from swiftllm.server.engine import LLMEngine

logger = logging.getLogger(__name__)

DEFAULT_MAX_QUEUED = 256


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """What ``morphserve serve`` was asked for. ``policy=None`` serves without morphing; ``replicas > 1`` (or a
    ``ray_address``) serves on Ray Serve. ``max_queued_requests``: requests each server holds beyond what its
    engines run (``max_num_seqs`` each) before it answers 429."""
    model: str = "embedded"
    served_model_name: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    policy: str | None = "morph_accuracy"
    api_key: str | None = None
    max_queued_requests: int = DEFAULT_MAX_QUEUED
    max_num_seqs: int = 64
    max_model_len: int | None = None
    memory_budget_bytes: int | None = None
    threads: int | None = None
    replicas: int = 1
    ray_address: str | None = None

    def __post_init__(self):
        if self.replicas < 1:
            raise ValueError(f"replicas must be >= 1, got {self.replicas}")
        if self.max_queued_requests < 0:
            raise ValueError(f"max_queued_requests must be >= 0, got {self.max_queued_requests}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must lie in [1, 65535], got {self.port}")
        if self.policy is not None:
            self.morph_config()

    def morph_config(self):
        """The morph runtime's configuration (RTN INT4: AWQ would need a calibration text)."""
        from morph.runtime import MorphConfig
        return MorphConfig(policy=self.policy, int4_method="rtn")

    @property
    def model_name(self) -> str:
        return self.served_model_name or self.model

    def engine_config(self) -> EngineConfig:
        return EngineConfig(model=self.model, max_num_seqs=self.max_num_seqs, max_model_len=self.max_model_len,
                            memory_budget_bytes=self.memory_budget_bytes)

    def admission_limit(self, num_engines: int) -> int:
        return num_engines * self.max_num_seqs + self.max_queued_requests


def build_local_client(config: ServeConfig) -> LocalEngineClient:
    """An engine for ``config`` with its morph runtime attached (when a policy is set), not yet started."""
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    engine = LLMEngine(config.engine_config())
    runtime = None
    if config.policy is not None:
        from morph.runtime import attach_morph
        runtime = attach_morph(engine, config.morph_config())
    return LocalEngineClient(engine, config.model_name, runtime)


def serve(config: ServeConfig) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM); then the requests in flight end and the engine is restored."""
    import uvicorn
    client = build_local_client(config)
    client.start()

    def shut_down() -> None:
        client.shutdown()
        logger.info("engine loop stopped, morph runtime detached")

    app = build_app(client, config.admission_limit(1), config.api_key, on_shutdown=shut_down)
    uvicorn.run(app, host=config.host, port=config.port, log_level="info")
