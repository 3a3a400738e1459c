"""Driving one request's ``Generation`` stream to an answer: the whole response, or server-sent events.

The first output is awaited before any answer starts, so a request the engine refuses (400) or that fails before
its first token (500) gets its own status. A stream then sends ``data: {chunk}`` frames and ``data: [DONE]``; a
failure after the first frame can no longer change the status and is sent as one ``data: {"error": ...}`` frame.
A client that goes away cancels the stream; the response's cleanup then closes the engine's generator, which aborts
the request (its KV blocks are freed at the next step boundary), and leaves the bounded queue.
"""
import json
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.responses import StreamingResponse

from swiftllm.server.api.engine_client import Generation
from swiftllm.server.api.errors import APIError, engine_failure
from swiftllm.server.api.rendering import DeltaCursor

DONE_FRAME = "data: [DONE]\n\n"


async def next_generation(stream: AsyncIterator[Generation]) -> Generation:
    """The stream's next output; an engine error becomes its ``APIError``."""
    try:
        return await anext(stream)
    except StopAsyncIteration:
        raise APIError(500, "the engine ended the request without a final output", code="no_output") from None
    except Exception as error:
        answer = engine_failure(error)
        if answer is None:
            raise
        raise answer from error


async def last_generation(first: Generation, stream: AsyncIterator[Generation]) -> Generation:
    generation = first
    while not generation.output.finished:
        generation = await next_generation(stream)
    return generation


def sse_frame(payload) -> str:
    body = payload if isinstance(payload, str) else payload.model_dump_json()
    return f"data: {body}\n\n"


async def sse_events(first: Generation, stream: AsyncIterator[Generation], renderer, cursor: DeltaCursor,
                     include_usage: bool, on_finished: Callable[[Generation], None]) -> AsyncIterator[str]:
    """Frames for every step that added text or tokens, the usage chunk if asked for, then ``[DONE]``."""
    try:
        generation = first
        while True:
            text, origin = cursor.advance(generation)
            if text or origin.precision_versions or generation.output.finished:
                yield sse_frame(renderer.chunk(text, origin, generation.output))
            if generation.output.finished:
                break
            generation = await next_generation(stream)
        on_finished(generation)
        if include_usage:
            yield sse_frame(renderer.usage_chunk(generation.output))
    except APIError as failure:
        yield sse_frame(json.dumps(failure.body()))
    yield DONE_FRAME


class EventStreamResponse(StreamingResponse):
    """Server-sent events whose ``cleanup`` runs however the response ends: finished, failed, cancelled by a client
    that went away, or never started (cancelled before its first frame, when the events' own ``finally`` would not
    run)."""

    def __init__(self, events: AsyncIterator[str], cleanup: Callable[[], Awaitable[None]]):
        super().__init__(events, media_type="text/event-stream")
        self._cleanup = cleanup

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._cleanup()
