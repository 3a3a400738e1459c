// y = x @ dequant(W).T for a few fp32 rows of x, W group-wise INT4 in this project's row-major layout: AVX2 + FMA.
//
// Layout (swiftllm/quant/int4_layout.py): each output row n is K / 2 bytes; every 32 consecutive codes of the row
// (a chunk, 16 bytes) store code j in the low nibble and code j + 16 in the high nibble of byte j. Per row and group
// g a bf16 (scale, offset) pair gives w = (code - 8) * scale + offset, so with bias = offset - 8 * scale
//   y[m, n] = sum_g scale[n, g] * (sum_{k in g} code[n, k] x[m, k]) + bias[n, g] * (sum_{k in g} x[m, k]).
// A decode step is bound by how fast the weights stream: each thread streams its own rows once, unpacks every
// chunk to four float vectors and multiplies them with every activation row of the tile while the codes sit in
// registers. The activations stay fp32 (W4A32): the same function as dequantize-then-GEMM, summed in another order.
#include "cpu_kernels.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "avx2_math.h"
#include "gemv_tiles.h"

namespace morphserve {
namespace {

constexpr int64_t kChunk = 32;       // codes per 16-byte chunk
constexpr float kCodeOffset = 8.0f;

float bf16_to_float(uint16_t bits) {
  const uint32_t widened = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &widened, sizeof(value));
  return value;
}


// The 32 codes of one chunk as four float vectors: codes 0-7, 8-15, 16-23, 24-31.
__attribute__((target("avx2,fma"))) inline void unpack_chunk(const uint8_t* chunk, __m256 codes[4]) {
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(chunk));
  const __m128i mask = _mm_set1_epi8(0x0F);
  const __m128i low = _mm_and_si128(bytes, mask);                       // codes 0..15
  const __m128i high = _mm_and_si128(_mm_srli_epi16(bytes, 4), mask);   // codes 16..31
  codes[0] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(low));
  codes[1] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(low, 8)));
  codes[2] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(high));
  codes[3] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(high, 8)));
}

struct Int4Kernel {
  const uint8_t* codes;      // [N, K / 2]
  const uint16_t* params;    // [N, G, 2] bf16 bits: (scale, offset)
  const float* x;            // [M, K]
  const float* group_sums;   // [M, G]
  float* y;                  // [M, N]
  int64_t N, K, group_size;

  // y[m0 + i, n0 + r] for i < MT, r < NR, one group at a time (NR x MT independent accumulators).
  template <int MT, int NR>
  __attribute__((target("avx2,fma"))) void tile(int64_t m0, int64_t n0) const {
    const int64_t num_groups = K / group_size, row_bytes = K / 2;
    float out[NR][MT] = {};
    for (int64_t g = 0; g < num_groups; ++g) {
      __m256 acc[NR][MT];
      for (int r = 0; r < NR; ++r)
        for (int i = 0; i < MT; ++i) acc[r][i] = _mm256_setzero_ps();
      for (int64_t k = g * group_size; k < (g + 1) * group_size; k += kChunk) {
        for (int r = 0; r < NR; ++r) {
          __m256 c[4];
          unpack_chunk(codes + (n0 + r) * row_bytes + k / 2, c);
          for (int i = 0; i < MT; ++i) {
            const float* xk = x + (m0 + i) * K + k;
            acc[r][i] = _mm256_fmadd_ps(c[0], _mm256_loadu_ps(xk), acc[r][i]);
            acc[r][i] = _mm256_fmadd_ps(c[1], _mm256_loadu_ps(xk + 8), acc[r][i]);
            acc[r][i] = _mm256_fmadd_ps(c[2], _mm256_loadu_ps(xk + 16), acc[r][i]);
            acc[r][i] = _mm256_fmadd_ps(c[3], _mm256_loadu_ps(xk + 24), acc[r][i]);
          }
        }
      }
      for (int r = 0; r < NR; ++r) {
        const uint16_t* p = params + ((n0 + r) * num_groups + g) * 2;
        const float scale = bf16_to_float(p[0]), bias = bf16_to_float(p[1]) - kCodeOffset * scale;
        for (int i = 0; i < MT; ++i)
          out[r][i] += scale * horizontal_sum(acc[r][i]) + bias * group_sums[(m0 + i) * num_groups + g];
      }
    }
    for (int r = 0; r < NR; ++r)
      for (int i = 0; i < MT; ++i) y[(m0 + i) * N + n0 + r] = out[r][i];
  }
};

}  // namespace

torch::Tensor int4_linear(const torch::Tensor& x, const torch::Tensor& codes, const torch::Tensor& params,
                          int64_t group_size) {
  TORCH_CHECK_VALUE(cpu_supported(), "int4_linear needs a CPU with AVX2 and FMA");
  TORCH_CHECK_VALUE(x.device().is_cpu() && x.scalar_type() == at::kFloat && x.dim() == 2 && x.is_contiguous(),
                    "int4_linear: x must be a contiguous float32 [M, K] CPU tensor");
  TORCH_CHECK_VALUE(codes.device().is_cpu() && codes.scalar_type() == at::kByte && codes.dim() == 2 &&
                    codes.is_contiguous(), "int4_linear: the codes must be a contiguous uint8 [N, K / 2] CPU tensor");
  const int64_t M = x.size(0), K = x.size(1), N = codes.size(0);
  TORCH_CHECK_VALUE(codes.size(1) * 2 == K, "int4_linear: x has ", K, " columns but the weight ", codes.size(1) * 2);
  TORCH_CHECK_VALUE(group_size > 0 && group_size % kChunk == 0 && K % group_size == 0, "int4_linear: the group size ",
                    group_size, " must be a multiple of ", kChunk, " dividing K = ", K);
  TORCH_CHECK_VALUE(params.device().is_cpu() && params.scalar_type() == at::kBFloat16 && params.is_contiguous() &&
                    params.sizes() == torch::IntArrayRef({N, K / group_size, 2}),
                    "int4_linear: params must be contiguous bf16 [", N, ", ", K / group_size, ", 2], got ", params.sizes());
  const torch::Tensor group_sums = x.view({M, K / group_size, group_size}).sum(-1).contiguous();   // [M, G]
  torch::Tensor y = torch::empty({M, N}, x.options());
  const Int4Kernel kernel{codes.data_ptr<uint8_t>(), reinterpret_cast<const uint16_t*>(params.data_ptr()),
                          x.data_ptr<float>(), group_sums.data_ptr<float>(), y.data_ptr<float>(), N, K, group_size};
  // At least 32 KiB of codes per task, so small matrices are not split into tasks that cost more to start.
  const int64_t grain = std::max<int64_t>(8, (int64_t{1} << 15) / (K / 2));
  at::parallel_for(0, N, grain, [&](int64_t begin, int64_t end) { for_each_tile(kernel, M, begin, end); });
  return y;
}

}  // namespace morphserve
