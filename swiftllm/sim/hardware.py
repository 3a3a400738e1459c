"""What the simulator knows about a machine: memory, speeds, efficiencies, per-step overhead, quantized-op speed-ups.

Every number comes from a datasheet, a published measurement or a fit, and the config that sets it says which
(``sources``). GPUs are described by roofline terms (and by Vidur's operator tables where they exist); the ``cpu``
hardware by a table of this project's own ops timed on this machine (``op_table``, written by
``experiments/calibrate_cpu.py``).
"""
import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from swiftllm.server.engine import LAYER_PRECISIONS

GIB = 1 << 30
GB = 1e9
DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}


@dataclass(frozen=True, slots=True)
class SpeedupCurve:
    """A quantized linear op's speed-up over full precision, by tokens in the batch (interpolated on log2 tokens,
    flat beyond the ends)."""
    tokens: tuple[int, ...]
    speedup: tuple[float, ...]
    source: str = ""

    def __post_init__(self):
        if len(self.tokens) != len(self.speedup) or not self.tokens:
            raise ValueError(f"a speed-up curve needs as many speed-ups as token counts, got {self.tokens}, {self.speedup}")
        if list(self.tokens) != sorted(set(self.tokens)) or self.tokens[0] < 1:
            raise ValueError(f"speed-up token counts must be increasing and >= 1, got {self.tokens}")
        if any(not (math.isfinite(s) and s > 0) for s in self.speedup):
            raise ValueError(f"speed-ups must be finite and > 0, got {self.speedup}")

    def at(self, num_tokens: int) -> float:
        if num_tokens <= self.tokens[0]:
            return self.speedup[0]
        if num_tokens >= self.tokens[-1]:
            return self.speedup[-1]
        i = bisect.bisect_right(self.tokens, num_tokens)
        x0, x1 = math.log2(self.tokens[i - 1]), math.log2(self.tokens[i])
        weight = (math.log2(num_tokens) - x0) / (x1 - x0)
        return self.speedup[i - 1] + weight * (self.speedup[i] - self.speedup[i - 1])


@dataclass(frozen=True, slots=True)
class HardwareSpec:
    name: str
    memory_gib: float                   # device memory
    memory_fraction: float              # the engine's budget share of it (the rest: framework / CUDA context reserve)
    dtype: str                          # full-precision weights and KV
    peak_tflops: float                  # dense, at ``dtype``
    memory_bandwidth_gbs: float
    compute_efficiency: float           # achieved share of peak in large GEMMs
    memory_efficiency: float            # achieved share of bandwidth when streaming weights
    host_link_gbs: float                # host-to-device copies of swapped layers
    checksum_gbs: float                 # verifying a host variant before it is copied (CRC-32C on the host; GPUs)
    int8_speedup: SpeedupCurve | None = None     # None where op times come per precision (the CPU's op table)
    int4_speedup: SpeedupCurve | None = None
    step_overhead_s: float = 0.0        # per step, outside the model's ops (scheduling, launches, sampling setup)
    sequence_overhead_s: float = 0.0    # per sequence in the batch (its bookkeeping and sampling)
    time_scale: float = 1.0             # every predicted step time x this (a machine slower or faster than profiled)
    layer_time_scales: dict[str, float] = field(default_factory=dict)  # precision -> its decoder layers' time x this,
                                        # on top of time_scale (that precision's kernels faster or slower than profiled)
    profile_dir: str | None = None      # Vidur operator tables (``<gpu>_<org>_<model>.mlp.csv``), if any
    profile_gpu: str | None = None      # the GPU name in those file names
    op_table: str | None = None         # CPU: timed ops (experiments/calibrate_cpu.py), a name in swiftllm/sim/op_tables
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.dtype not in DTYPE_BYTES:
            raise ValueError(f"hardware {self.name}: dtype must be one of {sorted(DTYPE_BYTES)}, got {self.dtype!r}")
        for name in ("memory_gib", "peak_tflops", "memory_bandwidth_gbs", "host_link_gbs", "checksum_gbs", "time_scale"):
            _positive(self.name, name, getattr(self, name))
        for name in ("memory_fraction", "compute_efficiency", "memory_efficiency"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ValueError(f"hardware {self.name}: {name} must lie in (0, 1], got {value}")
        for precision, scale in self.layer_time_scales.items():
            if precision not in LAYER_PRECISIONS:
                raise ValueError(f"hardware {self.name}: layer_time_scales names unknown precision {precision!r} "
                                 f"(one of {list(LAYER_PRECISIONS)})")
            _positive(self.name, f"layer_time_scales.{precision}", scale)
        for name in ("step_overhead_s", "sequence_overhead_s"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"hardware {self.name}: {name} must be >= 0, got {getattr(self, name)}")

    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def budget_bytes(self) -> int:
        return int(self.memory_gib * GIB * self.memory_fraction)

    def speedup(self, precision: str, num_tokens: int) -> float:
        """Linear-op speed-up of ``precision`` over full precision at ``num_tokens`` tokens."""
        if precision == "fp":
            return 1.0
        curves = {"int8": self.int8_speedup, "int4": self.int4_speedup}
        if precision not in curves:
            raise ValueError(f"unknown precision {precision!r}")
        if curves[precision] is None:
            raise ValueError(f"hardware {self.name} gives no {precision} speed-up curve")
        return curves[precision].at(num_tokens)

    @staticmethod
    def from_dict(values: dict) -> "HardwareSpec":
        """From a config's fields (the curves as ``{tokens: [...], speedup: [...], source: ...}``)."""
        values = dict(values)
        for name in ("int8_speedup", "int4_speedup"):
            if values.get(name) is not None:
                curve = dict(values[name])
                values[name] = SpeedupCurve(tuple(curve["tokens"]), tuple(curve["speedup"]), curve.get("source", ""))
        values["sources"] = dict(values.get("sources") or {})
        values["layer_time_scales"] = dict(values.get("layer_time_scales") or {})
        known = set(HardwareSpec.__dataclass_fields__)
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"hardware {values.get('name')!r}: unknown fields {sorted(unknown)}")
        return HardwareSpec(**values)


def _positive(hardware: str, name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"hardware {hardware}: {name} must be finite and > 0, got {value}")


def interpolate(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    """Piecewise-linear through the points (xs increasing); beyond the last point the last segment's slope goes on,
    below the first the first value holds. Exact at the points, monotone between two of them."""
    if x <= xs[0]:
        return ys[0]
    i = min(bisect.bisect_right(xs, x), len(xs) - 1)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return y0 + (x - x0) * (y1 - y0) / (x1 - x0)
