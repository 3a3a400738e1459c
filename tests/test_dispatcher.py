"""The Request Dispatcher's routing policy (a pure function): most KV headroom after the unadmitted requests, ties by
queueing delay then requests in flight, power of two choices without telemetry."""
import random
from collections import Counter

import pytest

from swiftllm.server.api.telemetry import EngineLoad
from swiftllm.server.replicas.dispatcher import (ReplicaView, choose_replica, headroom_blocks, power_of_two_choices,
                                                 round_robin)


def load(used=0, capacity=100, running=0, waiting=0, delay=0.0) -> EngineLoad:
    return EngineLoad(used, capacity, running, waiting, delay, 0)


RNG = random.Random(0)


def test_the_replica_with_the_most_free_blocks_wins():
    views = [ReplicaView(load(used=60), 1), ReplicaView(load(used=20), 5), ReplicaView(load(used=40), 0)]
    assert choose_replica(views, request_blocks=2, rng=RNG) == 1


def test_a_morphed_replica_with_a_larger_pool_has_more_headroom():
    same_use = [ReplicaView(load(used=50, capacity=100), 0), ReplicaView(load(used=50, capacity=180), 0)]
    assert choose_replica(same_use, 2, RNG) == 1


def test_waiting_requests_and_requests_sent_since_the_telemetry_count_against_headroom():
    view = ReplicaView(load(used=10, capacity=100, waiting=3), in_flight=4, blocks_sent_since_load=12)
    assert headroom_blocks(view, request_blocks=5) == 100 - 10 - (3 * 5 + 12 + 5)
    queued = [ReplicaView(load(used=10, waiting=8), 0), ReplicaView(load(used=30), 0)]
    assert choose_replica(queued, 4, RNG) == 1
    just_sent = [ReplicaView(load(used=10), 0, blocks_sent_since_load=40), ReplicaView(load(used=30), 0)]
    assert choose_replica(just_sent, 4, RNG) == 1


def test_ties_go_to_the_shorter_queueing_delay_then_fewer_in_flight_then_at_random():
    by_delay = [ReplicaView(load(used=10, delay=0.5), 0), ReplicaView(load(used=10, delay=0.1), 3)]
    assert choose_replica(by_delay, 1, RNG) == 1
    by_in_flight = [ReplicaView(load(used=10), 3), ReplicaView(load(used=10), 2)]
    assert choose_replica(by_in_flight, 1, RNG) == 1
    identical = [ReplicaView(load(), 0), ReplicaView(load(), 0)]
    assert set(Counter(choose_replica(identical, 1, random.Random(s)) for s in range(40))) == {0, 1}


def test_a_burst_with_stale_telemetry_spreads_over_the_replicas():
    """Telemetry taken before the burst: each request sent lowers its replica's headroom, so they alternate."""
    blocks_sent = [0, 0]
    for _ in range(10):
        views = [ReplicaView(load(used=0), 0, blocks_sent[i]) for i in range(2)]
        blocks_sent[choose_replica(views, 3, RNG)] += 3
    assert blocks_sent == [15, 15]


def test_without_telemetry_from_every_replica_it_is_the_power_of_two_choices():
    views = [ReplicaView(None, 9), ReplicaView(load(), 1), ReplicaView(load(used=99), 5)]
    picks = Counter(choose_replica(views, 1, random.Random(seed)) for seed in range(200))
    assert picks[0] == 0                  # the busiest replica loses every pair it is drawn in
    assert picks[1] > picks[2] > 0        # replica 1 wins both its pairs, replica 2 only the pair with replica 0
    assert power_of_two_choices([ReplicaView(None, 0)], RNG) == 0


def test_round_robin_and_no_replica():
    assert [round_robin(i, 3) for i in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    with pytest.raises(ValueError, match="no replica"):
        choose_replica([], 1, RNG)
