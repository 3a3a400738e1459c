"""An OpenAI request turned into what the engine takes: prompt token ids and ``SamplingParams``.

Everything is checked here, before the request is queued: the chat template renders, the prompt fits the context
with room for at least one output token, and ``SamplingParams`` accepts the values. Each refusal is a 400 that names
the field.
"""
from swiftllm.sampling_params import SamplingParams
from swiftllm.server.api.engine_client import ModelInfo
from swiftllm.server.api.errors import APIError
from swiftllm.server.api.schemas import ChatCompletionRequest, CompletionRequest, SamplingFields
from swiftllm.server.tokenization import LlamaTokenizer

DEFAULT_TEMPERATURE = 1.0     # OpenAI's default


def check_model(request: SamplingFields, info: ModelInfo) -> None:
    if request.model != info.name:
        raise APIError(400, f"model {request.model!r} is not served here; this server serves {info.name!r}",
                       param="model", code="model_not_found")


def completion_prompt(request: CompletionRequest, tokenizer: LlamaTokenizer) -> list[int]:
    prompt = request.single_prompt
    return tokenizer.encode(prompt) if isinstance(prompt, str) else list(prompt)


def chat_prompt(request: ChatCompletionRequest, tokenizer: LlamaTokenizer) -> list[int]:
    messages = [{"role": message.role, "content": message.text()} for message in request.messages]
    try:
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    except ValueError as refused:
        raise APIError(400, str(refused), param="messages") from None
    return tokenizer.encode(text)


def check_fits_context(prompt_token_ids: list[int], info: ModelInfo) -> None:
    if not prompt_token_ids:
        raise APIError(400, "the prompt is empty", param="prompt")
    if len(prompt_token_ids) >= info.max_model_len:
        raise APIError(400, f"the prompt has {len(prompt_token_ids)} tokens; this model's context holds "
                            f"{info.max_model_len} tokens, prompt and output together",
                       param="prompt", code="context_length_exceeded")


def sampling_params(request: SamplingFields, max_tokens: int) -> SamplingParams:
    try:
        return SamplingParams(
            temperature=DEFAULT_TEMPERATURE if request.temperature is None else request.temperature,
            top_p=1.0 if request.top_p is None else request.top_p,
            top_k=-1 if request.top_k is None else request.top_k,
            seed=request.seed, max_tokens=max_tokens, stop=request.stop or (),
            stop_token_ids=request.stop_token_ids or (), ignore_eos=request.ignore_eos)
    except (TypeError, ValueError) as refused:
        raise APIError(400, str(refused), param=_field_named_in(str(refused), request)) from None


def chat_output_limit(request: ChatCompletionRequest, prompt_len: int, info: ModelInfo) -> int:
    """The requested limit, or else the rest of the context (OpenAI's default for chat)."""
    limit = request.output_limit
    return info.max_model_len - prompt_len if limit is None else limit


def _field_named_in(message: str, request: SamplingFields) -> str | None:
    """``SamplingParams``' messages begin with the field's name (``top_k must be ...``, ``stop[0] must be ...``)."""
    word = message.split(" ", 1)[0].split("[", 1)[0]
    return word if word in type(request).model_fields else None
