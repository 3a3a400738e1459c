"""Model weights as plain tensors: a declarative registry maps checkpoint names onto these fields."""
from dataclasses import dataclass
from typing import Protocol

import torch

from swiftllm.worker.kernels.dense_linear import dense_linear
from swiftllm.worker.layers.linear import DenseLinear, Linear

LINEAR_NAMES = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")
NORM_NAMES = ("attn_norm", "ffn_norm")


@dataclass(slots=True)
class LayerWeights:
    """One decoder layer. Q, K, V and gate, up are fused so each layer runs four GEMMs."""
    attn_norm: torch.Tensor     # [hidden]
    qkv_proj: Linear            # hidden -> (num_q_heads + 2 * num_kv_heads) * head_dim
    o_proj: Linear              # num_q_heads * head_dim -> hidden
    ffn_norm: torch.Tensor      # [hidden]
    gate_up_proj: Linear        # hidden -> 2 * intermediate (gate rows first, then up rows)
    down_proj: Linear           # intermediate -> hidden

    def tensors(self) -> dict[str, torch.Tensor]:
        """Flat ``name -> tensor`` view of every tensor the layer holds (stable order)."""
        out = {name: getattr(self, name) for name in NORM_NAMES}
        for name in LINEAR_NAMES:
            for key, t in getattr(self, name).tensors().items():
                out[f"{name}.{key}"] = t
        return out

    def with_tensors(self, tensors: dict[str, torch.Tensor]) -> "LayerWeights":
        """The same layer (same op kinds) over other storage, e.g. views into a weight slot."""
        linears = {}
        for name in LINEAR_NAMES:
            prefix = name + "."
            own = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            linears[name] = getattr(self, name).with_tensors(own)
        return LayerWeights(attn_norm=tensors["attn_norm"], ffn_norm=tensors["ffn_norm"], **linears)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors().values())


class VocabTable(Protocol):
    """A [vocab, hidden] matrix kept in a compact form (e.g. ``Int8Linear``): rows looked up as the embedding, or
    multiplied as the LM head."""

    def rows(self, token_ids: torch.Tensor) -> torch.Tensor:
        """token_ids [T] -> [T, hidden] float32."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x [M, hidden] -> [M, vocab]."""

    def tensors(self) -> dict[str, torch.Tensor]: ...


# The embedding or LM head: a plain [vocab, hidden] tensor, or a compact table.
VocabMatrix = torch.Tensor | VocabTable


def embedding_rows(matrix: VocabMatrix, token_ids: torch.Tensor) -> torch.Tensor:
    """token_ids [T] -> [T, hidden]."""
    return matrix[token_ids] if isinstance(matrix, torch.Tensor) else matrix.rows(token_ids)


def vocab_logits(x: torch.Tensor, matrix: VocabMatrix) -> torch.Tensor:
    """x [M, hidden] -> [M, vocab] through the LM head."""
    return dense_linear(x, matrix) if isinstance(matrix, torch.Tensor) else matrix(x)


def vocab_tensors(matrix: VocabMatrix) -> dict[str, torch.Tensor]:
    return {"weight": matrix} if isinstance(matrix, torch.Tensor) else matrix.tensors()


@dataclass(slots=True)
class ModelWeights:
    embed_tokens: VocabMatrix   # [vocab, hidden]
    final_norm: torch.Tensor    # [hidden]
    lm_head: VocabMatrix        # [vocab, hidden]; the same object as embed_tokens when tied
    layers: list[LayerWeights]

    @property
    def tied(self) -> bool:
        if self.lm_head is self.embed_tokens:
            return True
        both_tensors = isinstance(self.lm_head, torch.Tensor) and isinstance(self.embed_tokens, torch.Tensor)
        return both_tensors and self.lm_head.device.type != "meta" and self.lm_head.data_ptr() == self.embed_tokens.data_ptr()

    def nbytes(self) -> int:
        matrices = [self.embed_tokens] if self.tied else [self.embed_tokens, self.lm_head]
        own = sum(t.nbytes for m in matrices for t in vocab_tensors(m).values()) + self.final_norm.nbytes
        return own + sum(layer.nbytes() for layer in self.layers)


def dense_layer(attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down) -> LayerWeights:
    """Build a full-precision layer from the nine HF-layout tensors (each [out, in])."""
    return LayerWeights(
        attn_norm=attn_norm.contiguous(),
        qkv_proj=DenseLinear(torch.cat([wq, wk, wv], dim=0).contiguous()),
        o_proj=DenseLinear(wo.contiguous()),
        ffn_norm=ffn_norm.contiguous(),
        gate_up_proj=DenseLinear(torch.cat([w_gate, w_up], dim=0).contiguous()),
        down_proj=DenseLinear(w_down.contiguous()),
    )
