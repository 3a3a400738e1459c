"""A number of decoder layers written in a config: a count, or a share of the model's layers resolved once the model
is known.

Forms (strings, so one config field takes either): ``"2"`` (two layers), ``"1/4"`` (a quarter of the layers,
rounded up: ``ceil(L / 4)``) and ``"all"`` (every layer).
"""
import math
from dataclasses import dataclass
from fractions import Fraction

FORMS = "a count such as '2', a share of the layers such as '1/4' (rounded up), or 'all'"


@dataclass(frozen=True, slots=True)
class LayerCount:
    """Exactly one of ``count`` and ``share`` (in (0, 1]) is set."""
    count: int | None = None
    share: Fraction | None = None

    @staticmethod
    def parse(text: str) -> "LayerCount":
        """``ValueError`` (naming the forms) for anything but the forms above."""
        text = str(text).strip()
        if text == "all":
            return LayerCount(share=Fraction(1))
        if text.isdigit():
            return LayerCount(count=int(text))
        numerator, slash, denominator = text.partition("/")
        if slash and numerator.strip().isdigit() and denominator.strip().isdigit() and int(denominator) > 0:
            share = Fraction(int(numerator), int(denominator))
            if 0 < share <= 1:
                return LayerCount(share=share)
        raise ValueError(f"expected {FORMS}, got {text!r}")

    @property
    def minimum(self) -> int:
        """The fewest layers this can resolve to (a share resolves to at least one)."""
        return 1 if self.count is None else self.count

    def resolve(self, num_layers: int) -> int:
        return self.count if self.count is not None else math.ceil(self.share * num_layers)
