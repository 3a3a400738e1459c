"""Swap orders named in configs: a simple order by name, or the ``order`` of a profiling JSON file."""
from experiments.eval.config import resolve_path
from morph.controller import load_swap_order
from morph.profiling import SIMPLE_ORDERS, simple_order


def resolve_order(order: str, num_layers: int, seed: int = 0) -> tuple[int, ...]:
    """``order``: one of ``SIMPLE_ORDERS`` (``seed`` drives ``random``) or the path of a profiling JSON file."""
    if order in SIMPLE_ORDERS:
        return simple_order(order, num_layers, seed)
    return load_swap_order(resolve_path(order), num_layers)
