// y = x @ dequant(W).T for a few fp32 rows of x, W group-wise INT4 in this project's row-major layout: AVX2 + FMA.
//
// Layout (swiftllm/quant/int4_layout.py): each output row n is K / 2 bytes; every 32 consecutive codes of the row
// (a chunk, 16 bytes) store code j in the low nibble and code j + 16 in the high nibble of byte j. Per row and group
// g a bf16 (scale, offset) pair gives w = (code - 8) * scale + offset, so with bias = offset - 8 * scale
//   y[m, n] = sum_g scale[n, g] * (sum_{k in g} code[n, k] x[m, k]) + bias[n, g] * (sum_{k in g} x[m, k]).
// A decode step is bound by how fast the weights stream, and turning 4-bit codes into fp32 operands costs more than
// reading them, so the code term multiplies integers: x is held as int16 in blocks of 32 (int16_activations.h) and
// `madd` multiplies 16 codes with 16 activations at once, summing pairs into int32. The bias term uses the fp32 group
// sums of x, so the only change from the fp32 function is x's rounding to 16 bits per block (2^-16 of its largest
// value): the numerics of W4A16.
#include "cpu_kernels.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "avx2_math.h"
#include "gemv_tiles.h"
#include "int16_activations.h"

namespace morphserve {
namespace {

constexpr int64_t kChunk = kActivationBlock;   // codes per 16-byte chunk: one activation block
constexpr float kCodeOffset = 8.0f;

float bf16_to_float(uint16_t bits) {
  const uint32_t widened = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &widened, sizeof(value));
  return value;
}

// The 32 codes of one chunk.
__attribute__((target("avx2,fma"))) inline Int16Codes unpack_chunk(const uint8_t* chunk) {
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(chunk));
  const __m128i mask = _mm_set1_epi8(0x0F);
  return Int16Codes{_mm256_cvtepu8_epi16(_mm_and_si128(bytes, mask)),
                    _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(bytes, 4), mask))};
}

// Per row of x [M, width], the sum of each weight group's columns (those at or past `width` are zeros): [M, groups],
// in a buffer of the calling thread, valid until its next call.
__attribute__((target("avx2,fma"))) const float* group_sums(const float* x, int64_t M, int64_t width,
                                                            int64_t num_groups, int64_t group_size) {
  thread_local std::vector<float> sums;
  sums.assign(static_cast<size_t>(M * num_groups), 0.0f);
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t g = 0; g < num_groups; ++g) {
      const int64_t begin = g * group_size, end = std::min(width, begin + group_size);
      const float* row = x + m * width;
      __m256 total = _mm256_setzero_ps();
      int64_t k = begin;
      for (; k + 8 <= end; k += 8) total = _mm256_add_ps(total, _mm256_loadu_ps(row + k));
      float sum = horizontal_sum(total);
      for (; k < end; ++k) sum += row[k];
      sums[m * num_groups + g] = sum;
    }
  }
  return sums.data();
}

struct Int4Kernel {
  const uint8_t* codes;      // [N, K / 2]
  const uint16_t* params;    // [N, G, 2] bf16 bits: (scale, offset)
  const int16_t* x_codes;    // [M, K] (x zero-padded to the weight's K)
  const float* x_scales;     // [M, K / 32]
  const float* group_sums;   // [M, G]
  float* y;                  // [M, N]
  int64_t N, K, group_size;

