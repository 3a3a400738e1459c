"""The swap order a morph policy runs with, from its ``swap_order`` source, and a record of which it is.

- ``front_to_back``, ``back_to_front``, ``random`` (seeded): as named.
- a JSON path: a profiling file (``experiments/profile_layers.py``) or a plain list of layer indices; a file that
  names the model or the variant it was made for must match this model (fingerprint) and INT4 variant.
- ``lis``: the LIS profile in ``profile_dir`` made for this model (same ``model_fingerprint``) and this variant
  (same variant name); when there is none, or the engine is simulated (no weights to fingerprint), front to back,
  and the choice says why. Several matching profiles are an error: name one as the source.
"""
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from morph.controller import load_swap_order
from morph.policy_config import SwapOrderSpec
from morph.profiling import SIMPLE_ORDERS, front_to_back, simple_order

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SwapOrderChoice:
    """The order used, what it came from (``lis``, a simple order's name or a file path) and why."""
    order: tuple[int, ...]
    source: str
    detail: str


def choose_swap_order(spec: SwapOrderSpec, num_layers: int, variant: str,
                      model_hash: Callable[[], str | None]) -> SwapOrderChoice:
    """``model_hash``: computes this model's fingerprint (``None`` for a simulated model) when a check needs it."""
    if spec.source in SIMPLE_ORDERS:
        choice = SwapOrderChoice(simple_order(spec.source, num_layers, spec.seed), spec.source, "configured")
    elif spec.source == "lis":
        choice = _lis_or_front_to_back(Path(spec.profile_dir), num_layers, variant, model_hash())
    else:
        _check_profile(Path(spec.source), variant, model_hash)
        choice = SwapOrderChoice(load_swap_order(spec.source, num_layers), spec.source, "configured profile file")
    log = logger.info if choice.source == spec.source else logger.warning
    log("swap order: %s (%s): %s", choice.source, choice.detail, list(choice.order))
    return choice


def _lis_or_front_to_back(profile_dir: Path, num_layers: int, variant: str, model_hash: str | None) -> SwapOrderChoice:
    if model_hash is None:
        return _front_to_back(num_layers, "simulated model: no weights to match a LIS profile against")
    records = {path: _profile_of(path) for path in sorted(profile_dir.glob("*.json"))}
    matches = [path for path, record in records.items()
               if record.get("method") == "lis" and _made_for(record, model_hash, variant)]
    if len(matches) > 1:
        raise ValueError(f"several LIS profiles for this model and variant {variant} in {profile_dir}: "
                         f"{[str(p) for p in matches]}; choose one with policy.swap_order.source=<path>")
    if not matches:
        return _front_to_back(num_layers, f"no LIS profile for model {model_hash[:12]} and variant {variant} in "
                                          f"{profile_dir} (write one with experiments/profile_layers.py "
                                          f"int4_variant={variant})")
    return SwapOrderChoice(load_swap_order(matches[0], num_layers), "lis", f"profile {matches[0]}")


def _front_to_back(num_layers: int, reason: str) -> SwapOrderChoice:
    return SwapOrderChoice(front_to_back(num_layers), "front_to_back", reason)


def _check_profile(path: Path, variant: str, model_hash: Callable[[], str | None]) -> None:
    """A profile that names its model or variant must name this one."""
    record = _profile_of(path) if path.is_file() else {}
    if "variant" in record and record["variant"] != variant:
        raise ValueError(f"swap order file {path} was profiled for variant {record['variant']}, this run quantizes "
                         f"to {variant}")
    if "model_hash" in record:
        actual = model_hash()
        if actual is not None and record["model_hash"] != actual:
            raise ValueError(f"swap order file {path} was profiled on another model "
                             f"({record['model_hash'][:12]}, this one is {actual[:12]})")


def _made_for(record: dict, model_hash: str, variant: str) -> bool:
    return record.get("model_hash") == model_hash and record.get("variant") == variant


def _profile_of(path: Path) -> dict:
    """The profiling record in ``path``; ``{}`` for a plain list or a file that is not JSON."""
    try:
        content = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return content if isinstance(content, dict) else {}
