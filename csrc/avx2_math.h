// Small AVX2 + FMA building blocks shared by the CPU kernels: reductions, dot product, exp and softmax.
#pragma once

#include <immintrin.h>

#include <cmath>
#include <cstdint>

namespace morphserve {

__attribute__((target("avx2,fma"))) inline float horizontal_sum(__m256 v) {
  __m128 sum = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  sum = _mm_hadd_ps(sum, sum);
  sum = _mm_hadd_ps(sum, sum);
  return _mm_cvtss_f32(sum);
}

// The four horizontal sums {sum(a), sum(b), sum(c), sum(d)}.
__attribute__((target("avx2,fma"))) inline __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 ab_cd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  return _mm_add_ps(_mm256_castps256_ps128(ab_cd), _mm256_extractf128_ps(ab_cd, 1));
}

__attribute__((target("avx2,fma"))) inline float dot(const float* a, const float* b, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  float result = horizontal_sum(acc);
  for (; i < n; ++i) result += a[i] * b[i];
  return result;
}

// e^x for x in [-87, 88] (clamped there; NaN stays NaN), relative error ~2e-7: x = n ln2 + r, |r| <= ln2 / 2, e^r by the
// degree-7 polynomial of the Cephes expf, 2^n through the exponent bits.
__attribute__((target("avx2,fma"))) inline __m256 exp256(__m256 x) {
  // max/min return their second operand when one is NaN: x goes second, so a NaN stays NaN.
  x = _mm256_min_ps(_mm256_set1_ps(88.0f), _mm256_max_ps(_mm256_set1_ps(-87.0f), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i exponent = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(exponent));
}

// row[0, n) <- softmax(row[0, n)).
__attribute__((target("avx2,fma"))) inline void softmax_inplace(float* row, int64_t n) {
  __m256 max8 = _mm256_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) max8 = _mm256_max_ps(max8, _mm256_loadu_ps(row + i));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, max8);
  float max_value = lanes[0];
  for (int l = 1; l < 8; ++l) max_value = lanes[l] > max_value ? lanes[l] : max_value;
  for (int64_t r = i; r < n; ++r) max_value = row[r] > max_value ? row[r] : max_value;
  const __m256 shift = _mm256_set1_ps(max_value);
  __m256 total8 = _mm256_setzero_ps();
  for (i = 0; i + 8 <= n; i += 8) {
    const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(row + i), shift));
    _mm256_storeu_ps(row + i, e);
    total8 = _mm256_add_ps(total8, e);
  }
  float total = horizontal_sum(total8);
  for (; i < n; ++i) total += row[i] = std::exp(row[i] - max_value);
  const __m256 inverse = _mm256_set1_ps(1.0f / total);
  for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(row + i, _mm256_mul_ps(_mm256_loadu_ps(row + i), inverse));
  for (; i < n; ++i) row[i] *= 1.0f / total;
}

}  // namespace morphserve
