"""The ingress's engine client: every request goes to one engine replica, chosen by the Request Dispatcher.

A background task polls each replica's telemetry (its ``EngineHealth``: the Serving Monitor's load and its
heartbeat) every ``poll_interval_s``. The dispatcher sees, per replica, the latest telemetry (``None`` once older
than ``stale_after_s``), the requests in flight there and the KV blocks of those sent since the telemetry was asked
for.
"""
import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from swiftllm.sampling_params import SamplingParams
from swiftllm.server.api.engine_client import EngineHealth, Generation, ModelInfo
from swiftllm.server.api.telemetry import EngineLoad
from swiftllm.server.replicas.dispatcher import ReplicaView, choose_replica, round_robin
from swiftllm.server.tokenization import LlamaTokenizer

logger = logging.getLogger(__name__)

ROUTING_POLICIES = ("headroom", "round_robin")


@dataclass(slots=True)
class _Replica:
    handle: object                       # a Ray Serve DeploymentHandle of one EngineReplica
    telemetry: EngineHealth | None = None
    received_at: float = -float("inf")
    blocks_sent: int = 0                 # KV blocks of every request sent, ever
    blocks_sent_at_poll: int = 0         # ``blocks_sent`` when the latest telemetry was asked for
    in_flight: int = 0


class DispatchingClient:
    def __init__(self, handles: list, info: ModelInfo, tokenizer: LlamaTokenizer, routing: str = "headroom",
                 poll_interval_s: float = 0.05, stale_after_s: float = 1.0, seed: int = 0):
        self.info = info
        self.tokenizer = tokenizer
        self.set_routing(routing)
        self.poll_interval_s = poll_interval_s
        self.stale_after_s = stale_after_s
        self._replicas = [_Replica(handle) for handle in handles]
        self._rng = random.Random(seed)
        self._dispatched = 0
        self._poller: asyncio.Task | None = None

    def set_routing(self, routing: str) -> None:
        if routing not in ROUTING_POLICIES:
            raise ValueError(f"routing must be one of {ROUTING_POLICIES}, got {routing!r}")
        self.routing = routing

    def start(self) -> None:
        self._poller = asyncio.get_running_loop().create_task(self._poll_forever())

    async def generate(self, prompt_token_ids: list[int], params: SamplingParams,
                       request_id: str) -> AsyncIterator[Generation]:
        blocks = -(-min(len(prompt_token_ids) + params.max_tokens, self.info.max_model_len) // self.info.block_size)
        index = self._choose(blocks)
        replica = self._replicas[index]
        replica.blocks_sent += blocks
        replica.in_flight += 1
        try:
            stream = replica.handle.options(stream=True).generate.remote(prompt_token_ids, params, request_id)
            async for generation in stream:
                yield replace(generation, engine=str(index))
        except Exception as error:
            raise _unwrapped(error) from None
        finally:
            replica.in_flight -= 1

    def health(self) -> list[EngineHealth]:
        return [self._health_of(replica) for replica in self._replicas]

    def _choose(self, request_blocks: int) -> int:
        self._dispatched += 1
        if self.routing == "round_robin":
            return round_robin(self._dispatched - 1, len(self._replicas))
        views = [ReplicaView(self._fresh_load(replica), replica.in_flight,
                             replica.blocks_sent - replica.blocks_sent_at_poll) for replica in self._replicas]
        return choose_replica(views, request_blocks, self._rng)

    def _fresh_load(self, replica: _Replica) -> EngineLoad | None:
        if replica.telemetry is None or time.monotonic() - replica.received_at > self.stale_after_s:
            return None
        return replica.telemetry.load

    def _health_of(self, replica: _Replica) -> EngineHealth:
        """A replica without fresh telemetry is reported unhealthy (with its last known load, if any)."""
        telemetry, age = replica.telemetry, time.monotonic() - replica.received_at
        if telemetry is None:
            return EngineHealth(False, False, age, "no telemetry from this replica yet", None)
        if age > self.stale_after_s:
            return replace(telemetry, healthy=False, seconds_since_step=telemetry.seconds_since_step + age)
        return telemetry

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.gather(*(self._poll(replica) for replica in self._replicas))
            await asyncio.sleep(self.poll_interval_s)

    async def _poll(self, replica: _Replica) -> None:
        blocks_sent = replica.blocks_sent
        try:
            telemetry = await replica.handle.telemetry.remote()
        except Exception as failure:
            logger.warning("telemetry poll failed: %r", failure)
            return
        replica.telemetry, replica.received_at, replica.blocks_sent_at_poll = telemetry, time.monotonic(), blocks_sent


def _unwrapped(error: Exception) -> Exception:
    """The replica's own exception (a refused request's ValueError, an EngineStepError) rather than Ray's wrapper."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, Exception) else error
