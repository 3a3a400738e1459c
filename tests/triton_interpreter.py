"""The mark of the kernel tests that run Triton's CPU interpreter on CPU tensors (see tests/conftest.py)."""
import os

import pytest

interpreted = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1",
    reason="Triton kernels compile for the GPU here; their interpreted CPU tests run where no GPU is visible, or "
           "with TRITON_INTERPRET=1 in a process of their own (tests/gpu test them compiled)")
