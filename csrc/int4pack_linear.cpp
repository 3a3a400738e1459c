// y = x @ dequant(W).T for a few fp32 rows of x, W in torch's AVX2 CPU INT4 layout: AVX2 + FMA.
//
// Layout (swiftllm/quant/int4pack_layout.py, block_n = 32 with split halves): output rows come in
// blocks of 32, each stored as [K, 16] bytes; byte j of k holds row j (low nibble) and row j + 16
// (high nibble). Per group g and row r, w = code * scale + offset - 8 * scale, so
//   y[m, r] = sum_g scale[g, r] * (sum_{k in g} x[m, k] * code[k, r]) + (offset - 8 scale)[g, r] * sum_{k in g} x[m, k].
// Each group's codes are unpacked once per 32-row block and multiplied with three activation rows at a time.
// Unlike torch's kernel for this layout (bf16 activations only), x stays fp32.
#include "cpu_kernels.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace morphserve {
namespace {

constexpr int64_t kBlockRows = 32;
constexpr int kCodeOffset = 8;

float bf16_to_float(uint16_t bits) {
  const uint32_t widened = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &widened, sizeof(value));
  return value;
}

struct Int4Weights {
  const uint8_t* packed;            // [N / 32 blocks][K][16] bytes
  const uint16_t* scales_and_zeros; // [G, N, 2] bf16 bits: (scale, offset)
  int64_t N, K, group_size;
};

// codes[k - k_begin][0..31] = the 32 rows' codes at k, as floats, for k in [k_begin, k_end).
__attribute__((target("avx2,fma"))) void unpack_codes(const uint8_t* block, int64_t k_begin, int64_t k_end, float* codes) {
  const __m128i low_mask = _mm_set1_epi8(0x0F);
  for (int64_t k = k_begin; k < k_end; ++k, codes += kBlockRows) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + k * 16));
    const __m128i low = _mm_and_si128(bytes, low_mask);                         // rows 0..15
    const __m128i high = _mm_and_si128(_mm_srli_epi16(bytes, 4), low_mask);     // rows 16..31
    _mm256_storeu_ps(codes, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(low)));
    _mm256_storeu_ps(codes + 8, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(low, 8))));
    _mm256_storeu_ps(codes + 16, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(high)));
    _mm256_storeu_ps(codes + 24, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(high, 8))));
  }
}

// out[i][r] += scale[r] * sum_k x[i][k] code[k][r] + bias[r] * x_sum[i] over one group, for MT activation rows.
template <int MT>
__attribute__((target("avx2,fma"))) void group_rows(const float* codes, int64_t len, const float* const* x,
                                                    const float* x_sums, const float* scale, const float* bias,
                                                    float* const* out) {
  __m256 acc[MT][4];
  for (int i = 0; i < MT; ++i)
    for (int c = 0; c < 4; ++c) acc[i][c] = _mm256_setzero_ps();
  for (int64_t k = 0; k < len; ++k, codes += kBlockRows) {
    __m256 xk[MT];
    for (int i = 0; i < MT; ++i) xk[i] = _mm256_set1_ps(x[i][k]);
    for (int c = 0; c < 4; ++c) {
      const __m256 code = _mm256_loadu_ps(codes + 8 * c);
      for (int i = 0; i < MT; ++i) acc[i][c] = _mm256_fmadd_ps(code, xk[i], acc[i][c]);
    }
  }
  for (int i = 0; i < MT; ++i) {
    const __m256 x_sum = _mm256_set1_ps(x_sums[i]);
    for (int c = 0; c < 4; ++c) {
      const __m256 o = _mm256_loadu_ps(out[i] + 8 * c);
      const __m256 biased = _mm256_fmadd_ps(_mm256_loadu_ps(bias + 8 * c), x_sum, o);
      _mm256_storeu_ps(out[i] + 8 * c, _mm256_fmadd_ps(_mm256_loadu_ps(scale + 8 * c), acc[i][c], biased));
    }
  }
}

// Rows m0 .. m0 + MT - 1 of one group: pointers into x (at the group's first column), x_sums and out.
template <int MT>
void group_tile(const float* codes, int64_t len, const float* x, const float* x_group_sums, const float* scale,
                const float* bias, float* out, int64_t K, int64_t num_groups, int64_t k_begin, int64_t g, int64_t m0) {
  const float* rows[MT];
  float x_sums[MT];
  float* outs[MT];
  for (int i = 0; i < MT; ++i) {
    rows[i] = x + (m0 + i) * K + k_begin;
    x_sums[i] = x_group_sums[(m0 + i) * num_groups + g];
    outs[i] = out + (m0 + i) * kBlockRows;
  }
  group_rows<MT>(codes, len, rows, x_sums, scale, bias, outs);
}

