"""Build a swap order (LIS profiling or a simple order) and describe it as the JSON the controller reads.

The record: model id and hash, the INT4 variant and its hash (LIS only: simple orders need no
variant), the method and its parameters, ``"order"`` (``morph.controller.load_swap_order`` reads
it) and, for LIS, the scores of the layer chosen in each greedy round and the per-layer LTS / LRS.
"""
import dataclasses
import json
import logging
import time
from pathlib import Path

from experiments.eval.config import ProfileConfig
from experiments.eval.session import EvalSession
from morph.profiling import LisCoefficients, profile_lis, simple_order
from swiftllm.quant.variants import map_linears
from swiftllm.worker.layers.linear import DenseLinear
from swiftllm.worker.weight import LayerWeights

logger = logging.getLogger(__name__)


def swap_order_record(session: EvalSession, cfg: ProfileConfig, progress: bool = True) -> dict:
    """The swap order of ``cfg.method`` for the session's model, with what produced it."""
    record = {"model": session.model_name, "model_path": session.model_path, "model_hash": session.model_hash,
              "num_layers": session.num_layers, "method": cfg.method}
    if cfg.method != "lis":
        return record | {"parameters": {"seed": cfg.seed},
                         "order": list(simple_order(cfg.method, session.num_layers, cfg.seed))}
    return record | lis_record(session, cfg, progress)


def lis_record(session: EvalSession, cfg: ProfileConfig, progress: bool = True) -> dict:
    """Run Algorithm 1 towards ``cfg.int4_variant`` on the calibration windows; time it."""
    variant = [dequantized_layer(layer) for layer in session.variant(cfg.int4_variant)]
    calib = cfg.calibration
    sequences = session.calibration(calib.file, calib.seq_len, calib.num_seqs)
    coefficients = LisCoefficients(**dataclasses.asdict(cfg.coefficients))
    start, cpu_start = time.perf_counter(), time.process_time()
    profile = profile_lis(session.weights, session.cfg, variant, sequences, coefficients, progress)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    logger.info("LIS profiling of %d layers on %d x %d tokens took %.0f s (%.0f s of CPU time)", session.num_layers,
                calib.num_seqs, calib.seq_len, seconds, cpu_seconds)
    return {
        "variant": cfg.int4_variant, "variant_hash": session.variant_hash(cfg.int4_variant),
        "parameters": {"coefficients": dataclasses.asdict(coefficients), "calibration": dataclasses.asdict(calib)},
        "order": list(profile.order), "steps": [dataclasses.asdict(step) for step in profile.steps],
        "lts": list(profile.lts), "lrs": list(profile.lrs), "profiling_seconds": seconds,
        "profiling_cpu_seconds": cpu_seconds,
    }


def dequantized_layer(layer: LayerWeights) -> LayerWeights:
    """The layer with each linear a ``DenseLinear`` over its dequantized weight: the weights the quantized
    linears' float32 paths use (dequantize + GEMM exactly, the C++ INT4 kernel to float32 rounding), without
    dequantizing again at each of the ~L^3/6 calls."""
    return map_linears(layer, lambda _, op: DenseLinear(op.dequantized_weight()))


def write_swap_order(record: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path
