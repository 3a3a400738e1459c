"""How close a GPU result must be to its reference (METHOD.md's measure: ||out - ref|| / ||ref||)."""
import torch

# float32 kernels use IEEE products (no TF32); half dtypes err by their rounding of inputs and outputs.
RELATIVE_ERROR = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}
DTYPES = list(RELATIVE_ERROR)


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """||actual - expected|| / ||expected|| in float64; a NaN or infinity in ``actual`` fails every bound."""
    actual, expected = actual.double(), expected.double()
    if not torch.isfinite(actual).all():
        return float("inf")
    return ((actual - expected).norm() / expected.norm()).item()


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype) -> None:
    error = relative_error(actual, expected)
    assert error <= RELATIVE_ERROR[dtype], f"relative error {error:.2e} > {RELATIVE_ERROR[dtype]:.0e} in {dtype}"
