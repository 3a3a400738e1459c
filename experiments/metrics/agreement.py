"""Token agreement between two runs of the same workload (e.g. a morphing policy vs full precision)."""
from collections.abc import Sequence

import numpy as np


def token_agreement(reference_outputs: Sequence[Sequence[int]],
                    candidate_outputs: Sequence[Sequence[int]]) -> dict[str, float]:
    """Outputs are aligned by request. Per request, ``prefix_agreement`` = common prefix length / longer
    length (1 for two empty outputs); ``exact_match_rate`` is the share of identical outputs."""
    if len(reference_outputs) != len(candidate_outputs):
        raise ValueError(f"{len(reference_outputs)} reference outputs but {len(candidate_outputs)} candidates")
    if not reference_outputs:
        raise ValueError("token_agreement needs at least one pair of outputs")
    pairs = list(zip(reference_outputs, candidate_outputs))
    return {
        "mean_prefix_agreement": float(np.mean([prefix_agreement(ref, cand) for ref, cand in pairs])),
        "exact_match_rate": float(np.mean([list(ref) == list(cand) for ref, cand in pairs])),
    }


def prefix_agreement(reference: Sequence[int], candidate: Sequence[int]) -> float:
    longer = max(len(reference), len(candidate))
    return 1.0 if longer == 0 else common_prefix_len(reference, candidate) / longer


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    """Number of leading positions where ``a`` and ``b`` hold the same token (index of the first divergence)."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))
