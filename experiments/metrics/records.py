"""Per-request records: what the metrics read, built from the engine's ``RequestOutput``, stored as JSONL.

All times are seconds on the engine clock; derived latencies are in seconds too (metrics convert to ms).
"""
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from swiftllm.server.structs import RequestOutput


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    prompt_len: int
    arrival_time: float
    first_scheduled_time: float | None
    token_times: list[float]              # when each output token was produced
    token_quantized_layers: list[int]     # quantized decoder layers while each output token was produced
    finish_time: float | None
    num_preemptions: int = 0
    finish_reason: str | None = None      # "length" | "stop" | "abort" | None (unfinished)
    output_token_ids: list[int] = field(default_factory=list)
    output_text: str = ""
    workload_index: int | None = None     # position in the replayed workload (pairs runs of the same workload)
    dataset_id: str | None = None
    reference_answers: list[str] | None = None

    @staticmethod
    def from_output(output: RequestOutput, workload_index: int | None = None, dataset_id: str | None = None,
                    reference_answers: list[str] | None = None) -> "RequestRecord":
        completion, metrics = output.outputs[0], output.metrics
        return RequestRecord(
            request_id=output.request_id, prompt_len=len(output.prompt_token_ids),
            arrival_time=metrics.arrival_time, first_scheduled_time=metrics.first_scheduled_time,
            token_times=list(completion.token_times), token_quantized_layers=list(completion.token_quantized_layers),
            finish_time=metrics.finished_time, num_preemptions=metrics.num_preemptions,
            finish_reason=completion.finish_reason, output_token_ids=list(completion.token_ids),
            output_text=completion.text, workload_index=workload_index, dataset_id=dataset_id,
            reference_answers=reference_answers,
        )

    @property
    def completed(self) -> bool:
        """Finished normally (not aborted) with at least one output token."""
        return self.finish_time is not None and bool(self.token_times) and self.finish_reason != "abort"

    @property
    def num_output_tokens(self) -> int:
        return len(self.token_times)

    @property
    def ttft_s(self) -> float | None:
        return self.token_times[0] - self.arrival_time if self.token_times else None

    @property
    def e2el_s(self) -> float | None:
        return self.finish_time - self.arrival_time if self.finish_time is not None else None

    @property
    def tpot_s(self) -> float | None:
        """vLLM: ``(e2el - ttft) / (n_out - 1)``; undefined for a single output token."""
        if not self.completed or self.num_output_tokens < 2:
            return None
        return (self.e2el_s - self.ttft_s) / (self.num_output_tokens - 1)

    @property
    def itls_s(self) -> list[float]:
        """Gaps between consecutive output tokens."""
        return [later - earlier for earlier, later in zip(self.token_times, self.token_times[1:])]

    @property
    def queueing_delay_s(self) -> float | None:
        return None if self.first_scheduled_time is None else self.first_scheduled_time - self.arrival_time


def save_records(records: list[RequestRecord], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(asdict(record), ensure_ascii=False) + "\n" for record in records)
    return path


def load_records(path: str | Path) -> list[RequestRecord]:
    with Path(path).open(encoding="utf-8") as f:
        return [RequestRecord(**json.loads(line)) for line in f if line.strip()]
