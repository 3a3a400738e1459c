// Activations as integers for the quantized decode GEMVs (int4_linear.cpp, int8_linear.cpp): each row of x in blocks
// of 32 values, int16 codes with one fp32 scale per block (scale = max|x| / 32767, code = round(x / scale), half to
// even). x[m, k] ~= codes[m, k] * scales[m, k / 32], off by at most max|block| / 65534 per value: 2^-16 of the block's
// largest value, finer than the bf16 rounding of the INT4 scales. The caller says how many blocks: int4_linear.cpp
// all of its padded row, int8_linear.cpp the whole blocks of x (it multiplies a last partial block in fp32).
#pragma once

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace morphserve {

constexpr int64_t kActivationBlock = 32;
constexpr float kInt16Max = 32767.0f;

// The quantized rows live in buffers of the calling thread: valid until that thread's next quantize_rows.
struct Int16Rows {
  const int16_t* codes;   // [M, blocks * 32]
  const float* scales;    // [M, blocks]
};

// The 32 floats at x as int16 codes at out; returns their scale.
__attribute__((target("avx2,fma"))) inline float quantize_block(const float* x, int16_t* out) {
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);
  __m256 v[4];
  __m256 max_abs = _mm256_setzero_ps();
  for (int j = 0; j < 4; ++j) {
    v[j] = _mm256_loadu_ps(x + 8 * j);
    max_abs = _mm256_max_ps(max_abs, _mm256_andnot_ps(sign_bit, v[j]));
  }
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(max_abs), _mm256_extractf128_ps(max_abs, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  const float scale = _mm_cvtss_f32(m4) / kInt16Max;
  const __m256 inverse = _mm256_set1_ps(scale > 0.0f ? 1.0f / scale : 0.0f);
  for (int j = 0; j < 4; j += 2) {
    const __m256i low = _mm256_cvtps_epi32(_mm256_mul_ps(v[j], inverse));      // round to nearest even
    const __m256i high = _mm256_cvtps_epi32(_mm256_mul_ps(v[j + 1], inverse));
    // packs works per 128-bit lane: its quadwords come out in the order 0 2 1 3.
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packs_epi32(low, high), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 8 * j), packed);
  }
  return scale;
}

// 32 weight codes widened to int16: codes 0-15 and 16-31.
struct Int16Codes {
  __m256i low, high;
};

// sum_{k < 32} codes[k] x[k] as 8 int32 partial sums converted to float. Each lane adds 4 products of at most
// 128 x 32767 in magnitude (INT8 codes; INT4 codes are 0..15): no overflow.
__attribute__((target("avx2,fma"))) inline __m256 block_dot(const Int16Codes& codes, const int16_t* x) {
  const __m256i low = _mm256_madd_epi16(codes.low, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x)));
  const __m256i high = _mm256_madd_epi16(codes.high, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 16)));
  return _mm256_cvtepi32_ps(_mm256_add_epi32(low, high));
}

// Columns [0, 32 * blocks) of x: [M, width] float32, contiguous; columns at or past `width` count as zeros.
inline Int16Rows quantize_rows(const float* x, int64_t M, int64_t width, int64_t blocks) {
  thread_local std::vector<int16_t> codes;
  thread_local std::vector<float> scales;
  codes.resize(static_cast<size_t>(M * blocks * kActivationBlock));
  scales.resize(static_cast<size_t>(M * blocks));
  int16_t* codes_out = codes.data();
  float* scales_out = scales.data();
  const int64_t whole = std::min(blocks, width / kActivationBlock);
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(width, 1));   // 128 KiB per task
  at::parallel_for(0, M, grain, [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) {
      for (int64_t b = 0; b < blocks; ++b) {
        float padded[kActivationBlock] = {};
        const float* source = x + m * width + b * kActivationBlock;
        if (b >= whole) {                 // the partial last block, or padding past the row
          const int64_t present = std::max<int64_t>(0, width - b * kActivationBlock);
          std::copy(source, source + std::min(present, kActivationBlock), padded);
          source = padded;
        }
        scales_out[m * blocks + b] = quantize_block(source, codes_out + (m * blocks + b) * kActivationBlock);
      }
    }
  });
  return Int16Rows{codes_out, scales_out};
}

}  // namespace morphserve
