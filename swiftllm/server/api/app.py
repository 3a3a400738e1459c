"""The FastAPI app: OpenAI's ``/v1/completions``, ``/v1/chat/completions`` and ``/v1/models``, plus ``/health`` and
``/metrics``, over any ``EngineClient``.

A request is checked (body, model, prompt length, sampling values) before it takes a place in the bounded queue;
past the queue's limit it is answered 429. ``/health`` and ``/metrics`` are open; the ``/v1`` routes need the API
key when one is set.
"""
import contextlib
import time
import uuid
from collections.abc import Callable

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from swiftllm.sampling_params import SamplingParams
from swiftllm.server.api import prompting
from swiftllm.server.api.admission import AdmissionGate
from swiftllm.server.api.auth import bearer_check
from swiftllm.server.api.engine_client import EngineClient, EngineHealth, Generation
from swiftllm.server.api.errors import ErrorBody, install_error_handlers
from swiftllm.server.api.metrics import ServerMetrics
from swiftllm.server.api.rendering import ChatRenderer, CompletionRenderer, DeltaCursor
from swiftllm.server.api.responses import ChatCompletionResponse, CompletionResponse, ModelCard, ModelList
from swiftllm.server.api.schemas import ChatCompletionRequest, CompletionRequest, SamplingFields
from swiftllm.server.api.streaming import EventStreamResponse, last_generation, next_generation, sse_events

ERROR_RESPONSES = {status: {"model": ErrorBody} for status in (400, 401, 429, 500, 503)}


class Server:
    """The routes' shared state: the engine client, the bounded queue and the metrics."""

    def __init__(self, client: EngineClient, admission_limit: int):
        self.client = client
        self.gate = AdmissionGate(admission_limit)
        self.metrics = ServerMetrics(client.info.name)
        self.started = int(time.time())

    async def complete(self, request: CompletionRequest):
        info = self.client.info
        prompting.check_model(request, info)
        prompt = prompting.completion_prompt(request, self.client.tokenizer)
        prompting.check_fits_context(prompt, info)
        params = prompting.sampling_params(request, request.max_tokens)
        renderer = CompletionRenderer(f"cmpl-{uuid.uuid4().hex}", info.name, int(time.time()))
        return await self._answer(request, prompt, params, renderer)

    async def chat(self, request: ChatCompletionRequest):
        info = self.client.info
        prompting.check_model(request, info)
        prompt = prompting.chat_prompt(request, self.client.tokenizer)
        prompting.check_fits_context(prompt, info)
        params = prompting.sampling_params(request, prompting.chat_output_limit(request, len(prompt), info))
        renderer = ChatRenderer(f"chatcmpl-{uuid.uuid4().hex}", info.name, int(time.time()))
        return await self._answer(request, prompt, params, renderer)

    async def _answer(self, request: SamplingFields, prompt: list[int], params: SamplingParams, renderer):
        """Run the request in the bounded queue; stream it or answer it whole."""
        self.gate.enter()
        stream = self.client.generate(prompt, params, renderer.fields["id"])

        async def release() -> None:
            await stream.aclose()     # aborts the request if it has not finished
            self.gate.leave()

        try:
            first = await next_generation(stream)
            cursor = DeltaCursor(params.stop)
            if request.stream:
                include_usage = request.stream_options is not None and request.stream_options.include_usage
                events = sse_events(first, stream, renderer, cursor, include_usage, self._finished)
                return EventStreamResponse(events, release)
            last = await last_generation(first, stream)
        except BaseException:
            await release()
            raise
        await release()
        self._finished(last)
        return renderer.whole(*cursor.advance(last), last.output)

    def _finished(self, generation: Generation) -> None:
        self.metrics.observe_finished(generation.engine, generation.output)

    def health(self) -> JSONResponse:
        engines = self.client.health()
        healthy = all(engine.healthy for engine in engines)
        body = {"status": "ok" if healthy else "unhealthy", "requests_in_flight": self.gate.in_flight,
                "engines": [_health_fields(engine) for engine in engines]}
        return JSONResponse(body, status_code=200 if healthy else 503)

    def metrics_text(self) -> Response:
        engines = enumerate(self.client.health())
        self.metrics.observe_loads({str(i): engine.load for i, engine in engines if engine.load is not None})
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def models(self) -> ModelList:
        info = self.client.info
        return ModelList(data=[ModelCard(id=info.name, created=self.started, max_model_len=info.max_model_len)])


def _health_fields(engine: EngineHealth) -> dict:
    fields = {"healthy": engine.healthy, "loop_running": engine.loop_running,
              "seconds_since_step": round(engine.seconds_since_step, 3), "last_step_error": engine.last_step_error}
    load = engine.load
    if load is not None:
        fields.update(num_running=load.num_running, num_waiting=load.num_waiting, kv_blocks_used=load.kv_blocks_used,
                      kv_blocks_capacity=load.kv_blocks_capacity, num_quantized_layers=load.num_quantized_layers)
    return fields


def build_app(client: EngineClient, admission_limit: int, api_key: str | None = None,
              on_shutdown: Callable[[], None] | None = None) -> FastAPI:
    """The app serving ``client``; ``admission_limit`` requests in flight at most (running and queued).
    ``on_shutdown`` runs when the ASGI server shuts the app down (uvicorn: on SIGINT / SIGTERM)."""
    server = Server(client, admission_limit)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        if on_shutdown is not None:
            on_shutdown()

    app = FastAPI(title="MorphServe", summary="OpenAI-compatible API of MorphServe", version="0.1.0",
                  lifespan=lifespan)
    install_error_handlers(app)
    app.state.server = server
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(bearer_check(api_key))], responses=ERROR_RESPONSES)

    @v1.post("/completions", response_model=CompletionResponse)
    async def completions(request: CompletionRequest):
        return await server.complete(request)

    @v1.post("/chat/completions", response_model=ChatCompletionResponse)
    async def chat_completions(request: ChatCompletionRequest):
        return await server.chat(request)

    @v1.get("/models", response_model=ModelList)
    async def models():
        return server.models()

    @app.get("/health")
    async def health():
        return server.health()

    @app.get("/metrics")
    async def metrics():
        return server.metrics_text()

    app.include_router(v1)
    return app
