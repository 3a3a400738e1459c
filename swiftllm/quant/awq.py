"""AWQ: activation-aware INT4 quantization of one decoder layer (asymmetric, group-wise).

Scale search. For each linear, a per-input-channel scale ``s = mean|x| ** alpha`` (then divided by
``sqrt(max(s) * min(s))``) is tried for ``alpha`` on an evenly spaced grid over [0, 1]; the layer keeps
the ``s`` minimising the MSE of *that linear's output* on the calibration inputs,
``|| x W^T - (x / s) Q(W diag(s))^T ||^2``. (The AWQ paper measures the output of the whole attention
or MLP block; measuring each fused linear needs no attention in the loop and is what we do.) Since
``alpha = 0`` gives ``s = 1``, i.e. round-to-nearest, AWQ never does worse than RTN on the data searched.

Folding. ``diag(1/s)`` is absorbed by the op feeding the linear, so in full precision the layer
computes the same function: qkv_proj -> attn_norm, gate_up_proj -> ffn_norm, down_proj -> the ``up``
rows of gate_up_proj (``silu(gate) * up`` is linear in ``up``), o_proj -> the ``v`` rows of qkv_proj,
but only without GQA (each query head owns its KV head); with GQA o_proj is not scaled, as in AutoAWQ.
Every scale is searched on original weights: in the order qkv, gate_up, down, o, no fold
touches a linear before its own search.

Clipping search (optional). Per (output row, group) a shrink ratio of ``max|w|`` in
{1, 0.95, ..., 0.55} is chosen by the group's own contribution to the output error; the q and k rows
are not clipped (attention logits are too sensitive, as in AutoAWQ).
"""
import logging

import torch

from swiftllm.quant.groupwise import DEFAULT_GROUP_SIZE, fake_quantize, pad_columns, padded_in_features, quantize_groups
from swiftllm.quant.variants import build_int4_linear
from swiftllm.worker.weight import LINEAR_NAMES, LayerWeights

logger = logging.getLogger(__name__)

DEFAULT_GRID_POINTS = 20
CLIP_RATIOS = tuple(1 - i / 20 for i in range(10))   # 1.0, 0.95, ..., 0.55
MIN_SCALE = 1e-4


def search_scale(weight: torch.Tensor, x: torch.Tensor, group_size: int = DEFAULT_GROUP_SIZE,
                 grid_points: int = DEFAULT_GRID_POINTS) -> torch.Tensor:
    """Best per-input-channel scale [in] for ``weight`` [out, in] on inputs ``x`` [T, in]."""
    x_mean = x.abs().mean(dim=0)                                                           # [in]
    reference = x @ weight.t()                                                             # [T, out]
    best_loss, best_scale = float("inf"), torch.ones_like(x_mean)
    for alpha in torch.linspace(0, 1, grid_points).tolist():
        scale = _normalised(x_mean.pow(alpha).clamp(min=MIN_SCALE))
        candidate = fake_quantize(weight * scale, group_size) / scale                       # [out, in]
        loss = (x @ candidate.t() - reference).pow(2).mean().item()
        if loss < best_loss:
            best_loss, best_scale = loss, scale
    logger.debug("AWQ scale search: best loss %.3e over %d alphas", best_loss, grid_points)
    return best_scale


