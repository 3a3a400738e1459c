// Checksums of a tensor's bytes for the layer store's variant verification, one per chunk of ``chunk_bytes``
// consecutive bytes, and a copy that computes them in the same pass over the bytes (a CPU swap reads its variant
// once). A chunk's checksum is CRC-32C (the SSE4.2 instruction) in four lanes at once, so the instruction's
// three-cycle latency is hidden, then CRC-32C of the four results and the tail's: any change of a single bit changes
// it. It is this project's own checksum (not a standard CRC of the buffer), computed the same way every time; the
// chunks run on torch's intra-op threads.
#include "cpu_kernels.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

namespace morphserve {
namespace {

__attribute__((target("sse4.2"))) uint32_t crc_bytes(uint32_t crc, const uint8_t* data, int64_t size) {
  for (; size >= 8; size -= 8, data += 8) {
    uint64_t word;
    std::memcpy(&word, data, sizeof(word));
    crc = static_cast<uint32_t>(_mm_crc32_u64(crc, word));
  }
  for (; size > 0; --size, ++data) crc = _mm_crc32_u8(crc, *data);
  return crc;
}

// The checksum of the ``size`` bytes at ``source``: four CRC-32C lanes over its 8-byte words in turn (lane j takes
// words j, j + 4, j + 8, ...), so each 32-byte block feeds the four lanes, then CRC-32C of the lanes and of the bytes
// past the last whole block. With kCopy the bytes are also copied to ``destination`` as they are read; whole blocks
// with non-temporal stores where ``destination`` is 32-byte aligned (the copy is not read back soon), so the copy
// does not read the destination's old bytes first.
template <bool kCopy>
__attribute__((target("sse4.2,avx2"))) uint32_t chunk_checksum(const uint8_t* source, uint8_t* destination,
                                                                int64_t size) {
  constexpr int64_t kBlock = 32;
  const int64_t blocks = size / kBlock;
  const bool stream = kCopy && reinterpret_cast<uintptr_t>(destination) % kBlock == 0;
  uint64_t lane0 = ~0u, lane1 = ~0u, lane2 = ~0u, lane3 = ~0u;
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* block = source + b * kBlock;
    const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block));
    if constexpr (kCopy) {
      auto* out = reinterpret_cast<__m256i*>(destination + b * kBlock);
      if (stream) _mm256_stream_si256(out, bytes); else _mm256_storeu_si256(out, bytes);
    }
    const __m128i low = _mm256_castsi256_si128(bytes), high = _mm256_extracti128_si256(bytes, 1);
    lane0 = _mm_crc32_u64(lane0, static_cast<uint64_t>(_mm_cvtsi128_si64(low)));
    lane1 = _mm_crc32_u64(lane1, static_cast<uint64_t>(_mm_extract_epi64(low, 1)));
    lane2 = _mm_crc32_u64(lane2, static_cast<uint64_t>(_mm_cvtsi128_si64(high)));
    lane3 = _mm_crc32_u64(lane3, static_cast<uint64_t>(_mm_extract_epi64(high, 1)));
  }
  const int64_t tail = size - blocks * kBlock;
  if constexpr (kCopy) {
    std::memcpy(destination + blocks * kBlock, source + blocks * kBlock, tail);
    if (stream) _mm_sfence();
  }
  uint32_t parts[5] = {static_cast<uint32_t>(lane0), static_cast<uint32_t>(lane1), static_cast<uint32_t>(lane2),
                       static_cast<uint32_t>(lane3), crc_bytes(~0u, source + blocks * kBlock, tail)};
  return ~crc_bytes(~0u, reinterpret_cast<const uint8_t*>(parts), sizeof(parts));
}

const uint8_t* bytes_of(const torch::Tensor& tensor) {
  return static_cast<const uint8_t*>(tensor.data_ptr());
}

int64_t nbytes_of(const torch::Tensor& tensor) {
  return tensor.numel() * tensor.element_size();
}

// Bytes [begin, end) of ``source``, checksummed chunk by chunk from ``begin`` and copied into the same bytes of
// ``destination`` when it is given.
struct Piece {
  const uint8_t* source;
  uint8_t* destination;
  int64_t begin, end;
};

