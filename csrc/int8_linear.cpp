// y = x @ (codes * scales[:, None]).T for a few fp32 rows of x, codes int8 per output channel: AVX2 + FMA.
//
// The weight is row-major int8 [N, K] with one fp32 scale per row, so y[m, n] = scale[n] * sum_k code[n, k] x[m, k].
// As in int4_linear.cpp, each thread streams its own weight rows once, x is held as int16 in blocks of 32
// (int16_activations.h: W8A16 numerics) and `madd` multiplies 16 codes with 16 activations at once. Columns past the
// last whole block stay fp32.
#include "cpu_kernels.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "avx2_math.h"
#include "gemv_tiles.h"
#include "int16_activations.h"

namespace morphserve {
namespace {

// The 32 codes at w, sign-extended.
__attribute__((target("avx2,fma"))) inline Int16Codes widen_block(const int8_t* w) {
  return Int16Codes{_mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w))),
                    _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 16)))};
}

struct Int8Kernel {
  const int8_t* codes;     // [N, K]
  const float* scales;     // [N]
  const float* x;          // [M, K]
  const int16_t* x_codes;  // [M, K / 32 * 32]
  const float* x_scales;   // [M, K / 32]
  float* y;                // [M, N]
  int64_t N, K;

  // y[m0 + i, n0 + r] for i < MT, r < NR (NR x MT independent accumulators).
  template <int MT, int NR>
  __attribute__((target("avx2,fma"))) void tile(int64_t m0, int64_t n0) const {
    const int64_t blocks = K / kActivationBlock, quantized = blocks * kActivationBlock;
    __m256 acc[NR][MT];
    for (int r = 0; r < NR; ++r)
      for (int i = 0; i < MT; ++i) acc[r][i] = _mm256_setzero_ps();
    for (int64_t k = 0; k < quantized; k += kActivationBlock) {
      __m256 xs[MT];
      for (int i = 0; i < MT; ++i) xs[i] = _mm256_broadcast_ss(x_scales + (m0 + i) * blocks + k / kActivationBlock);
      for (int r = 0; r < NR; ++r) {
        const int8_t* block = codes + (n0 + r) * K + k;
        prefetch_ahead(block, k);
        const Int16Codes w = widen_block(block);
        for (int i = 0; i < MT; ++i)
          acc[r][i] = _mm256_fmadd_ps(block_dot(w, x_codes + (m0 + i) * quantized + k), xs[i], acc[r][i]);
      }
    }
    for (int r = 0; r < NR; ++r) {
      const int8_t* row = codes + (n0 + r) * K;
      for (int i = 0; i < MT; ++i) {
        const float* xi = x + (m0 + i) * K;
        float sum = horizontal_sum(acc[r][i]);
        for (int64_t k = quantized; k < K; ++k) sum += static_cast<float>(row[k]) * xi[k];
        y[(m0 + i) * N + n0 + r] = scales[n0 + r] * sum;
      }
    }
  }
};

}  // namespace

torch::Tensor int8_linear(const torch::Tensor& x, const torch::Tensor& codes, const torch::Tensor& scales) {
  TORCH_CHECK_VALUE(cpu_supported(), "int8_linear needs a CPU with AVX2 and FMA");
  TORCH_CHECK_VALUE(x.device().is_cpu() && x.scalar_type() == at::kFloat && x.dim() == 2 && x.is_contiguous(),
                    "int8_linear: x must be a contiguous float32 [M, K] CPU tensor");
  TORCH_CHECK_VALUE(codes.device().is_cpu() && codes.scalar_type() == at::kChar && codes.dim() == 2 &&
                    codes.is_contiguous(), "int8_linear: the codes must be a contiguous int8 [N, K] CPU tensor");
  const int64_t M = x.size(0), K = x.size(1), N = codes.size(0);
  TORCH_CHECK_VALUE(codes.size(1) == K, "int8_linear: x has ", K, " columns but the weight ", codes.size(1));
  TORCH_CHECK_VALUE(scales.device().is_cpu() && scales.scalar_type() == at::kFloat && scales.is_contiguous() &&
                    scales.dim() == 1 && scales.size(0) == N, "int8_linear: scales must be a contiguous float32 [", N,
                    "] CPU tensor");
  TORCH_CHECK_VALUE(K > 0, "int8_linear: K must be positive");
  const Int16Rows x_int16 = quantize_rows(x.data_ptr<float>(), M, K, K / kActivationBlock);
  torch::Tensor y = torch::empty({M, N}, x.options());
  const Int8Kernel kernel{codes.data_ptr<int8_t>(), scales.data_ptr<float>(), x.data_ptr<float>(), x_int16.codes,
                          x_int16.scales, y.data_ptr<float>(), N, K};
  // At least 32 KiB of codes per task, so small matrices are not split into tasks that cost more to start.
  const int64_t grain = std::max<int64_t>(8, (int64_t{1} << 15) / K);
  at::parallel_for(0, N, grain, [&](int64_t begin, int64_t end) { for_each_tile(kernel, M, begin, end); });
  return y;
}

}  // namespace morphserve
