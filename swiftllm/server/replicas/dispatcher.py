"""The Request Dispatcher's routing policy, as a pure function of what the ingress knows about each replica.

A replica's headroom is the KV blocks it has free after the requests it has not admitted yet: its waiting queue
(from its Serving Monitor's telemetry) and the requests this dispatcher sent it since that telemetry was taken,
each counted at the blocks it needs. The request goes to the replica with the most headroom; ties go to the shorter
queueing delay, then to fewer requests in flight, then to a random replica. Without telemetry from every replica (not yet reported, or
stale) the policy falls back to the power of two choices: two replicas drawn at random, the one with fewer
requests in flight wins.
"""
import random
from collections.abc import Sequence
from dataclasses import dataclass

from swiftllm.server.api.telemetry import EngineLoad


@dataclass(frozen=True, slots=True)
class ReplicaView:
    """``load``: the replica's latest telemetry, ``None`` when missing or stale; ``in_flight``: requests sent to it
    and not finished; ``blocks_sent_since_load``: KV blocks needed by the requests sent after ``load`` was taken."""
    load: EngineLoad | None
    in_flight: int
    blocks_sent_since_load: int = 0


def headroom_blocks(view: ReplicaView, request_blocks: int) -> float:
    """Free KV blocks once the replica admitted its waiting requests, those sent since its telemetry, and this one.
    A waiting request is assumed to need as many blocks as this one."""
    load = view.load
    unadmitted = load.num_waiting * request_blocks + view.blocks_sent_since_load + request_blocks
    return load.kv_free_blocks - unadmitted


def choose_replica(views: Sequence[ReplicaView], request_blocks: int, rng: random.Random) -> int:
    """The index of the replica that should serve a request needing ``request_blocks`` KV blocks."""
    if not views:
        raise ValueError("no replica to dispatch to")
    if any(view.load is None for view in views):
        return power_of_two_choices(views, rng)
    shuffled = rng.sample(range(len(views)), len(views))     # full ties go to a random replica
    return max(shuffled, key=lambda i: (headroom_blocks(views[i], request_blocks), -views[i].load.queueing_delay_s,
                                        -views[i].in_flight))


def power_of_two_choices(views: Sequence[ReplicaView], rng: random.Random) -> int:
    if len(views) == 1:
        return 0
    first, second = rng.sample(range(len(views)), 2)
    return first if views[first].in_flight <= views[second].in_flight else second


def round_robin(count: int, num_replicas: int) -> int:
    """The baseline the dispatcher is measured against: the ``count``-th request goes to replica count mod N."""
    return count % num_replicas
