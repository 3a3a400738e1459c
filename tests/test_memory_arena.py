"""The CPU elastic memory arena (csrc/host_arena.cpp through swiftllm.worker.memory_arena)."""
import gc
import subprocess
import sys
import threading
import time

import pytest
import torch

from swiftllm.worker.memory_arena import MemoryArena, copy_into

MiB = 1 << 20


def rss_bytes() -> int:
    """Resident set size of this process, from /proc/self/status (kB)."""
    with open("/proc/self/status") as status:
        line = next(row for row in status if row.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


@pytest.fixture
def arena():
    return MemoryArena(256 * MiB)


def test_capacity_rounds_up_to_whole_pages():
    small = MemoryArena(1)
    assert small.page_size >= 4096 and small.capacity_bytes == small.page_size


def test_views_share_the_arena_bytes(arena):
    floats = arena.view(arena.page_size, (4, 8), torch.float32)
    floats.copy_(torch.arange(32, dtype=torch.float32).view(4, 8))
    raw = arena.view(arena.page_size, (128,), torch.uint8)
    assert torch.equal(raw.view(torch.float32).view(4, 8), floats)
    assert floats.data_ptr() == raw.data_ptr()


def test_untouched_memory_reads_as_zeros(arena):
    assert torch.count_nonzero(arena.view(0, (MiB,), torch.int64)) == 0


def test_release_returns_pages_to_the_os_and_reads_back_zeros(arena):
    nbytes = 64 * MiB
    region = arena.view(0, (nbytes,), torch.uint8)
    before_touch = rss_bytes()
    region.fill_(7)
    touched = rss_bytes()
    assert touched - before_touch > 0.9 * nbytes
    assert arena.release(0, nbytes) == nbytes
    assert touched - rss_bytes() > 0.9 * nbytes
    assert torch.count_nonzero(region) == 0


def test_release_keeps_partial_pages_at_both_ends(arena):
    page = arena.page_size
    region = arena.view(0, (3 * page,), torch.uint8)
    region.fill_(1)
    assert arena.release(100, 2 * page) == page          # only page 1 lies wholly inside
    assert torch.all(region[:page] == 1)
    assert torch.all(region[page:2 * page] == 0)
    assert torch.all(region[2 * page:] == 1)
    assert arena.release(page + 1, page - 2) == 0        # no whole page inside


def test_commit_backs_pages_without_changing_them(arena):
    page = arena.page_size
    values = arena.view(0, (1024,), torch.float64)
    values.copy_(torch.linspace(-1, 1, 1024, dtype=torch.float64))
    expected = values.clone()
    assert arena.commit(0, 8 * 1024) == 2 * page
    assert torch.equal(values, expected)
    before = rss_bytes()
    assert arena.commit(64 * MiB, 32 * MiB) == 32 * MiB
    assert rss_bytes() - before > 0.9 * 32 * MiB


def test_views_outlive_the_arena_object():
    arena = MemoryArena(8 * MiB)
    view = arena.view(4 * MiB, (1024,), torch.int32)
    del arena
    gc.collect()
    view.copy_(torch.arange(1024, dtype=torch.int32))
    assert int(view.sum()) == 1023 * 1024 // 2


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int8, torch.uint8])
def test_copy_into_equals_torch_copy(arena, dtype):
    src = (torch.randn(300, 577) * 50).to(dtype)
    dst = arena.view(4096, src.shape, dtype)
    expected = torch.empty_like(src).copy_(src)
    copy_into(dst, src)
    assert torch.equal(dst, expected)


def test_copy_into_accepts_another_shape_with_equal_numel(arena):
    src = torch.randn(6, 4)
    dst = arena.view(0, (24,), torch.float32)
    copy_into(dst, src)
    assert torch.equal(dst, src.flatten())


def test_copy_into_releases_the_gil(arena):
    """While a background thread copies 512 MiB, the main thread keeps running Python: the longest
    pause it sees is far shorter than one copy (it would span a whole copy if the GIL were held)."""
    nbytes = 512 * MiB
    src = torch.ones(nbytes, dtype=torch.uint8)
    dst = MemoryArena(nbytes).view(0, (nbytes,), torch.uint8)
    copy_seconds = []

    def copy_repeatedly():
        for _ in range(3):
            start = time.perf_counter()
            copy_into(dst, src)
            copy_seconds.append(time.perf_counter() - start)

    worker = threading.Thread(target=copy_repeatedly)
    longest_pause, last = 0.0, time.perf_counter()
    worker.start()
    while worker.is_alive():
        now = time.perf_counter()
        longest_pause, last = max(longest_pause, now - last), now
    worker.join()
    assert torch.equal(dst[-4096:], src[-4096:])
    assert longest_pause < 0.5 * min(copy_seconds), (longest_pause, copy_seconds)


@pytest.mark.parametrize("call,error,message", [
    (lambda a: a.view(a.capacity_bytes - 4, (2,), torch.float32), IndexError, "exceeds arena capacity"),
    (lambda a: a.view(2, (4,), torch.float32), ValueError, "not a multiple of the Float item size 4"),
    (lambda a: a.view(0, (4, -1), torch.float32), ValueError, "negative dimension"),
    (lambda a: a.view(0, (1 << 40, 1 << 40), torch.float32), ValueError, "overflows"),
    (lambda a: a.view(-8, (1,), torch.float32), ValueError, "offset must be a non-negative int"),
    (lambda a: a.release(a.capacity_bytes, 1), IndexError, "exceeds arena capacity"),
    (lambda a: a.commit(0, a.capacity_bytes + 1), IndexError, "exceeds arena capacity"),
    (lambda a: a.release(0, -1), ValueError, "nbytes must be a non-negative int"),
])
def test_bad_ranges_raise_clear_errors(arena, call, error, message):
    with pytest.raises(error, match=message):
        call(arena)


@pytest.mark.parametrize("dst,src,message", [
    (torch.zeros(3), torch.zeros(4), "size mismatch"),
    (torch.zeros(4), torch.zeros(4, dtype=torch.float64), "dtype mismatch"),
    (torch.zeros(4, 4).t(), torch.zeros(4, 4), "contiguous"),
])
def test_copy_into_rejects_mismatched_tensors(dst, src, message):
    with pytest.raises(ValueError, match=message):
        copy_into(dst, src)


@pytest.mark.parametrize("capacity,error", [(0, "must be positive"), (-1, "non-negative"), (1.5, "non-negative")])
def test_bad_capacity_is_refused(capacity, error):
    with pytest.raises(ValueError, match=error):
        MemoryArena(capacity)


def test_importing_the_wrapper_does_not_load_the_extension():
    code = "import sys, swiftllm.worker.memory_arena; assert 'swiftllm._arena_cpu' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
