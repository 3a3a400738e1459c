"""Online API: the step loop runs on its own thread; callers stream outputs through asyncio.

Requests and aborts are handed to the loop through a queue and applied at the next step boundary. A request's
arrival time is stamped when it is handed over (or given by the caller, as a trace replay does), so time spent
waiting for the step boundary counts as queueing. While idle the loop keeps stepping every
``idle_interval_s`` so step hooks (the morph loop) still see time pass.

Nobody waits forever: a request whose own work fails inside a step ends with ``RequestFailed``; a step that
raises (a step hook) ends every request in flight with an ``EngineStepError`` (their KV blocks freed) and the
loop goes on; ``shutdown()`` ends the requests still in flight with an
``EngineShutDown``; a consumer that stops iterating (its task cancelled, a client gone) aborts its request.
"""
import asyncio
import logging
import queue
import threading
import uuid
from dataclasses import dataclass
from typing import AsyncIterator

from swiftllm.sampling_params import SamplingParams
from swiftllm.server.engine import LLMEngine
from swiftllm.server.structs import RequestOutput

logger = logging.getLogger(__name__)


class EngineStepError(RuntimeError):
    """An engine step failed; the requests in flight then were ended (the cause is ``__cause__``)."""


class EngineShutDown(RuntimeError):
    """The engine loop was shut down before the request finished."""


class RequestFailed(RuntimeError):
    """The request failed inside a step (its own chunk could not run) and was ended; other requests went on."""


@dataclass(slots=True)
class _Add:
    prompt: str | list[int]
    params: SamplingParams
    request_id: str
    arrival_time: float
    stream: "_Stream"


@dataclass(slots=True)
class _Stream:
    loop: asyncio.AbstractEventLoop
    outputs: asyncio.Queue

    def put(self, item) -> None:
        self.loop.call_soon_threadsafe(self.outputs.put_nowait, item)


class AsyncLLMEngine:
    def __init__(self, engine: LLMEngine, idle_interval_s: float = 0.01):
        self.engine = engine
        self.idle_interval_s = idle_interval_s
        self._commands: queue.Queue = queue.Queue()
        self._streams: dict[str, _Stream] = {}
        self._running = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_step_error: EngineStepError | None = None   # the latest failed step (read by health checks)

    @property
    def is_running(self) -> bool:
        """Whether the step loop thread is alive (started, not shut down, not died)."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the engine loop is already running")
        self._running.set()
        self._thread = threading.Thread(target=self._loop, name="engine-step-loop", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Stop the loop; requests still in flight end with ``EngineShutDown`` and leave the engine."""
        self._running.clear()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        shut_down = EngineShutDown("the engine loop was shut down")
        self._end_in_flight(shut_down)
        self._refuse_queued(shut_down)

    async def generate(self, prompt: str | list[int], params: SamplingParams, request_id: str | None = None,
                       arrival_time: float | None = None) -> AsyncIterator[RequestOutput]:
        """Yield a RequestOutput after every step that advanced the request; the last one has ``finished``."""
        if self._thread is None:
            raise RuntimeError("call start() before generate()")
        if request_id is None:
            request_id = f"req-{uuid.uuid4().hex}"
        stream = _Stream(asyncio.get_running_loop(), asyncio.Queue())
        arrival = self.engine.clock() if arrival_time is None else arrival_time
        self._commands.put(_Add(prompt, params, request_id, arrival, stream))
        finished = False
        try:
            while not finished:
                item = await stream.outputs.get()
                if isinstance(item, Exception):
                    finished = True
                    raise item
                finished = item.finished
                if item.error is not None:
                    raise RequestFailed(f"request {request_id} failed: {item.error}")
                yield item
        finally:
            if not finished:
                self.abort(request_id)

    def abort(self, request_id: str) -> None:
        self._commands.put(request_id)

    def _loop(self) -> None:
        while self._running.is_set():
            self._apply_commands(block=not self.engine.has_unfinished())
            try:
                outputs = self.engine.step()
            except Exception as failure:
                logger.exception("engine step failed; ending the %d requests in flight", len(self._streams))
                error = EngineStepError(f"the engine step failed: {failure!r}")
                error.__cause__ = failure
                self.last_step_error = error
                self._end_in_flight(error)
                continue
            for out in outputs:
                self._deliver(out)

    def _end_in_flight(self, error: Exception) -> None:
        """Abort every unfinished request of the engine and hand ``error`` to every waiting consumer."""
        for request_id in list(self.engine.requests):
            self.engine.abort(request_id)
        streams, self._streams = self._streams, {}
        for stream in streams.values():
            stream.put(error)

    def _refuse_queued(self, error: Exception) -> None:
        """Hand ``error`` to the consumers of requests still queued for the loop."""
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            if isinstance(command, _Add):
                command.stream.put(error)

    def _apply_commands(self, block: bool) -> None:
        try:
            command = self._commands.get(timeout=self.idle_interval_s) if block else self._commands.get_nowait()
            while True:
                self._apply(command)
                command = self._commands.get_nowait()
        except queue.Empty:
            return

    def _apply(self, command) -> None:
        if isinstance(command, _Add):
            try:
                self.engine.add_request(command.prompt, command.params, command.arrival_time, command.request_id)
            except (ValueError, TypeError) as err:
                command.stream.put(err)
                return
            self._streams[command.request_id] = command.stream
        else:
            out = self.engine.abort(command)
            if out is not None:
                self._deliver(out)

    def _deliver(self, out: RequestOutput) -> None:
        stream = self._streams.get(out.request_id)
        if stream is None:
            return
        stream.put(out)
        if out.finished:
            del self._streams[out.request_id]
