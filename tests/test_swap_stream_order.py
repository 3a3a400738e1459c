"""Defect 2 of issue 13 on the CPU: the order in which a CUDA swap enqueues its work, recorded.

``CudaSwapCopier`` and ``MemoryArena`` reach CUDA's streams only through ``torch.cuda``'s surface (streams,
events, the current stream); a recorder stands in for it here and logs, per operation, the stream it went to.
What must hold: the copy stream waits for the *compute* stream (not for itself) before it copies, and the
zero-fill of a slot committed for a larger variant goes to the compute stream before that wait, so the copy
lands after it. ``tests/gpu/test_swap_gpu.py`` checks the same on a real GPU with ``torch.cuda._sleep``.
"""
from contextlib import contextmanager
from types import SimpleNamespace

import torch

from morph.layer_store import LayerStore
from morph.layer_swapper import DONE, LayerSwapper
from morph.plan import Precision
from morph.swap_copy import CudaSwapCopier
from swiftllm.quant.variants import quantize_layer_rtn
from swiftllm.worker.memory_arena import MemoryArena
from swiftllm.worker.weight import dense_layer
from swiftllm.worker.weight_slots import WeightSlots

CUDA = torch.device("cuda")


class RecordedStream:
    def __init__(self, name: str, log: list):
        self.name = name
        self.log = log
        self.cuda_stream = hash(name)

    def wait_stream(self, other: "RecordedStream") -> None:
        self.log.append(("wait", self.name, other.name))


class RecordedEvent:
    def __init__(self, log: list):
        self.log = log

    def record(self, stream: RecordedStream) -> None:
        self.log.append(("record", stream.name))

    def query(self) -> bool:
        return True

    def elapsed_time(self, other: "RecordedEvent") -> float:
        return 1.0


class RecordingCuda:
    """The part of ``torch.cuda`` the swap path uses; every stream operation lands in ``log``."""

    def __init__(self):
        self.log: list[tuple] = []
        self.current = RecordedStream("compute", self.log)

    def Stream(self, device) -> RecordedStream:  # noqa: N802 (torch.cuda's name)
        return RecordedStream("copy", self.log)

    def Event(self, enable_timing: bool) -> RecordedEvent:  # noqa: N802
        return RecordedEvent(self.log)

    def current_stream(self, device=None) -> RecordedStream:
        return self.current

    @contextmanager
    def stream(self, stream: RecordedStream):
        previous, self.current = self.current, stream
        try:
            yield
        finally:
            self.current = previous


class RecordingSlots(WeightSlots):
    """CPU weight slots that report a CUDA device and log on which stream each commit and copy was enqueued."""

    def __init__(self, layers, cuda: RecordingCuda):
        super().__init__(layers, "cpu")
        self.cuda = cuda
        self.arena = SimpleNamespace(device=CUDA, cpu_arena=self.arena)

    def views(self, i, variant):
        return self._on_cpu(lambda: super(RecordingSlots, self).views(i, variant))

    def copy_in(self, i, variant):
        self.cuda.log.append(("copy", self.cuda.current.name, i))
        self._on_cpu(lambda: super(RecordingSlots, self).copy_in(i, variant))

    def commit(self, i, nbytes):
        if nbytes > self.committed_bytes[i]:
            self.cuda.log.append(("commit", self.cuda.current.name, i))
        self._on_cpu(lambda: super(RecordingSlots, self).commit(i, nbytes))

    def release_tail(self, i, keep_bytes):
        return self._on_cpu(lambda: super(RecordingSlots, self).release_tail(i, keep_bytes))

    def _on_cpu(self, action):
        facade, self.arena = self.arena, self.arena.cpu_arena
        try:
            return action()
        finally:
            self.arena = facade


def _layer(seed: int):
    g = torch.Generator().manual_seed(seed)
    w = lambda rows, cols: torch.randn(rows, cols, generator=g)
    return dense_layer(torch.ones(64), w(64, 64), w(64, 64), w(64, 64), w(64, 64), torch.ones(64),
                       w(128, 64), w(128, 64), w(64, 128))


def _swapper(cuda: RecordingCuda) -> LayerSwapper:
    layers = [_layer(i) for i in range(2)]
    store = LayerStore({Precision.FP: layers, Precision.INT4: [quantize_layer_rtn(layer) for layer in layers]})
    slots = RecordingSlots(layers, cuda)
    return LayerSwapper(lambda i, layer: None, store, slots, CudaSwapCopier(slots, cuda=cuda))


def _settle(swapper: LayerSwapper) -> list:
    outcomes = []
    while swapper.in_flight:
        swapper.wait_for_work()
        outcomes += swapper.poll()
    return outcomes


def test_the_copy_stream_waits_for_the_compute_stream_before_it_copies():
    cuda = RecordingCuda()
    swapper = _swapper(cuda)
    cuda.log.clear()
    swapper.begin(1, Precision.INT4)
    assert [o.status for o in _settle(swapper)] == [DONE]
    assert cuda.log == [("wait", "copy", "compute"), ("record", "copy"), ("copy", "copy", 1), ("record", "copy")]
    assert cuda.current.name == "compute"
    swapper.close()


def test_a_raise_zero_fills_its_new_chunks_on_the_compute_stream_before_the_copy_waits_for_it():
    cuda = RecordingCuda()
    swapper = _swapper(cuda)
    swapper.begin(0, Precision.INT4)
    _settle(swapper)
    cuda.log.clear()
    swapper.begin(0, Precision.FP)
    assert [o.status for o in _settle(swapper)] == [DONE]
    assert cuda.log == [("commit", "compute", 0), ("wait", "copy", "compute"), ("record", "copy"),
                        ("copy", "copy", 0), ("record", "copy")]
    swapper.close()


def test_moving_the_layers_in_copies_on_the_compute_stream():
    cuda = RecordingCuda()
    _swapper(cuda).close()
    assert cuda.log == [("commit", "compute", 0), ("copy", "compute", 0), ("commit", "compute", 1),
                        ("copy", "compute", 1)]


class RecordingDeviceArena:
    def __init__(self):
        self.calls = []

    def commit(self, *args):
        self.calls.append(("commit", *args))
        return 0

    def release(self, *args):
        self.calls.append(("release", *args))
        return 0


def test_a_cuda_arena_commits_and_releases_on_the_current_stream(monkeypatch):
    arena = MemoryArena.__new__(MemoryArena)
    arena.device, arena._arena = CUDA, RecordingDeviceArena()
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: SimpleNamespace(cuda_stream=0xC0FFEE))
    arena.commit(0, 4096)
    arena.release(4096, 8192)
    assert arena._arena.calls == [("commit", 0, 4096, 0xC0FFEE), ("release", 4096, 8192, 0xC0FFEE)]
