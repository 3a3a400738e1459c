"""Trace shaping: window selection, time downscaling, length scaling and clipping to the model context.

``shape_trace`` applies the steps in the paper's order: cut a window of the original trace, stretch its
time axis, then fit the lengths to the model. Every step returns a new list; requests stay sorted.
"""
import math
from dataclasses import dataclass, replace

from experiments.workload.traces import TraceRequest


@dataclass(slots=True)
class TraceShaping:
    """How to turn a raw trace into the workload of one experiment.

    ``time_scale`` multiplies every arrival offset, so the request rate is divided by it (the paper
    uses 4.75 for Azure and 1.75 for BurstGPT). ``duration_s=None`` keeps everything from ``start_s``.
    Lengths are scaled (or replaced by fixed values), then clipped so that
    ``prompt_len + output_len <= max_model_len`` with at least ``min_prompt_len`` / ``min_output_len``.
    """
    start_s: float = 0.0
    duration_s: float | None = None
    time_scale: float = 1.0
    prompt_len_scale: float = 1.0
    output_len_scale: float = 1.0
    fixed_prompt_len: int | None = None
    fixed_output_len: int | None = None
    max_model_len: int | None = None
    min_prompt_len: int = 1
    min_output_len: int = 1
    max_requests: int | None = None
    keep_every: int = 1          # thinning: keep every k-th request of the window (rate / k, burst shape kept)

    def __post_init__(self):
        _check(math.isfinite(self.start_s) and self.start_s >= 0, f"start_s must be >= 0 and finite, got {self.start_s}")
        _check(self.duration_s is None or (math.isfinite(self.duration_s) and self.duration_s > 0),
               f"duration_s must be > 0 and finite, got {self.duration_s}")
        for name in ("time_scale", "prompt_len_scale", "output_len_scale"):
            value = getattr(self, name)
            _check(math.isfinite(value) and value > 0, f"{name} must be > 0 and finite, got {value}")
        _check(self.fixed_prompt_len is None or self.fixed_prompt_len >= 1,
               f"fixed_prompt_len must be >= 1, got {self.fixed_prompt_len}")
        _check(self.fixed_output_len is None or self.fixed_output_len >= 1,
               f"fixed_output_len must be >= 1, got {self.fixed_output_len}")
        _check(self.min_prompt_len >= 1, f"min_prompt_len must be >= 1, got {self.min_prompt_len}")
        _check(self.min_output_len >= 1, f"min_output_len must be >= 1, got {self.min_output_len}")
        _check(self.max_model_len is None or self.max_model_len >= self.min_prompt_len + self.min_output_len,
               f"max_model_len {self.max_model_len} < min_prompt_len + min_output_len "
               f"({self.min_prompt_len} + {self.min_output_len})")
        _check(self.max_requests is None or self.max_requests >= 1,
               f"max_requests must be >= 1, got {self.max_requests}")
        _check(self.keep_every >= 1, f"keep_every must be >= 1, got {self.keep_every}")


def shape_trace(requests: list[TraceRequest], shaping: TraceShaping) -> list[TraceRequest]:
    """Window -> thinning -> time stretch -> length scale/override -> clip to context -> request limit."""
    shaped = select_window(requests, shaping.start_s, shaping.duration_s)[::shaping.keep_every]
    shaped = stretch_time(shaped, shaping.time_scale)
    shaped = scale_lengths(shaped, shaping.prompt_len_scale, shaping.output_len_scale)
    shaped = override_lengths(shaped, shaping.fixed_prompt_len, shaping.fixed_output_len)
    if shaping.max_model_len is not None:
        shaped = clip_lengths(shaped, shaping.max_model_len, shaping.min_prompt_len, shaping.min_output_len)
    return limit_requests(shaped, shaping.max_requests)


def select_window(requests: list[TraceRequest], start_s: float, duration_s: float | None) -> list[TraceRequest]:
    """Keep requests with ``start_s <= arrival_s < start_s + duration_s``, re-based so ``start_s`` becomes 0."""
    end_s = float("inf") if duration_s is None else start_s + duration_s
    return [replace(r, arrival_s=r.arrival_s - start_s) for r in requests if start_s <= r.arrival_s < end_s]


def stretch_time(requests: list[TraceRequest], time_scale: float) -> list[TraceRequest]:
    """Multiply every arrival offset by ``time_scale``: the request rate is divided by ``time_scale``."""
    _check(math.isfinite(time_scale) and time_scale > 0, f"time_scale must be > 0 and finite, got {time_scale}")
    return [replace(r, arrival_s=r.arrival_s * time_scale) for r in requests]


def scale_lengths(requests: list[TraceRequest], prompt_scale: float, output_scale: float) -> list[TraceRequest]:
    """Multiply prompt and output lengths (rounded, at least 1 token)."""
    _check(all(math.isfinite(x) and x > 0 for x in (prompt_scale, output_scale)),
           f"length scales must be > 0 and finite, got {prompt_scale}, {output_scale}")
    return [replace(r, prompt_len=max(1, round(r.prompt_len * prompt_scale)),
                    output_len=max(1, round(r.output_len * output_scale))) for r in requests]


def override_lengths(requests: list[TraceRequest], prompt_len: int | None,
                     output_len: int | None) -> list[TraceRequest]:
    """Replace the lengths that are given (the paper fixes 512/256 or 1024/512 tokens); keep arrivals."""
    return [replace(r, prompt_len=prompt_len or r.prompt_len, output_len=output_len or r.output_len)
            for r in requests]


def clip_lengths(requests: list[TraceRequest], max_model_len: int, min_prompt_len: int = 1,
                 min_output_len: int = 1) -> list[TraceRequest]:
    """Fit every request into the context: the prompt is cut first, so the output length survives when it can.

    Result: ``min_prompt_len <= prompt_len``, ``min_output_len <= output_len`` and
    ``prompt_len + output_len <= max_model_len``.
    """
    _check(min_prompt_len >= 1 and min_output_len >= 1,
           f"minimum lengths must be >= 1, got {min_prompt_len}, {min_output_len}")
    _check(max_model_len >= min_prompt_len + min_output_len,
           f"max_model_len {max_model_len} < min_prompt_len + min_output_len ({min_prompt_len} + {min_output_len})")
    return [_clipped(r, max_model_len, min_prompt_len, min_output_len) for r in requests]


def limit_requests(requests: list[TraceRequest], max_requests: int | None) -> list[TraceRequest]:
    """Keep the first ``max_requests`` arrivals (all when None)."""
    return list(requests if max_requests is None else requests[:max_requests])


def mean_request_rate(requests: list[TraceRequest], duration_s: float | None = None) -> float:
    """Requests per second over ``duration_s`` (default: first to last arrival)."""
    if duration_s is None:
        duration_s = requests[-1].arrival_s - requests[0].arrival_s if requests else 0.0
    _check(duration_s > 0, f"the mean rate needs a positive duration, got {duration_s}: pass duration_s")
    return len(requests) / duration_s


def _clipped(request: TraceRequest, max_model_len: int, min_prompt_len: int, min_output_len: int) -> TraceRequest:
    output_len = _clamp(request.output_len, min_output_len, max_model_len - min_prompt_len)
    prompt_len = _clamp(request.prompt_len, min_prompt_len, max_model_len - output_len)
    return replace(request, prompt_len=prompt_len, output_len=output_len)


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(value, high))


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)
