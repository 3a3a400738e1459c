"""Control-plane records: requests, their outputs, and per-step statistics."""
import enum
import itertools
from dataclasses import dataclass, field

from swiftllm.sampling_params import SamplingParams

_request_ids = itertools.count()


class RequestStatus(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(slots=True)
class TokenRecord:
    """When a token was produced and how many decoder layers were quantized at that moment.

    ``precision_version`` names which layers: the morph runtime maps it to every layer's precision."""
    time: float
    num_quantized_layers: int
    precision_version: int = 0


@dataclass(eq=False)
class Request:
    """One generation request. ``token_ids`` = prompt + output; ``num_computed`` of them have KV in the cache."""
    prompt_token_ids: list[int]
    params: SamplingParams
    arrival_time: float
    request_id: str = field(default_factory=lambda: str(next(_request_ids)))
    prompt: str | None = None
    output_token_ids: list[int] = field(default_factory=list)
    status: RequestStatus = RequestStatus.WAITING
    num_computed: int = 0
    block_table: list[int] = field(default_factory=list)
    first_scheduled_time: float | None = None
    token_records: list[TokenRecord] = field(default_factory=list)
    finish_time: float | None = None
    finish_reason: str | None = None       # "length" | "stop" | "abort"
    num_preemptions: int = 0
    output_text: str = ""

    @property
    def token_ids(self) -> list[int]:
        return self.prompt_token_ids + self.output_token_ids

    @property
    def num_tokens(self) -> int:
        return len(self.prompt_token_ids) + len(self.output_token_ids)

    @property
    def num_uncomputed(self) -> int:
        return self.num_tokens - self.num_computed

    @property
    def is_finished(self) -> bool:
        return self.status == RequestStatus.FINISHED

    @property
    def first_token_time(self) -> float | None:
        return self.token_records[0].time if self.token_records else None


@dataclass(slots=True)
class RequestOutput:
    """A snapshot of a request handed to callers after a step (streams) or at the end (offline)."""
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    output_token_ids: list[int]
    output_text: str
    finished: bool
    finish_reason: str | None
    arrival_time: float
    first_scheduled_time: float | None
    token_times: list[float]
    token_quantized_layers: list[int]
    finish_time: float | None
    num_preemptions: int
    token_precision_versions: list[int] = field(default_factory=list)

    @staticmethod
    def of(req: Request) -> "RequestOutput":
        return RequestOutput(
            request_id=req.request_id, prompt=req.prompt, prompt_token_ids=list(req.prompt_token_ids),
            output_token_ids=list(req.output_token_ids), output_text=req.output_text,
            finished=req.is_finished, finish_reason=req.finish_reason, arrival_time=req.arrival_time,
            first_scheduled_time=req.first_scheduled_time,
            token_times=[r.time for r in req.token_records],
            token_quantized_layers=[r.num_quantized_layers for r in req.token_records],
            finish_time=req.finish_time, num_preemptions=req.num_preemptions,
            token_precision_versions=[r.precision_version for r in req.token_records],
        )


@dataclass(slots=True)
class StepStats:
    """What the engine reports at each step boundary (the Serving Monitor's input). Times in seconds."""
    time: float                      # engine clock at the end of the step
    duration: float                  # wall time of the step
    num_running: int
    num_waiting: int
    num_prefill_tokens: int
    num_decode_tokens: int
    kv_blocks_used: int
    kv_blocks_capacity: int
    oldest_waiting_time: float       # how long the head of the waiting queue has waited (0 if empty)
    blocked_on_kv: bool              # a waiting request could not be admitted, or a preemption happened, for lack of blocks
    num_preemptions: int             # preemptions during this step
    num_quantized_layers: int
    num_arrivals: int = 0            # requests added since the previous step
    num_finished: int = 0            # requests finished (stopped, length or aborted) since the previous step
    ttfts: list[float] = field(default_factory=list)     # first tokens produced in this step
    tpots: list[float] = field(default_factory=list)     # requests finished in this step
    weight_bytes: int = 0
    kv_bytes: int = 0
    workspace_bytes: int = 0
