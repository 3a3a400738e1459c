"""What a request must be before the engine accepts it: checked at the door, so nothing bad reaches a step.

Each failure is a ``TypeError`` (wrong kind of value) or ``ValueError`` (out of range, or can never run) that names
the field. ``SamplingParams`` validates itself when made.
"""
import math
from collections.abc import Sequence
from numbers import Integral, Real

from swiftllm.sampling_params import SamplingParams


def prompt_token_ids(prompt, vocab_size: int) -> list[int] | None:
    """The prompt's token ids as a new list of ints, or ``None`` for a text prompt (the tokenizer encodes it)."""
    if isinstance(prompt, str):
        return None
    if isinstance(prompt, (bytes, bytearray)) or not isinstance(prompt, Sequence):
        raise TypeError(f"prompt must be a string or a list of token ids, got {type(prompt).__name__}")
    ids = []
    for i, token in enumerate(prompt):
        if isinstance(token, bool) or not isinstance(token, Integral):
            raise TypeError(f"prompt[{i}] must be an int token id, got {type(token).__name__} {token!r}")
        ids.append(int(token))
    out_of_range = [t for t in ids if not 0 <= t < vocab_size]
    if out_of_range:
        raise ValueError(f"prompt token ids must be in [0, {vocab_size}), got {out_of_range[:5]}")
    return ids


def check_sampling_params(params) -> None:
    if not isinstance(params, SamplingParams):
        raise TypeError(f"params must be SamplingParams, got {type(params).__name__}")


def check_request_id(request_id) -> None:
    if request_id is not None and not (isinstance(request_id, str) and request_id):
        raise TypeError(f"request_id must be a non-empty string or None, got {type(request_id).__name__} "
                        f"{request_id!r}")


def check_arrival_time(arrival_time) -> None:
    if arrival_time is None:
        return
    if isinstance(arrival_time, bool) or not isinstance(arrival_time, Real):
        raise TypeError(f"arrival_time must be a number on the engine clock or None, got {arrival_time!r}")
    if not math.isfinite(arrival_time):
        raise ValueError(f"arrival_time must be finite, got {arrival_time}")
