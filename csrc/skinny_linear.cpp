// y = x @ w.T for a few rows of x (decode): fp32, AVX2 + FMA, rows of w split over torch's threads.
//
// A decode step multiplies 1-16 activation rows by every weight matrix, so it is bound by how fast
// the weights stream from memory. torch's fp32 GEMV on an [N, K] weight runs on one thread and
// reads about 14 GB/s on the project's 2-core machine, against 35 GB/s for a plain 2-thread sum.
// Here each thread streams its own block of weight rows once and multiplies every activation row
// with it while it is in L1.
#include "cpu_kernels.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "avx2_math.h"

namespace morphserve {
namespace {

constexpr int64_t kRowTile = 4;         // weight rows per inner tile (with up to three activation rows)
constexpr int64_t kSingleRowTile = 8;   // with one activation row: more weight rows in flight, ~20% more bandwidth
constexpr int64_t kLanes = 8;     // floats per AVX2 register

// y[m, n + r] for r < R and m0 <= m < m0 + MT: dot products of MT activation rows with R weight rows.
template <int R, int MT>
__attribute__((target("avx2,fma"))) void dot_tile(const float* x, const float* w, float* y, int64_t K, int64_t N,
                                                  int64_t n, int64_t m0) {
  __m256 acc[MT][R];
  for (int i = 0; i < MT; ++i)
    for (int r = 0; r < R; ++r) acc[i][r] = _mm256_setzero_ps();
  const int64_t k_vec = K - K % kLanes;
  for (int64_t k = 0; k < k_vec; k += kLanes) {
    __m256 wv[R];
    for (int r = 0; r < R; ++r) wv[r] = _mm256_loadu_ps(w + (n + r) * K + k);
    for (int i = 0; i < MT; ++i) {
      const __m256 xv = _mm256_loadu_ps(x + (m0 + i) * K + k);
      for (int r = 0; r < R; ++r) acc[i][r] = _mm256_fmadd_ps(wv[r], xv, acc[i][r]);
    }
  }
  for (int i = 0; i < MT; ++i) {
    for (int r = 0; r < R; ++r) {
      float sum = horizontal_sum(acc[i][r]);
      for (int64_t k = k_vec; k < K; ++k) sum += w[(n + r) * K + k] * x[(m0 + i) * K + k];
      y[(m0 + i) * N + n + r] = sum;
    }
  }
}

// Weight rows [n, n + R) against every row of x, three activation rows at a time (12 accumulators).
template <int R>
void row_block(const float* x, const float* w, float* y, int64_t M, int64_t K, int64_t N, int64_t n) {
  int64_t m = 0;
  for (; m + 3 <= M; m += 3) dot_tile<R, 3>(x, w, y, K, N, n, m);
  if (M - m == 2) {
    dot_tile<R, 2>(x, w, y, K, N, n, m);
  } else if (M - m == 1) {
    dot_tile<R, 1>(x, w, y, K, N, n, m);
  }
}

// Weight rows [n_begin, n_end) against every row of x.
void rows(const float* x, const float* w, float* y, int64_t M, int64_t K, int64_t N, int64_t n_begin,
          int64_t n_end) {
  int64_t n = n_begin;
  if (M == 1) {
    for (; n + kSingleRowTile <= n_end; n += kSingleRowTile) row_block<kSingleRowTile>(x, w, y, M, K, N, n);
  }
  for (; n + kRowTile <= n_end; n += kRowTile) row_block<kRowTile>(x, w, y, M, K, N, n);
  for (; n < n_end; ++n) row_block<1>(x, w, y, M, K, N, n);
}

}  // namespace

bool cpu_supported() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

torch::Tensor skinny_linear(const torch::Tensor& x, const torch::Tensor& w) {
  TORCH_CHECK_VALUE(cpu_supported(), "skinny_linear needs a CPU with AVX2 and FMA");
  TORCH_CHECK_VALUE(x.device().is_cpu() && w.device().is_cpu(), "skinny_linear takes CPU tensors");
  TORCH_CHECK_VALUE(x.scalar_type() == at::kFloat && w.scalar_type() == at::kFloat,
                    "skinny_linear takes float32 tensors, got ", x.scalar_type(), " and ", w.scalar_type());
  TORCH_CHECK_VALUE(x.dim() == 2 && w.dim() == 2 && x.size(1) == w.size(1), "skinny_linear: x ", x.sizes(),
                    " and w ", w.sizes(), " must be [M, K] and [N, K]");
  TORCH_CHECK_VALUE(x.is_contiguous() && w.is_contiguous(), "skinny_linear needs contiguous tensors");
  TORCH_CHECK_VALUE(x.size(1) > 0, "skinny_linear: K must be positive");
  const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
  torch::Tensor y = torch::empty({M, N}, x.options());
  const float* xp = x.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  // At least 64 KiB of weights per task, so small matrices are not split into tasks that cost more to start.
  const int64_t grain = std::max<int64_t>(kRowTile, (int64_t{1} << 16) / (K * static_cast<int64_t>(sizeof(float))));
  at::parallel_for(0, N, grain, [&](int64_t begin, int64_t end) { rows(xp, wp, yp, M, K, N, begin, end); });
  return y;
}

}  // namespace morphserve
