"""How to pick tokens and when to stop: validated field by field when made, immutable afterwards.

A value of the wrong type is a ``TypeError`` and one out of range a ``ValueError``, each naming the field, so a
bad request fails when it is made and never inside an engine step. ``bool`` is not accepted where a number is.
"""
import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral, Real

GREEDY_BELOW_TEMPERATURE = 1e-5   # smaller temperatures overflow the scaled logits: they sample greedily
MAX_SEED = 2 ** 64 - 1            # what a torch generator accepts


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """``temperature`` below ``GREEDY_BELOW_TEMPERATURE`` (0 included) means greedy. ``stop_token_ids`` and ``stop``
    are kept as tuples; ``stop`` may be given as one string."""
    temperature: float = 1.0
    top_k: int = -1            # -1: all tokens
    top_p: float = 1.0
    seed: int | None = None    # per-request generator; None uses the engine's generator
    max_tokens: int = 16
    stop_token_ids: Sequence[int] = ()
    stop: Sequence[str] | str = ()
    ignore_eos: bool = False   # trace replay: always produce exactly max_tokens
    detokenize: bool = True    # False: no output text (a simulated replay needs none); stop strings need it

    def __post_init__(self):
        _set(self, "temperature", _real("temperature", self.temperature, low=0.0))
        _set(self, "top_k", _integer("top_k", self.top_k))
        if self.top_k == 0 or self.top_k < -1:
            raise ValueError(f"top_k must be -1 (disabled) or >= 1, got {self.top_k}")
        _set(self, "top_p", _real("top_p", self.top_p, low=0.0, high=1.0))
        if self.top_p == 0.0:
            raise ValueError("top_p must be in (0, 1], got 0")
        if self.seed is not None:
            _set(self, "seed", _integer("seed", self.seed))
            if not 0 <= self.seed <= MAX_SEED:
                raise ValueError(f"seed must lie in [0, 2**64 - 1], got {self.seed}")
        _set(self, "max_tokens", _integer("max_tokens", self.max_tokens))
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        _set(self, "stop_token_ids", _token_ids("stop_token_ids", self.stop_token_ids))
        _set(self, "stop", _stop_strings(self.stop))
        for name in ("ignore_eos", "detokenize"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {type(getattr(self, name)).__name__}")
        if self.stop and not self.detokenize:
            raise ValueError("stop strings need detokenize=True")

    @property
    def greedy(self) -> bool:
        return self.temperature < GREEDY_BELOW_TEMPERATURE


def _set(params: SamplingParams, name: str, value) -> None:
    object.__setattr__(params, name, value)


def _integer(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    return int(value)


def _real(name: str, value, low: float, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not (math.isfinite(value) and low <= value <= high):
        bounds = f"[{low:g}, {high:g}]" if math.isfinite(high) else f">= {low:g} and finite"
        raise ValueError(f"{name} must be {bounds}, got {value}")
    return value


def _token_ids(name: str, value) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a list of token ids, got {type(value).__name__} {value!r}")
    ids = tuple(_integer(f"{name}[{i}]", token) for i, token in enumerate(value))
    if any(token < 0 for token in ids):
        raise ValueError(f"{name} must hold token ids >= 0, got {list(ids)}")
    return ids


def _stop_strings(value) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, Sequence):
        raise TypeError(f"stop must be a string or a list of strings, got {type(value).__name__} {value!r}")
    for i, stop in enumerate(value):
        if not isinstance(stop, str):
            raise TypeError(f"stop[{i}] must be a string, got {type(stop).__name__} {stop!r}")
        if not stop:
            raise ValueError("stop strings must be non-empty")
    return tuple(value)
