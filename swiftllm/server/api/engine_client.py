"""What the HTTP API serves from: one engine in this process (``LocalEngineClient``), or replicas behind a
dispatcher (``swiftllm.server.replicas``). Both hand out ``Generation``s: a request's ``RequestOutput`` after each
step, with the layer precisions behind the precision versions its tokens carry."""
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from swiftllm.sampling_params import SamplingParams
from swiftllm.server.async_engine import AsyncLLMEngine
from swiftllm.server.engine import FULL_PRECISION, LLMEngine
from swiftllm.server.structs import RequestOutput
from swiftllm.server.tokenization import LlamaTokenizer
from swiftllm.server.api.telemetry import EngineLoad, EngineTelemetry

STALLED_AFTER_S = 30.0     # a loop that has not finished a step for this long is reported unhealthy


@dataclass(frozen=True, slots=True)
class ModelInfo:
    name: str
    max_model_len: int
    block_size: int
    max_num_seqs: int


@dataclass(frozen=True, slots=True)
class Generation:
    output: RequestOutput
    layer_precisions: dict[int, tuple[str, ...]]    # precision version -> every decoder layer's precision
    engine: str = "0"                               # which engine (replica) produced it


@dataclass(frozen=True, slots=True)
class EngineHealth:
    """``healthy``: the loop runs and finished a step within ``STALLED_AFTER_S``. A failed step that the loop
    survived leaves it healthy and is reported in ``last_step_error``."""
    healthy: bool
    loop_running: bool
    seconds_since_step: float
    last_step_error: str | None
    load: EngineLoad | None      # None: nothing known yet (a replica that has not reported)


class EngineClient(Protocol):
    info: ModelInfo
    tokenizer: LlamaTokenizer

    def generate(self, prompt_token_ids: list[int], params: SamplingParams,
                 request_id: str) -> AsyncIterator[Generation]: ...

    def health(self) -> list[EngineHealth]: ...


class LocalEngineClient:
    """One engine (and its morph runtime, if any) stepped by an ``AsyncLLMEngine`` loop in this process."""

    def __init__(self, engine: LLMEngine, model_name: str, runtime=None):
        self.engine = engine
        self.runtime = runtime
        self.tokenizer = engine.tokenizer
        self.info = ModelInfo(model_name, engine.max_model_len, engine.config.block_size, engine.config.max_num_seqs)
        self.telemetry = EngineTelemetry(engine, runtime)
        engine.add_step_hook(self.telemetry)
        self.loop = AsyncLLMEngine(engine)

    def start(self) -> None:
        self.loop.start()

    def shutdown(self) -> None:
        """Stop the loop (requests in flight end with ``EngineShutDown``) and detach the morph runtime."""
        self.loop.shutdown()
        self.engine.remove_step_hook(self.telemetry)
        if self.runtime is not None:
            self.runtime.close()

    async def generate(self, prompt_token_ids: list[int], params: SamplingParams,
                       request_id: str) -> AsyncIterator[Generation]:
        async for output in self.loop.generate(prompt_token_ids, params, request_id=request_id):
            yield Generation(output, self._layer_precisions(output))

    def health(self) -> list[EngineHealth]:
        since_step = time.monotonic() - self.telemetry.heartbeat
        running = self.loop.is_running
        error = self.loop.last_step_error
        return [EngineHealth(running and since_step < STALLED_AFTER_S, running, since_step,
                             None if error is None else str(error), self.telemetry.latest)]

    def _layer_precisions(self, output: RequestOutput) -> dict[int, tuple[str, ...]]:
        return {version: self._precisions_of(version) for version in set(output.outputs[0].token_precision_versions)}

    def _precisions_of(self, version: int) -> tuple[str, ...]:
        """Version 0 is the model as loaded, full precision everywhere; only a morph runtime makes other versions."""
        if version == 0:
            return (FULL_PRECISION,) * self.engine.model_config.num_layers
        return tuple(precision.value for precision in self.runtime.precision_map(version))
