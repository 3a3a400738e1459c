"""The CUDA memory arena on a GPU: commits and releases move the driver's free memory by whole chunks, kept bytes
survive, a commit's zero-fill is ordered on the current stream, a release waits for the current stream only."""
import time

import torch

from swiftllm.worker.memory_arena import MemoryArena, copy_into

GiB = 1 << 30
SLEEP_CYCLES = 2_000_000_000          # torch.cuda._sleep: about a second at the H200's ~2 GHz


def _free_bytes(device) -> int:
    torch.cuda.synchronize(device)
    return torch.cuda.mem_get_info(device)[0]


def test_commit_and_release_move_the_free_memory_by_whole_chunks_and_keep_the_rest(cuda):
    arena = MemoryArena(2 * GiB, cuda)
    before = _free_bytes(cuda)
    assert arena.commit(0, GiB) == GiB
    assert before - _free_bytes(cuda) >= GiB
    words = arena.view(0, (GiB // 8,), torch.int64)
    words.copy_(torch.randint(-(1 << 62), 1 << 62, (GiB // 8,), device=cuda))
    half = GiB // 2
    kept_words = (half + arena.page_size) // 8                    # the half before the range and its partial chunk
    kept = words[:kept_words].clone()
    committed = _free_bytes(cuda)
    assert arena.release(half + 1000, half - 1000) == half - arena.page_size
    freed = _free_bytes(cuda) - committed
    assert freed >= half - arena.page_size and freed % arena.page_size == 0
    assert torch.equal(words[:kept_words], kept)


def test_a_commits_zero_fill_runs_on_the_current_stream(cuda):
    """The default stream is kept busy; a commit made with a side stream current must zero the chunk there, before
    the side stream's next write (a fill on the legacy default stream would land after it, erasing the data)."""
    arena = MemoryArena(64 << 20, cuda)
    side = torch.cuda.Stream(cuda)
    torch.cuda._sleep(SLEEP_CYCLES)                                   # on the default stream
    with torch.cuda.stream(side):
        arena.commit(0, 64 << 20)
        arena.view(0, (1 << 20,), torch.int32).fill_(7)
    torch.cuda.synchronize(cuda)
    assert torch.all(arena.view(0, (1 << 20,), torch.int32) == 7)


def test_a_release_waits_for_the_current_stream_only(cuda):
    arena = MemoryArena(64 << 20, cuda)
    arena.commit(0, 64 << 20)
    busy = torch.cuda.Stream(cuda)
    with torch.cuda.stream(busy):
        torch.cuda._sleep(SLEEP_CYCLES)
    start = time.perf_counter()
    arena.release(0, 64 << 20)
    released_in = time.perf_counter() - start
    still_busy = not busy.query()
    torch.cuda.synchronize(cuda)
    assert still_busy and released_in < 0.2, f"the release took {released_in:.3f} s: it waited for another stream"


def test_copy_into_from_pinned_memory_lands_on_the_current_stream(cuda):
    arena = MemoryArena(64 << 20, cuda)
    arena.commit(0, 64 << 20)
    source = torch.randn(4 << 20).pin_memory()
    side = torch.cuda.Stream(cuda)
    with torch.cuda.stream(side):
        copy_into(arena.view(0, (4 << 20,), torch.float32), source)
    side.synchronize()
    assert torch.equal(arena.view(0, (4 << 20,), torch.float32).cpu(), source)
