"""Event-driven replay on a simulated engine: the same open-loop arrivals as ``driver.replay``, on virtual time.

Each request is added at the first step boundary at or after its arrival time (the moment the real async engine
would hand it over) and stamped with its arrival time. A step that runs nothing moves time on towards the next
arrival by at most ``idle_interval_s``, as the real loop ticks while idle, so the morph loop still sees time
pass. Nothing sleeps.
"""
import math
from collections import deque

from tqdm import tqdm

from experiments.workload import WorkloadRequest
from swiftllm.sampling_params import SamplingParams
from swiftllm.server.engine import LLMEngine
from swiftllm.server.structs import Request, RequestOutput
from swiftllm.sim.clock import VirtualClock

IDLE_INTERVAL_S = 0.01      # as AsyncLLMEngine's default


def replay_simulated(engine: LLMEngine, clock: VirtualClock, workload: list[WorkloadRequest], ignore_eos: bool = True,
                     show_progress: bool = True, idle_interval_s: float = IDLE_INTERVAL_S) -> list[RequestOutput]:
    """Run the workload to completion; each request's final output, in workload order."""
    start = clock()
    arrivals = deque(sorted(range(len(workload)), key=lambda i: workload[i].arrival_s))
    requests: list[Request | None] = [None] * len(workload)
    progress = tqdm(total=len(workload), desc="replay (simulated)", unit="req", disable=not show_progress)
    while arrivals or engine.has_unfinished():
        while arrivals and start + workload[arrivals[0]].arrival_s <= clock():
            index = arrivals.popleft()
            requests[index] = _submit(engine, index, workload[index], start, ignore_eos)
        before = clock()
        progress.update(sum(req.is_finished for req in engine.step_requests()))
        if clock() == before:
            next_arrival = start + workload[arrivals[0]].arrival_s if arrivals else math.inf
            clock.advance_to(min(next_arrival, before + idle_interval_s))
    progress.close()
    return [RequestOutput.of(request) for request in requests]


def _submit(engine: LLMEngine, index: int, request: WorkloadRequest, start: float, ignore_eos: bool) -> Request:
    params = SamplingParams(temperature=0.0, max_tokens=request.output_len, ignore_eos=ignore_eos, detokenize=False)
    return engine.add_request(request.prompt_token_ids, params, arrival_time=start + request.arrival_s,
                              request_id=f"w{index}")