def search_clip(weight: torch.Tensor, x: torch.Tensor, group_size: int = DEFAULT_GROUP_SIZE) -> torch.Tensor:
    """Best clip ratio [out, groups] for ``weight`` [out, in]: each group minimises its own output error."""
    out_features, in_features = weight.shape
    padded = padded_in_features(in_features, group_size)
    x_groups = pad_columns(x, padded).view(x.shape[0], -1, group_size).transpose(0, 1)   # [G, T, g]
    errors = []
    for ratio in CLIP_RATIOS:
        clip = torch.full((out_features, padded // group_size), ratio, device=weight.device)
        diff = pad_columns(fake_quantize(weight, group_size, clip) - weight, padded)       # [out, padded]
        diff_groups = diff.view(out_features, -1, group_size).permute(1, 2, 0)             # [G, g, out]
        errors.append(torch.bmm(x_groups, diff_groups).pow(2).mean(dim=1).t())             # [out, G]
    best = torch.stack(errors).argmin(dim=0)                                               # [out, G]
    return torch.tensor(CLIP_RATIOS, device=weight.device)[best]


def quantize_layer_awq(layer: LayerWeights, calib: dict[str, torch.Tensor], group_size: int = DEFAULT_GROUP_SIZE,
                       grid_points: int = DEFAULT_GRID_POINTS, clip: bool = True,
                       max_search_tokens: int = 2048, max_clip_tokens: int = 512) -> LayerWeights:
    """AWQ INT4 variant of ``layer`` (a complete ``LayerWeights``, norms rescaled).

    calib: inputs each linear saw on calibration tokens, *after* the norms:
    {"qkv_proj": [N, hidden], "o_proj": [N, hq * d], "gate_up_proj": [N, hidden], "down_proj": [N, inter]}.
    The searches use at most ``max_search_tokens`` / ``max_clip_tokens`` evenly spaced rows.
    """
    _check_calibration(layer, calib)
    weights = {name: getattr(layer, name).dequantized_weight().float().clone() for name in LINEAR_NAMES}
    inputs = {name: calib[name].float() for name in LINEAR_NAMES}
    norms = {"attn_norm": layer.attn_norm.float().clone(), "ffn_norm": layer.ffn_norm.float().clone()}
    v_rows = _v_rows(weights)
    for name in _scaled_linears(weights):
        scale = search_scale(weights[name], _evenly_spaced(inputs[name], max_search_tokens), group_size, grid_points)
        _fold_scale(name, scale, weights, norms, v_rows)
        inputs[name] = inputs[name] / scale
    device = layer.attn_norm.device
    quantized = {}
    for name in LINEAR_NAMES:
        clip_ratio = _clip_ratio(name, weights[name], inputs[name], group_size, v_rows, max_clip_tokens) if clip else None
        quantized[name] = build_int4_linear(quantize_groups(weights[name], group_size, clip_ratio), device)
    dtype = layer.attn_norm.dtype
    return LayerWeights(attn_norm=norms["attn_norm"].to(dtype), ffn_norm=norms["ffn_norm"].to(dtype), **quantized)


def _scaled_linears(weights: dict[str, torch.Tensor]) -> list[str]:
    """o_proj can only be scaled when its input channels are exactly the v channels (no GQA)."""
    names = ["qkv_proj", "gate_up_proj", "down_proj"]
    v_rows = _v_rows(weights)
    if v_rows.stop - v_rows.start == weights["o_proj"].shape[1]:
        names.append("o_proj")
    return names


def _fold_scale(name: str, scale: torch.Tensor, weights: dict[str, torch.Tensor], norms: dict[str, torch.Tensor],
                v_rows: slice) -> None:
    """W <- W diag(s) and the producer of W's input <- producer / s (in place)."""
    weights[name] *= scale
    if name == "qkv_proj":
        norms["attn_norm"] /= scale
    elif name == "gate_up_proj":
        norms["ffn_norm"] /= scale
    elif name == "down_proj":
        intermediate = weights["down_proj"].shape[1]
        weights["gate_up_proj"][intermediate:] /= scale.unsqueeze(1)
    else:
        weights["qkv_proj"][v_rows] /= scale.unsqueeze(1)


def _clip_ratio(name: str, weight: torch.Tensor, x: torch.Tensor, group_size: int, v_rows: slice,
                max_tokens: int) -> torch.Tensor:
    x = _evenly_spaced(x, max_tokens)
    if name != "qkv_proj":
        return search_clip(weight, x, group_size)
    ratio = torch.ones(weight.shape[0], padded_in_features(weight.shape[1], group_size) // group_size, device=weight.device)
    ratio[v_rows] = search_clip(weight[v_rows], x, group_size)
    return ratio


def _v_rows(weights: dict[str, torch.Tensor]) -> slice:
    """Rows of the fused qkv weight that produce v: [q (hq d) | k (hkv d) | v (hkv d)]."""
    qkv_rows, q_rows = weights["qkv_proj"].shape[0], weights["o_proj"].shape[1]
    kv_rows = (qkv_rows - q_rows) // 2
    return slice(q_rows + kv_rows, qkv_rows)


def _normalised(scale: torch.Tensor) -> torch.Tensor:
    return scale / (scale.max() * scale.min()).sqrt()


def _evenly_spaced(x: torch.Tensor, max_rows: int) -> torch.Tensor:
    if x.shape[0] <= max_rows:
        return x
    return x[torch.linspace(0, x.shape[0] - 1, max_rows).long()]


def _check_calibration(layer: LayerWeights, calib: dict[str, torch.Tensor]) -> None:
    for name in LINEAR_NAMES:
        if name not in calib:
            raise ValueError(f"calibration inputs for {name!r} are missing (need {list(LINEAR_NAMES)})")
        expected = getattr(layer, name).in_features
        x = calib[name]
        if x.dim() != 2 or x.shape[1] != expected or x.shape[0] == 0:
            raise ValueError(f"calibration inputs for {name!r} must be [N > 0, {expected}], got {tuple(x.shape)}")
