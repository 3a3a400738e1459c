"""The model under evaluation: weights, tokenizer, WikiText-2 windows and quantized variants.

Each variant is prepared once per session through the morph layer store: read from the variant
cache when it holds it, else quantized (AWQ on the WikiText-2 validation windows) and cached.
"""
import dataclasses
import functools
from collections.abc import Iterable
from pathlib import Path

import torch

from experiments.eval.config import FULL_PRECISION, DataSection, QuantSection, resolve_path
from experiments.eval.perplexity import Perplexity, perplexity, read_wikitext2_test, token_windows
from experiments.replay.config import ModelSection
from morph.layer_store import LayerStore
from morph.plan import Precision
from swiftllm.quant.calibration import calibration_sequences, read_calibration_text
from swiftllm.quant.lm_head import with_int8_lm_head
from swiftllm.quant.spec import VariantSpec
from swiftllm.quant.variant_cache import model_fingerprint
from swiftllm.server.tokenization import LlamaTokenizer
from swiftllm.worker.model import dense_logits
from swiftllm.worker.weight import LayerWeights
from swiftllm.worker.weight_loader import EMBEDDED_MODEL_NAMES, load_model


class EvalSession:
    """Loads the model once; test windows and variants are built on first use and kept."""

    def __init__(self, model: ModelSection, data: DataSection, quant: QuantSection, lm_head: str = FULL_PRECISION):
        self.model_path = model.path if model.path in EMBEDDED_MODEL_NAMES else resolve_path(model.path)
        self.model_name = model.name
        self.data = data
        self.quant = quant
        self.datasets_dir = Path(resolve_path(data.datasets_dir))
        self.cfg, self.weights = load_model(self.model_path)
        # what scores the windows: the LM head (and a tied embedding) in INT8 when asked; variants come from weights
        self.scoring_weights = with_int8_lm_head(self.weights) if lm_head == "int8" else self.weights
        self.tokenizer = LlamaTokenizer.load(self.model_path)
        self._variants: dict[str, list[LayerWeights]] = {FULL_PRECISION: list(self.weights.layers)}

    @property
    def num_layers(self) -> int:
        return self.cfg.num_layers

    @functools.cached_property
    def model_hash(self) -> str:
        return model_fingerprint(self.weights)

    @functools.cached_property
    def test_windows(self) -> list[torch.Tensor]:
        """The WikiText-2 test windows of ``data`` (each int64 [window_len])."""
        token_ids = self.tokenizer.encode(read_wikitext2_test(self.datasets_dir))
        return token_windows(token_ids, self.data.window_len, self.data.num_windows)

    def calibration(self, file_name: str, seq_len: int, num_seqs: int) -> list[torch.Tensor]:
        """The first ``num_seqs`` windows of ``seq_len`` tokens of ``file_name`` in the datasets folder."""
        text = read_calibration_text(str(self.datasets_dir / file_name))
        return calibration_sequences(self.tokenizer.encode(text), seq_len, num_seqs)

    def variant(self, name: str) -> list[LayerWeights]:
        """Every layer as variant ``name`` ("fp" or a ``VariantSpec`` name)."""
        if name not in self._variants:
            self._variants[name] = self._prepare(VariantSpec.from_name(name))
        return self._variants[name]

    def variant_hash(self, name: str) -> str:
        """Fingerprint of the model with every layer as variant ``name`` (same scheme as ``model_hash``)."""
        return model_fingerprint(dataclasses.replace(self.weights, layers=self.variant(name)))

    def mixed(self, name: str, quantized: Iterable[int]) -> list[LayerWeights]:
        """Full precision except the layers ``quantized``, which are variant ``name``."""
        chosen, variant = set(quantized), self.variant(name)
        return [variant[i] if i in chosen else layer for i, layer in enumerate(self.weights.layers)]

    def perplexity(self, layers: list[LayerWeights], desc: str) -> Perplexity:
        return perplexity(lambda ids: dense_logits(self.scoring_weights, self.cfg, ids, layers), self.test_windows, desc)

    def _prepare(self, spec: VariantSpec) -> list[LayerWeights]:
        precision = Precision.INT8 if spec.method == "int8" else Precision.INT4
        calibration = None
        if spec.method == "awq":
            calibration = self.calibration(self.quant.calibration_file, self.quant.seq_len, self.quant.num_seqs)
        cache_root = None if self.quant.cache_dir is None else resolve_path(self.quant.cache_dir)
        store = LayerStore.prepare(self.weights, self.cfg, [precision], spec, cache_root, calibration)
        return [store.layer(i, precision) for i in range(self.num_layers)]