  // y[m0 + i, n0 + r] for i < MT, r < NR: per group, NR x MT block sums; the group's scale folds them into `dot`.
  template <int MT, int NR>
  __attribute__((target("avx2,fma"))) void tile(int64_t m0, int64_t n0) const {
    const int64_t num_groups = K / group_size, row_bytes = K / 2, blocks = K / kChunk;
    __m256 dot[NR][MT];
    float bias_term[NR][MT] = {};
    for (int r = 0; r < NR; ++r)
      for (int i = 0; i < MT; ++i) dot[r][i] = _mm256_setzero_ps();
    for (int64_t g = 0; g < num_groups; ++g) {
      __m256 acc[NR][MT];
      for (int r = 0; r < NR; ++r)
        for (int i = 0; i < MT; ++i) acc[r][i] = _mm256_setzero_ps();
      for (int64_t k = g * group_size; k < (g + 1) * group_size; k += kChunk) {
        __m256 xs[MT];
        for (int i = 0; i < MT; ++i) xs[i] = _mm256_broadcast_ss(x_scales + (m0 + i) * blocks + k / kChunk);
        for (int r = 0; r < NR; ++r) {
          const uint8_t* chunk = codes + (n0 + r) * row_bytes + k / 2;
          prefetch_ahead(chunk, k / 2);
          const Int16Codes w = unpack_chunk(chunk);
          for (int i = 0; i < MT; ++i)
            acc[r][i] = _mm256_fmadd_ps(block_dot(w, x_codes + (m0 + i) * K + k), xs[i], acc[r][i]);
        }
      }
      for (int r = 0; r < NR; ++r) {
        const uint16_t* p = params + ((n0 + r) * num_groups + g) * 2;
        const float scale = bf16_to_float(p[0]), bias = bf16_to_float(p[1]) - kCodeOffset * scale;
        const __m256 scale8 = _mm256_set1_ps(scale);
        for (int i = 0; i < MT; ++i) {
          dot[r][i] = _mm256_fmadd_ps(acc[r][i], scale8, dot[r][i]);
          bias_term[r][i] += bias * group_sums[(m0 + i) * num_groups + g];
        }
      }
    }
    for (int r = 0; r < NR; ++r)
      for (int i = 0; i < MT; ++i) y[(m0 + i) * N + n0 + r] = horizontal_sum(dot[r][i]) + bias_term[r][i];
  }
};

}  // namespace

torch::Tensor int4_linear(const torch::Tensor& x, const torch::Tensor& codes, const torch::Tensor& params,
                          int64_t group_size) {
  TORCH_CHECK_VALUE(cpu_supported(), "int4_linear needs a CPU with AVX2 and FMA");
  TORCH_CHECK_VALUE(x.device().is_cpu() && x.scalar_type() == at::kFloat && x.dim() == 2 && x.is_contiguous(),
                    "int4_linear: x must be a contiguous float32 [M, K'] CPU tensor, K' <= the weight's K");
  TORCH_CHECK_VALUE(codes.device().is_cpu() && codes.scalar_type() == at::kByte && codes.dim() == 2 &&
                    codes.is_contiguous(), "int4_linear: the codes must be a contiguous uint8 [N, K / 2] CPU tensor");
  const int64_t M = x.size(0), width = x.size(1), N = codes.size(0), K = codes.size(1) * 2;
  TORCH_CHECK_VALUE(width <= K, "int4_linear: x has ", width, " columns but the weight ", K);
  TORCH_CHECK_VALUE(group_size > 0 && group_size % kChunk == 0 && K % group_size == 0, "int4_linear: the group size ",
                    group_size, " must be a multiple of ", kChunk, " dividing K = ", K);
  TORCH_CHECK_VALUE(params.device().is_cpu() && params.scalar_type() == at::kBFloat16 && params.is_contiguous() &&
                    params.sizes() == torch::IntArrayRef({N, K / group_size, 2}),
                    "int4_linear: params must be contiguous bf16 [", N, ", ", K / group_size, ", 2], got ", params.sizes());
  const Int16Rows x_int16 = quantize_rows(x.data_ptr<float>(), M, width, K / kChunk);
  const float* sums = group_sums(x.data_ptr<float>(), M, width, K / group_size, group_size);
  torch::Tensor y = torch::empty({M, N}, x.options());
  const Int4Kernel kernel{codes.data_ptr<uint8_t>(), reinterpret_cast<const uint16_t*>(params.data_ptr()),
                          x_int16.codes, x_int16.scales, sums, y.data_ptr<float>(), N, K, group_size};
  // At least 32 KiB of codes per task, so small matrices are not split into tasks that cost more to start.
  const int64_t grain = std::max<int64_t>(8, (int64_t{1} << 15) / (K / 2));
  at::parallel_for(0, N, grain, [&](int64_t begin, int64_t end) { for_each_tile(kernel, M, begin, end); });
  return y;
}

}  // namespace morphserve
