"""Response bodies of the OpenAI API, plus MorphServe's extension field ``precision_provenance`` on each choice."""
from typing import Literal

from pydantic import BaseModel


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class PrecisionProvenance(BaseModel):
    """Under which layer precisions each token of this choice (or of this chunk) was produced: per token, the morph
    runtime's precision version and how many decoder layers were quantized; per version, every layer's precision
    (``fp``, ``int8``, ``int4``; version 0 is full precision everywhere)."""
    precision_versions: list[int]
    quantized_layers: list[int]
    layer_precisions: dict[str, list[str]]


class Choice(BaseModel):
    """What every choice carries, whatever its payload (``text``, ``message`` or ``delta``)."""
    index: int = 0
    logprobs: None = None
    finish_reason: str | None
    precision_provenance: PrecisionProvenance


class Envelope(BaseModel):
    """What every response and streamed chunk carries around its choices."""
    id: str
    created: int
    model: str


class CompletionChoice(Choice):
    text: str


class CompletionResponse(Envelope):
    """A whole completion, or one streamed chunk of it (then ``text`` is the new text and ``usage`` is absent)."""
    object: Literal["text_completion"] = "text_completion"
    choices: list[CompletionChoice]
    usage: Usage | None = None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(Choice):
    message: AssistantMessage


class ChatCompletionResponse(Envelope):
    object: Literal["chat.completion"] = "chat.completion"
    choices: list[ChatChoice]
    usage: Usage


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(Choice):
    delta: ChatDelta


class ChatCompletionChunk(Envelope):
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "morphserve"
    max_model_len: int


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