// Each piece's chunk checksums; the chunks of all the pieces share the intra-op threads.
std::vector<std::vector<int64_t>> checksum_pieces(const std::vector<Piece>& pieces, int64_t chunk_bytes) {
  std::vector<std::vector<int64_t>> checksums(pieces.size());
  std::vector<std::pair<size_t, int64_t>> chunks;   // (piece, chunk number)
  for (size_t p = 0; p < pieces.size(); ++p) {
    const int64_t count = (pieces[p].end - pieces[p].begin + chunk_bytes - 1) / chunk_bytes;
    checksums[p].resize(static_cast<size_t>(count));
    for (int64_t c = 0; c < count; ++c) chunks.emplace_back(p, c);
  }
  at::parallel_for(0, static_cast<int64_t>(chunks.size()), 1, [&](int64_t first, int64_t last) {
    for (int64_t k = first; k < last; ++k) {
      const auto [p, c] = chunks[k];
      const Piece& piece = pieces[p];
      const int64_t offset = piece.begin + c * chunk_bytes, size = std::min(chunk_bytes, piece.end - offset);
      checksums[p][c] = piece.destination == nullptr
                            ? chunk_checksum<false>(piece.source + offset, nullptr, size)
                            : chunk_checksum<true>(piece.source + offset, piece.destination + offset, size);
    }
  });
  return checksums;
}

void check_chunk_bytes(int64_t chunk_bytes) {
  TORCH_CHECK_VALUE(chunk_bytes > 0 && chunk_bytes % 8 == 0, "checksum chunks must be a positive multiple of 8 bytes, "
                    "got ", chunk_bytes);
}

}  // namespace

bool checksum_supported() {
  return __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("avx2");
}

std::vector<int64_t> chunk_checksums(const torch::Tensor& tensor, int64_t chunk_bytes) {
  TORCH_CHECK_VALUE(checksum_supported(), "chunk_checksums needs a CPU with SSE4.2 and AVX2");
  TORCH_CHECK_VALUE(tensor.device().is_cpu() && tensor.is_contiguous(),
                    "chunk_checksums takes a contiguous CPU tensor");
  check_chunk_bytes(chunk_bytes);
  return checksum_pieces({Piece{bytes_of(tensor), nullptr, 0, nbytes_of(tensor)}}, chunk_bytes)[0];
}

std::vector<std::vector<int64_t>> copy_checksummed(const std::vector<torch::Tensor>& destinations,
                                                   const std::vector<torch::Tensor>& sources,
                                                   const std::vector<int64_t>& begins, const std::vector<int64_t>& ends,
                                                   int64_t chunk_bytes) {
  TORCH_CHECK_VALUE(checksum_supported(), "copy_checksummed needs a CPU with SSE4.2 and AVX2");
  TORCH_CHECK_VALUE(destinations.size() == sources.size() && sources.size() == begins.size() &&
                    begins.size() == ends.size(), "copy_checksummed: one destination, source, begin and end per piece");
  check_chunk_bytes(chunk_bytes);
  std::vector<Piece> pieces;
  for (size_t p = 0; p < sources.size(); ++p) {
    const torch::Tensor &destination = destinations[p], &source = sources[p];
    TORCH_CHECK_VALUE(destination.device().is_cpu() && source.device().is_cpu() && destination.is_contiguous() &&
                      source.is_contiguous(), "copy_checksummed takes contiguous CPU tensors");
    const int64_t size = nbytes_of(source), begin = begins[p], end = ends[p];
    TORCH_CHECK_VALUE(nbytes_of(destination) == size, "copy_checksummed: the destination has ",
                      nbytes_of(destination), " bytes, the source ", size);
    TORCH_CHECK_VALUE(0 <= begin && begin <= end && end <= size && begin % chunk_bytes == 0,
                      "copy_checksummed: bytes [", begin, ", ", end, ") do not start a chunk of ", chunk_bytes,
                      " bytes inside ", size, " bytes");
    pieces.push_back(Piece{bytes_of(source), static_cast<uint8_t*>(destination.data_ptr()), begin, end});
  }
  return checksum_pieces(pieces, chunk_bytes);
}

}  // namespace morphserve
