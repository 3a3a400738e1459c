"""Open-loop replay: each request is submitted at its trace time and stamped with that time.

A request's arrival time is the scheduled one, never the moment the driver got round to it, so a busy engine
cannot hide queueing (no coordinated omission).
"""
import asyncio

from tqdm import tqdm

from experiments.workload import WorkloadRequest
from swiftllm.sampling_params import SamplingParams
from swiftllm.server.async_engine import AsyncLLMEngine
from swiftllm.server.structs import RequestOutput


async def replay(engine: AsyncLLMEngine, workload: list[WorkloadRequest], ignore_eos: bool = True,
                 show_progress: bool = True) -> list[RequestOutput]:
    """Submit every request at ``start + arrival_s``; return each request's final output in workload order."""
    start = engine.engine.clock()
    progress = tqdm(total=len(workload), desc="replay", unit="req", disable=not show_progress)
    tasks = []
    for index, request in enumerate(workload):
        arrival = start + request.arrival_s
        await asyncio.sleep(max(0.0, arrival - engine.engine.clock()))
        params = SamplingParams(temperature=0.0, max_tokens=request.output_len, ignore_eos=ignore_eos)
        tasks.append(asyncio.create_task(_serve(engine, index, request, params, arrival, progress)))
    outputs = await asyncio.gather(*tasks)
    progress.close()
    return outputs


async def _serve(engine: AsyncLLMEngine, index: int, request: WorkloadRequest, params: SamplingParams, arrival: float,
                 progress) -> RequestOutput:
    last = None
    async for last in engine.generate(request.prompt_token_ids, params, request_id=f"w{index}", arrival_time=arrival):
        pass
    progress.update(1)
    return last
