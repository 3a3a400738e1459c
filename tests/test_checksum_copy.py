"""The layer store's checksums and the copy that computes them in the same pass (csrc/checksum.cpp)."""
import pytest
import torch

from swiftllm.worker.kernels import cpu_kernels
from swiftllm.worker.kernels.cpu_kernels import CHECKSUM_CHUNK_BYTES, copy_checksummed, tensor_checksums


@pytest.fixture(params=["crc32c", "zlib"])
def checksum_path(request, monkeypatch):
    """The C++ CRC-32C lanes, and the zlib fallback of a CPU without SSE4.2."""
    if request.param == "zlib":
        monkeypatch.setattr(cpu_kernels, "checksum_kernels", lambda: None)
    return request.param


def _bytes(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n,), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("nbytes", [0, 5, 24, 1000, CHECKSUM_CHUNK_BYTES, 3 * CHECKSUM_CHUNK_BYTES + 13])
def test_a_copy_in_pieces_gives_the_bytes_and_the_checksums_of_the_whole(nbytes, checksum_path):
    source = _bytes(nbytes)
    destination = torch.zeros(nbytes, dtype=torch.uint8)
    chunks = []
    for begin in range(0, nbytes, 2 * CHECKSUM_CHUNK_BYTES):
        [piece] = copy_checksummed([(destination, source, begin, min(nbytes, begin + 2 * CHECKSUM_CHUNK_BYTES))])
        chunks += piece
    assert torch.equal(destination, source)
    assert tuple(chunks) == tensor_checksums(source)
    assert len(chunks) == -(-nbytes // CHECKSUM_CHUNK_BYTES)


def test_one_call_copies_pieces_of_several_tensors_and_returns_each_ones_checksums(checksum_path):
    values = torch.randn(3 * CHECKSUM_CHUNK_BYTES // 4 + 7, generator=torch.Generator().manual_seed(1))
    codes = _bytes(1000, seed=3)
    copies = torch.empty_like(values), torch.empty_like(codes)
    tail = CHECKSUM_CHUNK_BYTES * 2
    checksums = copy_checksummed([(copies[0], values, tail, values.nbytes), (copies[1], codes, 0, codes.nbytes),
                                  (copies[0], values, 0, tail)])
    assert torch.equal(copies[0], values) and torch.equal(copies[1], codes)
    assert tuple(checksums[2] + checksums[0]) == tensor_checksums(values)
    assert tuple(checksums[1]) == tensor_checksums(codes) and copy_checksummed([]) == []


@pytest.mark.parametrize("position", [0, 7, CHECKSUM_CHUNK_BYTES // 3, CHECKSUM_CHUNK_BYTES - 1,
                                      CHECKSUM_CHUNK_BYTES + 2, 2 * CHECKSUM_CHUNK_BYTES + 99])
def test_one_flipped_bit_changes_the_checksum_of_its_chunk_only(position, checksum_path):
    data = _bytes(2 * CHECKSUM_CHUNK_BYTES + 100, seed=2)
    before = tensor_checksums(data)
    data[position] ^= 0x04
    after = tensor_checksums(data)
    changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
    assert changed == [position // CHECKSUM_CHUNK_BYTES]


def test_a_copy_refuses_pieces_that_do_not_start_a_chunk_or_do_not_fit():
    source, destination = _bytes(CHECKSUM_CHUNK_BYTES * 2), torch.empty(CHECKSUM_CHUNK_BYTES * 2, dtype=torch.uint8)
    with pytest.raises(ValueError, match="do not start a chunk"):
        copy_checksummed([(destination, source, 8, 64)])
    with pytest.raises(ValueError, match="do not start a chunk"):
        copy_checksummed([(destination, source, 0, 8), (destination, source, 0, CHECKSUM_CHUNK_BYTES * 2 + 1)])
    with pytest.raises(ValueError, match="the destination has 8 bytes, the source"):
        copy_checksummed([(torch.empty(8, dtype=torch.uint8), source, 0, 8)])
    with pytest.raises(ValueError, match="contiguous CPU tensors"):
        copy_checksummed([(torch.empty(2, CHECKSUM_CHUNK_BYTES, dtype=torch.uint8).t(), source, 0, 8)])
