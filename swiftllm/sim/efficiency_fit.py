"""The roofline's efficiencies fitted to a measured operator table: what share of peak FLOP/s and of bandwidth a
decoder layer achieves. A GPU without a table (the L4) borrows the A100's."""
import statistics
from dataclasses import dataclass

from swiftllm.model_config import LlamaModelConfig
from swiftllm.sim.cost_model import TFLOP, RooflineOps
from swiftllm.sim.hardware import GB, HardwareSpec
from swiftllm.sim.profile_table import OpProfile

MEMORY_BOUND_TOKENS = 64        # at or below: a layer's time is its weight and activation bytes
COMPUTE_BOUND_TOKENS = 512      # at or above: its FLOPs


@dataclass(frozen=True, slots=True)
class Efficiencies:
    compute: float
    memory: float


def fit_efficiencies(profile: OpProfile, cfg: LlamaModelConfig, hardware: HardwareSpec) -> Efficiencies:
    """Mean achieved shares over the table's memory-bound and compute-bound token counts (the whole layer outside
    attention, as ``RooflineOps`` models it)."""
    roofline = RooflineOps(hardware, cfg)
    compute, memory = [], []
    for tokens in profile.tokens:
        seconds = profile.linear_time(tokens) + profile.other_time(tokens)
        if tokens <= MEMORY_BOUND_TOKENS:
            nbytes = (roofline.linear_params + tokens * roofline.activation_elements) * hardware.dtype_bytes
            memory.append(nbytes / (hardware.memory_bandwidth_gbs * GB * seconds))
        elif tokens >= COMPUTE_BOUND_TOKENS:
            compute.append(2 * tokens * roofline.linear_params / (hardware.peak_tflops * TFLOP * seconds))
    return Efficiencies(statistics.fmean(compute), statistics.fmean(memory))
