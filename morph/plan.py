"""The Morphing Controller's output (a plan) and the Morphing Actuator's state, as pure values.

A plan names the target precision of every decoder layer. It carries no KV capacity: the KV target is
*derived from the bytes the plan frees* (capacity = full-precision capacity + the blocks that fit in
the memory released by the quantized layers' slots), and the KVResizer computes it, because only it
knows the slot and page granularity that decides how many bytes a swap really returns. This keeps the
controller device-agnostic and makes "restore every layer to FP" imply "give back every extra block".
"""
import enum
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class Precision(str, enum.Enum):
    """Weight precision of one decoder layer, from most to least precise: the engine's own names
    (``swiftllm.server.engine.LAYER_PRECISIONS``) in their order, which ``tests/test_seams.py`` checks."""
    FP = "fp"
    INT8 = "int8"
    INT4 = "int4"


def parse_precisions(values: Iterable[str | Precision]) -> tuple[Precision, ...]:
    """Convert names such as ``"int4"`` to ``Precision``; an unknown name is a ``ValueError``."""
    known = [p.value for p in Precision]
    parsed = []
    for value in values:
        try:
            parsed.append(Precision(value))
        except ValueError:
            raise ValueError(f"unknown precision {value!r}; expected one of {known}") from None
    return tuple(parsed)


def count_quantized(precisions: Sequence[Precision]) -> int:
    return sum(p != Precision.FP for p in precisions)


@dataclass(frozen=True, slots=True)
class LayerTransition:
    """One decoder layer changing precision."""
    layer: int
    source: Precision
    target: Precision


@dataclass(frozen=True, slots=True)
class MorphPlan:
    """Target precision of every decoder layer (index = layer id) and why the controller chose it."""
    layer_precisions: tuple[Precision, ...]
    reason: str = ""

    def __post_init__(self):
        if not self.layer_precisions:
            raise ValueError("a morph plan needs the precision of at least one layer")
        object.__setattr__(self, "layer_precisions", parse_precisions(self.layer_precisions))

    @staticmethod
    def full_precision(num_layers: int, reason: str = "") -> "MorphPlan":
        return MorphPlan((Precision.FP,) * num_layers, reason)

    @property
    def num_quantized_layers(self) -> int:
        return count_quantized(self.layer_precisions)

    def transitions_from(self, current: Sequence[Precision]) -> tuple[LayerTransition, ...]:
        """The layer changes that turn ``current`` into this plan, in layer order."""
        if len(current) != len(self.layer_precisions):
            raise ValueError(f"plan covers {len(self.layer_precisions)} layers but the model has {len(current)}")
        return tuple(
            LayerTransition(layer, source, target)
            for layer, (source, target) in enumerate(zip(parse_precisions(current), self.layer_precisions))
            if source != target
        )


@dataclass(frozen=True, slots=True)
class MorphState:
    """What the actuator has applied: each layer's precision and when it last changed (engine clock, s)."""
    layer_precisions: tuple[Precision, ...]
    last_transition_time: float = -math.inf

    def __post_init__(self):
        object.__setattr__(self, "layer_precisions", parse_precisions(self.layer_precisions))

    @staticmethod
    def full_precision(num_layers: int) -> "MorphState":
        return MorphState((Precision.FP,) * num_layers)

    @property
    def num_quantized_layers(self) -> int:
        return count_quantized(self.layer_precisions)

    def after(self, plan: MorphPlan, time: float) -> "MorphState":
        """The state once ``plan`` has been applied at engine time ``time``."""
        if len(plan.layer_precisions) != len(self.layer_precisions):
            raise ValueError(
                f"plan covers {len(plan.layer_precisions)} layers but the model has {len(self.layer_precisions)}")
        return MorphState(plan.layer_precisions, time)
