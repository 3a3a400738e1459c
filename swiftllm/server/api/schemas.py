"""Request bodies of the OpenAI API, checked strictly: a wrong type is refused, never coerced ("5" is not 5), and an
unknown field is refused rather than silently ignored. Fields MorphServe cannot honour (``n`` > 1, ``logprobs``,
penalties, ``logit_bias``, ``echo``, ``suffix``, ``best_of`` > 1) are accepted only at their neutral value, so that
the client learns at once that its request would not be served as asked."""
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

NonNegativeInt = Annotated[StrictInt, Field(ge=0)]
Number = StrictFloat | StrictInt
TokenIds = Annotated[list[NonNegativeInt], Field(min_length=1)]


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    include_usage: StrictBool = False


class SamplingFields(BaseModel):
    """What both endpoints share: the model, sampling, stopping and streaming."""
    model_config = ConfigDict(extra="forbid", strict=True)

    model: StrictStr
    temperature: Annotated[Number, Field(ge=0)] | None = None
    top_p: Annotated[Number, Field(gt=0, le=1)] | None = None
    top_k: StrictInt | None = None                       # vLLM's extension: -1 disables
    seed: NonNegativeInt | None = None
    stop: StrictStr | list[StrictStr] | None = None
    stop_token_ids: list[NonNegativeInt] | None = None   # vLLM's extension
    ignore_eos: StrictBool = False                       # vLLM's extension
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    n: Literal[1] = 1
    presence_penalty: Literal[0] = 0
    frequency_penalty: Literal[0] = 0
    logit_bias: Annotated[dict[StrictStr, Number], Field(max_length=0)] | None = None
    user: StrictStr | None = None


class CompletionRequest(SamplingFields):
    """``/v1/completions``: one prompt, as text or token ids (a list holding one of them is accepted too)."""
    prompt: StrictStr | TokenIds | Annotated[list[StrictStr], Field(min_length=1, max_length=1)] \
        | Annotated[list[TokenIds], Field(min_length=1, max_length=1)]
    max_tokens: Annotated[StrictInt, Field(ge=1)] = 16
    logprobs: None = None
    echo: Literal[False] = False
    suffix: None = None
    best_of: Literal[1] | None = None

    @property
    def single_prompt(self) -> str | list[int]:
        prompt = self.prompt
        is_wrapped = isinstance(prompt, list) and isinstance(prompt[0], (str, list))
        return prompt[0] if is_wrapped else prompt


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    type: Literal["text"]
    text: StrictStr


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    role: Literal["system", "user", "assistant", "developer"]
    content: StrictStr | Annotated[list[TextPart], Field(min_length=1)]
    name: StrictStr | None = None

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(part.text for part in self.content)


class ChatCompletionRequest(SamplingFields):
    """``/v1/chat/completions``: the conversation is rendered with the model's chat template."""
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
    logprobs: Literal[False] = False
    top_logprobs: None = None

    @model_validator(mode="after")
    def _one_length_limit(self):
        if self.max_tokens is not None and self.max_completion_tokens is not None:
            raise ValueError("give max_tokens or max_completion_tokens, not both")
        return self

    @property
    def output_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens
