"""The linear-op interface every decoder layer uses.

``model.py`` only calls ``linear(x)``; it never knows the precision behind it. Quantized variants
(``swiftllm.quant``) implement the same interface, so swapping precision is replacing the object.
"""
from typing import Protocol

import torch

from swiftllm.worker.kernels.dense_linear import dense_linear


class Linear(Protocol):
    in_features: int
    out_features: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x: [M, in_features] -> [M, out_features], a new tensor the caller may modify in place."""

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor that holds this op's state (what a weight slot must store)."""

    def with_tensors(self, tensors: dict[str, torch.Tensor]) -> "Linear":
        """The same op over other storage (same names, shapes and dtypes as ``tensors()``)."""


class DenseLinear:
    """Full-precision ``y = x @ weight.T``; weight: [out_features, in_features]."""
    __slots__ = ("weight",)

    def __init__(self, weight: torch.Tensor):
        assert weight.dim() == 2, f"weight must be 2-D, got {tuple(weight.shape)}"
        self.weight = weight

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return dense_linear(x, self.weight)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"weight": self.weight}

    def with_tensors(self, tensors: dict[str, torch.Tensor]) -> "DenseLinear":
        return DenseLinear(tensors["weight"])

    def dequantized_weight(self) -> torch.Tensor:
        """[out_features, in_features] in the compute dtype."""
        return self.weight
