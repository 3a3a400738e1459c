"""Per-token provenance: how many decoder layers were quantized when each output token was produced."""
from collections import Counter
from collections.abc import Iterable, Sequence


def quantized_layer_shares(token_quantized_layers: Iterable[Sequence[int]]) -> dict[int, float]:
    """Share of all output tokens produced with ``k`` quantized layers, for every ``k`` seen (sorted)."""
    counts = Counter(k for per_request in token_quantized_layers for k in per_request)
    total = sum(counts.values())
    if total == 0:
        raise ValueError("no output tokens to summarize")
    return {k: counts[k] / total for k in sorted(counts)}


def provenance_summary(token_quantized_layers: Iterable[Sequence[int]]) -> dict[str, float]:
    """Mean quantized layers per token, share of tokens with any quantized layer, and the maximum seen."""
    shares = quantized_layer_shares(token_quantized_layers)
    return {
        "mean_quantized_layers_per_token": sum(k * share for k, share in shares.items()),
        "share_tokens_quantized": float(sum(share for k, share in shares.items() if k > 0)),
        "max_quantized_layers": max(shares),
    }
