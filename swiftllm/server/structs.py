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
    token_ids: list[int] = field(init=False)
    status: RequestStatus = RequestStatus.WAITING
    num_computed: int = 0
    block_table: list[int] = field(default_factory=list)
    first_scheduled_time: float | None = None
    token_times: list[float] = field(default_factory=list)             # per output token: when it was made
    token_quantized_layers: list[int] = field(default_factory=list)    # ... how many layers were quantized then
    token_precision_versions: list[int] = field(default_factory=list)  # ... which precision map was in force
    finish_time: float | None = None
    finish_reason: str | None = None       # "length" | "stop" | "abort" | "error"
    num_preemptions: int = 0
    output_text: str = ""
    error: str | None = None               # why the request failed (finish_reason "error")

    def __post_init__(self):
        self.token_ids = list(self.prompt_token_ids)

    @property
    def output_token_ids(self) -> list[int]:
        return self.token_ids[len(self.prompt_token_ids):]

    @property
    def num_output_tokens(self) -> int:
        return len(self.token_ids) - len(self.prompt_token_ids)

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def num_uncomputed(self) -> int:
        return len(self.token_ids) - self.num_computed

    @property
    def is_finished(self) -> bool:
        return self.status == RequestStatus.FINISHED

    @property
    def first_token_time(self) -> float | None:
        return self.token_times[0] if self.token_times else None

    @property
    def token_records(self) -> list[TokenRecord]:
        return [TokenRecord(*record) for record in
                zip(self.token_times, self.token_quantized_layers, self.token_precision_versions)]

    def record_token(self, token: int, record: TokenRecord) -> None:
        self.token_ids.append(token)
        self.token_times.append(record.time)
        self.token_quantized_layers.append(record.num_quantized_layers)
        self.token_precision_versions.append(record.precision_version)


@dataclass(slots=True)
class CompletionOutput:
    """The generated text of one request (vLLM's shape), with when and under which precisions each token was made."""
    index: int
    text: str
    token_ids: list[int]
    finish_reason: str | None              # "length" | "stop" | "abort" | "error" | None while running
    token_times: list[float]               # engine clock when each token was produced
    token_quantized_layers: list[int]      # quantized decoder layers while each token was produced
    token_precision_versions: list[int]    # the morph runtime's precision map version of each token


@dataclass(slots=True)
class RequestMetrics:
    """Times on the engine clock, in seconds."""
    arrival_time: float
    first_scheduled_time: float | None
    first_token_time: float | None
    finished_time: float | None
    num_preemptions: int


@dataclass(slots=True)
class RequestOutput:
    """A snapshot of a request handed to callers after a step (streams) or at the end (offline), shaped like
    vLLM's: the completion is ``outputs[0]``."""
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]
    finished: bool
    metrics: RequestMetrics
    error: str | None = None           # set when the request failed inside a step (finish_reason "error")

    @staticmethod
    def of(req: Request) -> "RequestOutput":
        completion = CompletionOutput(
            index=0, text=req.output_text, token_ids=req.output_token_ids, finish_reason=req.finish_reason,
            token_times=list(req.token_times), token_quantized_layers=list(req.token_quantized_layers),
            token_precision_versions=list(req.token_precision_versions))
        metrics = RequestMetrics(req.arrival_time, req.first_scheduled_time, req.first_token_time, req.finish_time,
                                 req.num_preemptions)
        return RequestOutput(req.request_id, req.prompt, list(req.prompt_token_ids), [completion], req.is_finished,
                             metrics, req.error)


@dataclass(frozen=True, slots=True)
class KVResize:
    """One change of the KV pool's capacity (``LLMEngine.resize_kv_pool``)."""
    before: int             # capacity in blocks
    after: int
    moved_blocks: int       # live blocks copied below the new capacity (shrinks only)
    seconds: float          # engine-clock time the resize took


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
