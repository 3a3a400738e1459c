"""Which CPU path the quantized linears take, for experiments that compare them.

``auto`` (what serving does): the C++ kernel up to each op's ``KERNEL_MAX_TOKENS`` rows, dequantize + fp32 GEMM above.
``kernel``: the C++ kernel at every size; it holds the activations as int16 in blocks of 32 (W4A16 / W8A16), so a
perplexity run with it scores what decode computes. ``float``: dequantize + fp32 GEMM at every size, fp32 activations.
"""
import contextlib
from collections.abc import Iterator

from swiftllm.quant.int4_linear import Int4Linear
from swiftllm.quant.int8_linear import Int8Linear

LINEAR_PATHS = ("auto", "kernel", "float")
FORCED_MAX_TOKENS = {"kernel": 10**9, "float": 0}


@contextlib.contextmanager
def forced_linear_path(path: str, ops: tuple[type, ...] = (Int4Linear, Int8Linear)) -> Iterator[None]:
    """Inside the block, ``ops`` take ``path``; their thresholds are restored on the way out."""
    if path not in LINEAR_PATHS:
        raise ValueError(f"the quantized linear path must be one of {LINEAR_PATHS}, got {path!r}")
    saved = {cls: cls.KERNEL_MAX_TOKENS for cls in ops}
    if path != "auto":
        for cls in ops:
            cls.KERNEL_MAX_TOKENS = FORCED_MAX_TOKENS[path]
    try:
        yield
    finally:
        for cls, max_tokens in saved.items():
            cls.KERNEL_MAX_TOKENS = max_tokens
