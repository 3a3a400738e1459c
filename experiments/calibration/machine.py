"""This machine's speeds that the simulator needs: streaming read, the swap copy under decode load, the checksum."""
import time

import torch

from experiments.calibration.timing import median_seconds
from morph.plan import MorphPlan
from morph.runtime import MorphRuntime
from swiftllm.sampling_params import SamplingParams
from swiftllm.server.engine import LLMEngine
from swiftllm.worker.kernels.cpu_kernels import tensor_checksums

GiB = 1 << 30


def read_gbs() -> float:
    """A float32 ``sum`` over 1 GiB on the configured threads (the fastest stream this machine sustains)."""
    x = torch.ones(GiB // 4)
    return GiB / median_seconds(x.sum, repeats=5) / 1e9


def checksum_gbs() -> float:
    """The layer store's checksums over 64 MiB (``tensor_checksums``), on the configured threads."""
    data = torch.zeros(64 << 20, dtype=torch.uint8)
    return data.numel() / median_seconds(lambda: tensor_checksums(data), repeats=5) / 1e9


def swap_copy_gbs_under_load(engine: LLMEngine, runtime: MorphRuntime, num_layers: int = 4, trials: int = 3) -> float:
    """Bytes a swap copies per second while 8 requests decode: plans lowering and raising ``num_layers`` layers, timed
    from the plan to the boundary at which the last swap settled (a CPU copy checks its bytes as it goes: there is no
    separate verify time)."""
    for i in range(8):
        engine.add_request([1000 + 7 * i + j for j in range(64)],
                           SamplingParams(temperature=0, max_tokens=100_000 // 64, ignore_eos=True))
    for _ in range(4):
        engine.step()
    copied, seconds = 0, 0.0
    layers = runtime.swapper.store.num_layers
    for _ in range(trials):
        for target in ("int4", "fp"):
            plan = MorphPlan(tuple(target if i < num_layers else "fp" for i in range(layers)), "calibration")
            start = time.perf_counter()
            runtime.actuator.apply(plan, engine.clock())
            while runtime.actuator.busy or runtime.actuator.waiting:
                engine.step()
            copied += sum(e.bytes_copied for e in runtime.events[-num_layers:])
            seconds += time.perf_counter() - start
    for request_id in list(engine.requests):
        engine.abort(request_id)
    return copied / seconds / 1e9
