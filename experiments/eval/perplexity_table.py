"""The perplexity tool's rows: whole-model variants, k layers INT4 along an order, and a transformers cross-check."""
import logging
import time
from collections.abc import Callable

from experiments.eval.config import FULL_PRECISION, PerplexityConfig, SwapSection
from experiments.eval.hf_reference import hf_llama, hf_logits_fn
from experiments.eval.orders import resolve_order
from experiments.eval.perplexity import Perplexity, perplexity
from experiments.eval.session import EvalSession
from experiments.metrics.report import Row

logger = logging.getLogger(__name__)


def perplexity_rows(session: EvalSession, cfg: PerplexityConfig) -> list[Row]:
    """One row per whole-model variant, per swap count, and the cross-check (ours vs transformers)."""
    results = {name: variant_perplexity(session, name) for name in cfg.variants}
    rows = [_row(name, 0 if name == FULL_PRECISION else session.num_layers, *results[name]) for name in cfg.variants]
    rows += swap_rows(session, cfg.swap)
    if cfg.cross_check_hf is not None:
        name = cfg.cross_check_hf
        ours = results[name][0] if name in results else variant_perplexity(session, name)[0]
        rows.append(hf_cross_check_row(session, name, ours))
    return rows


def variant_perplexity(session: EvalSession, name: str) -> tuple[Perplexity, float]:
    """Every layer as variant ``name``: the perplexity and the seconds it took (preparing the variant excluded)."""
    layers = session.variant(name)
    return _timed(lambda: session.perplexity(layers, desc=name))


def swap_rows(session: EvalSession, swap: SwapSection) -> list[Row]:
    """The first k layers of ``swap.order`` as ``swap.int4_variant``, for each k of ``swap.counts``."""
    if not swap.counts:
        return []
    if max(swap.counts) > session.num_layers:
        raise ValueError(f"swap.counts go up to {max(swap.counts)}, the model has {session.num_layers} layers")
    order = resolve_order(swap.order, session.num_layers, swap.seed)
    rows = []
    for k in swap.counts:
        label = f"{swap.int4_variant} x{k} {swap.order}"
        layers = session.mixed(swap.int4_variant, order[:k])
        rows.append(_row(label, k, *_timed(lambda: session.perplexity(layers, desc=label)))
                    | {"quantized_layers": list(order[:k])})
    return rows


def hf_cross_check_row(session: EvalSession, name: str, ours: Perplexity) -> Row:
    """Variant ``name`` through transformers with the same dequantized weights, and its gap to ``ours``."""
    model = hf_llama(session.weights, session.cfg, session.variant(name))
    reference, seconds = _timed(lambda: perplexity(hf_logits_fn(model), session.test_windows, f"{name} (transformers)"))
    rel_diff = reference.ppl / ours.ppl - 1
    logger.info("cross-check %s: ours %.4f, transformers %.4f (%+.4f%%)", name, ours.ppl, reference.ppl, 100 * rel_diff)
    count = 0 if name == FULL_PRECISION else session.num_layers
    return _row(f"{name} (transformers)", count, reference, seconds) | {"ours_ppl": ours.ppl, "rel_diff": rel_diff}


def _timed(compute: Callable[[], Perplexity]) -> tuple[Perplexity, float]:
    start = time.perf_counter()
    result = compute()
    return result, time.perf_counter() - start


def _row(configuration: str, num_quantized: int, result: Perplexity, seconds: float) -> Row:
    return {"configuration": configuration, "quantized_layers_count": num_quantized, "ppl": result.ppl,
            "mean_nll": result.mean_nll, "num_tokens": result.num_tokens, "num_windows": result.num_windows,
            "seconds": seconds}