// y[:, 32 b : 32 b + 32] for all M rows of x. Each group's codes are unpacked once, then read by three rows at a time.
void block_rows(const Int4Weights& w, const float* x, const float* x_group_sums, float* y, int64_t M, int64_t b,
                std::vector<float>& codes, std::vector<float>& out) {
  const int64_t num_groups = w.K / w.group_size;
  const uint8_t* block = w.packed + b * kBlockRows / 2 * w.K;
  codes.resize(w.group_size * kBlockRows);
  out.assign(M * kBlockRows, 0.0f);
  float scale[kBlockRows], bias[kBlockRows];
  for (int64_t g = 0; g < num_groups; ++g) {
    const int64_t k_begin = g * w.group_size;
    unpack_codes(block, k_begin, k_begin + w.group_size, codes.data());
    const uint16_t* params = w.scales_and_zeros + (g * w.N + b * kBlockRows) * 2;
    for (int64_t r = 0; r < kBlockRows; ++r) {
      scale[r] = bf16_to_float(params[2 * r]);
      bias[r] = bf16_to_float(params[2 * r + 1]) - kCodeOffset * scale[r];
    }
    int64_t m = 0;
    for (; m + 3 <= M; m += 3)
      group_tile<3>(codes.data(), w.group_size, x, x_group_sums, scale, bias, out.data(), w.K, num_groups, k_begin, g, m);
    if (M - m == 2) {
      group_tile<2>(codes.data(), w.group_size, x, x_group_sums, scale, bias, out.data(), w.K, num_groups, k_begin, g, m);
    } else if (M - m == 1) {
      group_tile<1>(codes.data(), w.group_size, x, x_group_sums, scale, bias, out.data(), w.K, num_groups, k_begin, g, m);
    }
  }
  for (int64_t m = 0; m < M; ++m)
    std::memcpy(y + m * w.N + b * kBlockRows, out.data() + m * kBlockRows, kBlockRows * sizeof(float));
}

}  // namespace

torch::Tensor int4pack_linear(const torch::Tensor& x, const torch::Tensor& packed, const torch::Tensor& scales_and_zeros,
                              int64_t group_size) {
  TORCH_CHECK_VALUE(cpu_supported(), "int4pack_linear needs a CPU with AVX2 and FMA");
  TORCH_CHECK_VALUE(x.device().is_cpu() && x.scalar_type() == at::kFloat && x.dim() == 2 && x.is_contiguous(),
                    "int4pack_linear: x must be a contiguous float32 [M, K] CPU tensor");
  TORCH_CHECK_VALUE(packed.scalar_type() == at::kByte && packed.dim() == 2 && packed.is_contiguous(),
                    "int4pack_linear: the packed weight must be contiguous uint8 [N, K / 2]");
  const int64_t M = x.size(0), K = x.size(1), N = packed.size(0);
  TORCH_CHECK_VALUE(packed.size(1) * 2 == K, "int4pack_linear: x has ", K, " columns but the weight ", packed.size(1) * 2);
  TORCH_CHECK_VALUE(N % kBlockRows == 0, "int4pack_linear: out_features ", N, " is not a multiple of ", kBlockRows);
  TORCH_CHECK_VALUE(group_size > 0 && K % group_size == 0, "int4pack_linear: K ", K, " is not a multiple of the group size ",
                    group_size);
  TORCH_CHECK_VALUE(scales_and_zeros.scalar_type() == at::kBFloat16 && scales_and_zeros.is_contiguous() &&
                    scales_and_zeros.sizes() == torch::IntArrayRef({K / group_size, N, 2}),
                    "int4pack_linear: scales_and_zeros must be contiguous bf16 [", K / group_size, ", ", N, ", 2], got ",
                    scales_and_zeros.sizes());
  const torch::Tensor group_sums = x.view({M, K / group_size, group_size}).sum(-1).contiguous();   // [M, G]
  torch::Tensor y = torch::empty({M, N}, x.options());
  const Int4Weights w{packed.data_ptr<uint8_t>(), reinterpret_cast<const uint16_t*>(scales_and_zeros.data_ptr()), N, K,
                      group_size};
  const float* x_p = x.data_ptr<float>();
  const float* sums_p = group_sums.data_ptr<float>();
  float* y_p = y.data_ptr<float>();
  at::parallel_for(0, N / kBlockRows, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> codes, out;
    for (int64_t b = begin; b < end; ++b) block_rows(w, x_p, sums_p, y_p, M, b, codes, out);
  });
  return y;
}

}  // namespace morphserve
