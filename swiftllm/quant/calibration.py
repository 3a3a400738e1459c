"""Calibration data for AWQ: token sequences from a real text, and the inputs each linear sees.

The default text is WikiText-2's validation split (``wikitext2_tokens_valid.txt`` in the shared
datasets folder); a user may pass any other text file. Random data is never substituted.
"""
import dataclasses
import os
from typing import Callable

import torch

from swiftllm.worker.layers.linear import Linear
from swiftllm.worker.weight import LINEAR_NAMES, LayerWeights

WIKITEXT2_VALID = "wikitext2_tokens_valid.txt"


class RecordingLinear:
    """Runs ``inner`` and keeps every input it is called with (for calibration only)."""
    __slots__ = ("inner", "inputs")

    def __init__(self, inner: Linear):
        self.inner = inner
        self.inputs: list[torch.Tensor] = []

    @property
    def in_features(self) -> int:
        return self.inner.in_features

    @property
    def out_features(self) -> int:
        return self.inner.out_features

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach())
        return self.inner(x)


def record_linear_inputs(layer: LayerWeights, run_layer: Callable[[LayerWeights], torch.Tensor]
                         ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Run ``run_layer`` on ``layer`` with recording linears.

    Returns ({linear name: [N, in_features] inputs, in call order}, what ``run_layer`` returned).
    """
    recorders = {name: RecordingLinear(getattr(layer, name)) for name in LINEAR_NAMES}
    output = run_layer(dataclasses.replace(layer, **recorders))
    return {name: torch.cat(rec.inputs) for name, rec in recorders.items()}, output


def read_calibration_text(path: str) -> str:
    """The calibration text at ``path`` (e.g. ``<shared>/datasets/wikitext2_tokens_valid.txt``)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"calibration text {path!r} not found: pass the WikiText-2 validation split "
                                f"({WIKITEXT2_VALID} from the shared datasets folder) or another text file")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if not text.strip():
        raise ValueError(f"calibration text {path!r} is empty")
    return text


def calibration_sequences(token_ids: list[int], seq_len: int, num_seqs: int) -> list[torch.Tensor]:
    """``num_seqs`` consecutive, non-overlapping windows of ``seq_len`` tokens, each int64 [seq_len]."""
    needed = seq_len * num_seqs
    if len(token_ids) < needed:
        raise ValueError(f"calibration text has {len(token_ids)} tokens, {num_seqs} x {seq_len} = {needed} needed")
    ids = torch.tensor(token_ids[:needed], dtype=torch.int64)
    return list(ids.view(num_seqs, seq_len))
