"""Engine outputs turned into OpenAI responses and stream chunks.

A stream sends text only once it can no longer be cut by a stop string: the engine ends the output text where a
stop string begins, and a stop string may begin in text that arrived a step earlier, so the last (longest stop
string - 1) characters are held back until the request finishes.
"""
from swiftllm.server.api.engine_client import Generation
from swiftllm.server.api.errors import APIError
from swiftllm.server.api.responses import (AssistantMessage, ChatChoice, ChatChunkChoice, ChatCompletionChunk,
                                           ChatCompletionResponse, ChatDelta, CompletionChoice, CompletionResponse,
                                           PrecisionProvenance, Usage)
from swiftllm.server.structs import CompletionOutput, RequestOutput


def finish_reason(output: RequestOutput) -> str | None:
    """``stop`` / ``length``, or ``None`` while running. An output aborted by the server is a 503."""
    reason = output.outputs[0].finish_reason
    if reason == "abort":
        raise APIError(503, f"request {output.request_id} was aborted by the server", code="aborted")
    return reason


def usage(output: RequestOutput) -> Usage:
    prompt, completion = len(output.prompt_token_ids), len(output.outputs[0].token_ids)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


def provenance(completion: CompletionOutput, layer_precisions: dict[int, tuple[str, ...]], start: int,
               end: int) -> PrecisionProvenance:
    """Provenance of output tokens ``start:end``."""
    versions = completion.token_precision_versions[start:end]
    return PrecisionProvenance(
        precision_versions=versions, quantized_layers=completion.token_quantized_layers[start:end],
        layer_precisions={str(version): list(layer_precisions[version]) for version in sorted(set(versions))})


class DeltaCursor:
    """How much of one request's output text and tokens a stream has sent."""

    def __init__(self, stop_strings: tuple[str, ...]):
        self.holdback = max((len(stop) for stop in stop_strings), default=1) - 1
        self.text_sent = 0
        self.tokens_sent = 0

    def advance(self, generation: Generation) -> tuple[str, PrecisionProvenance]:
        """The text and the tokens' provenance not sent before, all of it once the request finished."""
        completion = generation.output.outputs[0]
        text_end = len(completion.text) if generation.output.finished else len(completion.text) - self.holdback
        text = completion.text[self.text_sent:max(text_end, self.text_sent)]
        tokens_end = len(completion.token_ids)
        delta_provenance = provenance(completion, generation.layer_precisions, self.tokens_sent, tokens_end)
        self.text_sent += len(text)
        self.tokens_sent = tokens_end
        return text, delta_provenance


class CompletionRenderer:
    def __init__(self, request_id: str, model: str, created: int):
        self.fields = {"id": request_id, "model": model, "created": created}

    def whole(self, text: str, origin: PrecisionProvenance, output: RequestOutput) -> CompletionResponse:
        choice = CompletionChoice(text=text, finish_reason=finish_reason(output), precision_provenance=origin)
        return CompletionResponse(choices=[choice], usage=usage(output), **self.fields)

    def chunk(self, text: str, origin: PrecisionProvenance, output: RequestOutput) -> CompletionResponse:
        choice = CompletionChoice(text=text, finish_reason=finish_reason(output), precision_provenance=origin)
        return CompletionResponse(choices=[choice], **self.fields)

    def usage_chunk(self, output: RequestOutput) -> CompletionResponse:
        return CompletionResponse(choices=[], usage=usage(output), **self.fields)


class ChatRenderer:
    def __init__(self, request_id: str, model: str, created: int):
        self.fields = {"id": request_id, "model": model, "created": created}
        self._role_sent = False

    def whole(self, text: str, origin: PrecisionProvenance, output: RequestOutput) -> ChatCompletionResponse:
        choice = ChatChoice(message=AssistantMessage(content=text), finish_reason=finish_reason(output),
                            precision_provenance=origin)
        return ChatCompletionResponse(choices=[choice], usage=usage(output), **self.fields)

    def chunk(self, text: str, origin: PrecisionProvenance, output: RequestOutput) -> ChatCompletionChunk:
        """The first chunk carries the assistant role, as OpenAI's streams do."""
        delta = ChatDelta(content=text) if self._role_sent else ChatDelta(role="assistant", content=text)
        self._role_sent = True
        choice = ChatChunkChoice(delta=delta, finish_reason=finish_reason(output), precision_provenance=origin)
        return ChatCompletionChunk(choices=[choice], **self.fields)

    def usage_chunk(self, output: RequestOutput) -> ChatCompletionChunk:
        return ChatCompletionChunk(choices=[], usage=usage(output), **self.fields)
