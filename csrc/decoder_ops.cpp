// The elementwise ops of a decoder layer on the CPU, fp32, AVX2 + FMA: RMSNorm (alone and fused with the
// residual add), the split of the QKV projection with the rotary embedding, the KV-cache store and
// SiLU-and-multiply.
//
// Each is one pass over its rows where torch runs three to six kernels with temporaries; at decode sizes
// (one to a few dozen rows of 576-3072 floats) torch's per-op overhead is most of the cost. Rows are split
// over torch's threads only when there are enough of them to pay for starting the threads.
#include "cpu_kernels.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "avx2_math.h"

namespace morphserve {
namespace {

constexpr int64_t kLanes = 8;
constexpr int64_t kFloatsPerTask = 1 << 15;   // 128 KiB of a row-wise op per thread task

// Rows per task for rows of `width` floats: one task (no threads started) below kFloatsPerTask in all.
int64_t row_grain(int64_t width) { return std::max<int64_t>(1, kFloatsPerTask / std::max<int64_t>(width, 1)); }

// out[i] = x[i] * rsqrt(mean(x^2) + eps) * weight[i] over one row of n floats.
__attribute__((target("avx2,fma"))) void rmsnorm_row(const float* x, const float* weight, float eps, int64_t n,
                                                     float* out) {
  __m256 squares = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const __m256 v = _mm256_loadu_ps(x + i);
    squares = _mm256_fmadd_ps(v, v, squares);
  }
  float sum = horizontal_sum(squares);
  for (; i < n; ++i) sum += x[i] * x[i];
  const float inverse_rms = 1.0f / std::sqrt(sum / static_cast<float>(n) + eps);
  const __m256 factor = _mm256_set1_ps(inverse_rms);
  for (i = 0; i + kLanes <= n; i += kLanes) {
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), factor), _mm256_loadu_ps(weight + i)));
  }
  for (; i < n; ++i) out[i] = x[i] * inverse_rms * weight[i];
}

// x[i] += y[i] over n floats.
__attribute__((target("avx2,fma"))) void add_row(float* x, const float* y, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) _mm256_storeu_ps(x + i, _mm256_add_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) x[i] += y[i];
}

// Rotate-half rotary of one head vector of d = 2 half floats: out = [x1 c - x2 s, x2 c + x1 s].
__attribute__((target("avx2,fma"))) void rotate_head(const float* x, const float* cos, const float* sin, int64_t half,
                                                     float* out) {
  int64_t i = 0;
  for (; i + kLanes <= half; i += kLanes) {
    const __m256 x1 = _mm256_loadu_ps(x + i), x2 = _mm256_loadu_ps(x + half + i);
    const __m256 c = _mm256_loadu_ps(cos + i), s = _mm256_loadu_ps(sin + i);
    _mm256_storeu_ps(out + i, _mm256_fnmadd_ps(x2, s, _mm256_mul_ps(x1, c)));
    _mm256_storeu_ps(out + half + i, _mm256_fmadd_ps(x1, s, _mm256_mul_ps(x2, c)));
  }
  for (; i < half; ++i) {
    const float x1 = x[i], x2 = x[half + i];
    out[i] = x1 * cos[i] - x2 * sin[i];
    out[half + i] = x2 * cos[i] + x1 * sin[i];
  }
}

// out[i] = silu(gate[i]) * up[i] = gate[i] / (1 + e^-gate[i]) * up[i] over n floats.
__attribute__((target("avx2,fma"))) void silu_mul_row(const float* gate, const float* up, int64_t n, float* out) {
  const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 sigmoid = _mm256_div_ps(one, _mm256_add_ps(one, exp256(_mm256_sub_ps(zero, g))));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(g, sigmoid), _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void check_float_cpu(const torch::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK_VALUE(t.device().is_cpu() && t.scalar_type() == at::kFloat, op, " takes float32 CPU tensors, got ", name,
                    " as ", t.scalar_type(), " on ", t.device());
}

// x: [M, H] with contiguous rows; weight: [H] contiguous.
void check_norm_args(const torch::Tensor& x, const torch::Tensor& weight, const char* op) {
  TORCH_CHECK_VALUE(cpu_supported(), op, " needs a CPU with AVX2 and FMA");
  check_float_cpu(x, op, "x");
  check_float_cpu(weight, op, "weight");
  TORCH_CHECK_VALUE(x.dim() == 2 && x.stride(1) == 1, op, ": x must be [M, H] with contiguous rows, got ", x.sizes(),
                    " strides ", x.strides());
  TORCH_CHECK_VALUE(weight.dim() == 1 && weight.size(0) == x.size(1) && weight.is_contiguous(), op, ": weight must be [",
                    x.size(1), "], got ", weight.sizes());
}

// [T, heads, d] with each row's heads contiguous (any row stride).
void check_head_rows(const torch::Tensor& t, const char* op, const char* name) {
  check_float_cpu(t, op, name);
  TORCH_CHECK_VALUE(t.dim() == 3 && t.stride(2) == 1 && t.stride(1) == t.size(2), op, ": ", name,
                    " must be [T, heads, head_dim] with each row's heads contiguous, got ", t.sizes(), " strides ",
                    t.strides());
}

}  // namespace

torch::Tensor rmsnorm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  check_norm_args(x, weight, "rmsnorm");
  const int64_t M = x.size(0), H = x.size(1), x_stride = x.stride(0);
  torch::Tensor out = torch::empty({M, H}, x.options());
  const float* xp = x.data_ptr<float>();
  const float* wp = weight.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, M, row_grain(H), [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) rmsnorm_row(xp + m * x_stride, wp, static_cast<float>(eps), H, op + m * H);
  });
  return out;
}

torch::Tensor add_rmsnorm_(torch::Tensor& residual, const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  check_norm_args(residual, weight, "add_rmsnorm_");
  TORCH_CHECK_VALUE(!residual.requires_grad(), "add_rmsnorm_ adds into residual in place, outside autograd: it must not "
                    "require grad");
  check_float_cpu(x, "add_rmsnorm_", "x");
  TORCH_CHECK_VALUE(residual.is_contiguous() && x.is_contiguous() && x.sizes() == residual.sizes(),
                    "add_rmsnorm_: residual and x must be contiguous and of one shape, got ", residual.sizes(), " and ",
                    x.sizes());
  const int64_t M = residual.size(0), H = residual.size(1);
  torch::Tensor out = torch::empty({M, H}, residual.options());
  float* rp = residual.data_ptr<float>();
  const float* xp = x.data_ptr<float>();
  const float* wp = weight.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, M, row_grain(H), [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) {
      add_row(rp + m * H, xp + m * H, H);
      rmsnorm_row(rp + m * H, wp, static_cast<float>(eps), H, op + m * H);
    }
  });
  return out;
}

std::vector<torch::Tensor> split_qkv_rotary(const torch::Tensor& qkv, const torch::Tensor& cos, const torch::Tensor& sin,
                                            int64_t num_q_heads, int64_t num_kv_heads) {
  TORCH_CHECK_VALUE(cpu_supported(), "split_qkv_rotary needs a CPU with AVX2 and FMA");
  check_float_cpu(qkv, "split_qkv_rotary", "qkv");
  check_float_cpu(cos, "split_qkv_rotary", "cos");
  check_float_cpu(sin, "split_qkv_rotary", "sin");
  TORCH_CHECK_VALUE(num_q_heads > 0 && num_kv_heads > 0, "split_qkv_rotary: head counts must be positive");
  const int64_t T = qkv.size(0), heads = num_q_heads + num_kv_heads, half = cos.dim() == 2 ? cos.size(1) : 0;
  const int64_t d = 2 * half;
  TORCH_CHECK_VALUE(d > 0 && qkv.dim() == 2 && qkv.stride(1) == 1 && qkv.size(1) == (heads + num_kv_heads) * d,
                    "split_qkv_rotary: qkv must be [T, (", num_q_heads, " + 2 x ", num_kv_heads, ") x ", d,
                    "] with contiguous rows, got ", qkv.sizes());
  TORCH_CHECK_VALUE(cos.size(0) == T && cos.stride(1) == 1 && sin.sizes() == cos.sizes() && sin.stride(1) == 1,
                    "split_qkv_rotary: cos and sin must be [", T, ", head_dim / 2] with contiguous rows, got ",
                    cos.sizes(), " and ", sin.sizes());
  torch::Tensor q = torch::empty({T, num_q_heads, d}, qkv.options());
  torch::Tensor k = torch::empty({T, num_kv_heads, d}, qkv.options());
  const float* xp = qkv.data_ptr<float>();
  const float* cp = cos.data_ptr<float>();
  const float* sp = sin.data_ptr<float>();
  float* qp = q.data_ptr<float>();
  float* kp = k.data_ptr<float>();
  const int64_t row_stride = qkv.stride(0);
  at::parallel_for(0, T, row_grain(heads * d), [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const float* c = cp + t * cos.stride(0);
      const float* s = sp + t * sin.stride(0);
      for (int64_t h = 0; h < heads; ++h) {
        float* out = h < num_q_heads ? qp + (t * num_q_heads + h) * d : kp + (t * num_kv_heads + h - num_q_heads) * d;
        rotate_head(xp + t * row_stride + h * d, c, s, half, out);
      }
    }
  });
  torch::Tensor v = qkv.narrow(1, heads * d, num_kv_heads * d).view({T, num_kv_heads, d});
  return {q, k, v};
}

void store_kv(torch::Tensor& k_cache, torch::Tensor& v_cache, const torch::Tensor& k, const torch::Tensor& v,
              const torch::Tensor& slot_mapping) {
  TORCH_CHECK_VALUE(cpu_supported(), "store_kv needs a CPU with AVX2 and FMA");
  check_head_rows(k, "store_kv", "k");
  check_head_rows(v, "store_kv", "v");
  check_float_cpu(k_cache, "store_kv", "k_cache");
  check_float_cpu(v_cache, "store_kv", "v_cache");
  TORCH_CHECK_VALUE(k_cache.dim() == 4 && k_cache.is_contiguous() && v_cache.is_contiguous() &&
                    k_cache.sizes() == v_cache.sizes(), "store_kv: the caches must be contiguous "
                    "[num_blocks, block_size, hkv, d] of one shape, got ", k_cache.sizes(), " and ", v_cache.sizes());
  const int64_t T = k.size(0), row = k.size(1) * k.size(2);
  TORCH_CHECK_VALUE(k.sizes() == v.sizes() && k.size(1) == k_cache.size(2) && k.size(2) == k_cache.size(3),
                    "store_kv: k and v must be [T, ", k_cache.size(2), ", ", k_cache.size(3), "], got ", k.sizes(),
                    " and ", v.sizes());
  TORCH_CHECK_VALUE(slot_mapping.device().is_cpu() && slot_mapping.dim() == 1 && slot_mapping.size(0) == T,
                    "store_kv: slot_mapping must be [", T, "] on the CPU, got ", slot_mapping.sizes(), " on ",
                    slot_mapping.device());
  TORCH_CHECK_VALUE(!k_cache.requires_grad() && !v_cache.requires_grad(),
                    "store_kv writes the caches in place, outside autograd: they must not require grad");
  const torch::Tensor slots = slot_mapping.to(at::kLong).contiguous();
  const int64_t* sp = slots.data_ptr<int64_t>();
  const int64_t num_slots = k_cache.size(0) * k_cache.size(1);
  for (int64_t t = 0; t < T; ++t) {
    TORCH_CHECK_INDEX(sp[t] >= 0 && sp[t] < num_slots, "store_kv: slot ", sp[t], " of row ", t, " is outside [0, ",
                      num_slots, ")");
  }
  float* kc = k_cache.data_ptr<float>();
  float* vc = v_cache.data_ptr<float>();
  const float* kp = k.data_ptr<float>();
  const float* vp = v.data_ptr<float>();
  for (int64_t t = 0; t < T; ++t) {
    std::memcpy(kc + sp[t] * row, kp + t * k.stride(0), row * sizeof(float));
    std::memcpy(vc + sp[t] * row, vp + t * v.stride(0), row * sizeof(float));
  }
}

torch::Tensor silu_and_mul(const torch::Tensor& gate_up) {
  TORCH_CHECK_VALUE(cpu_supported(), "silu_and_mul needs a CPU with AVX2 and FMA");
  check_float_cpu(gate_up, "silu_and_mul", "gate_up");
  TORCH_CHECK_VALUE(gate_up.dim() == 2 && gate_up.stride(1) == 1 && gate_up.size(1) % 2 == 0,
                    "silu_and_mul: gate_up must be [T, 2 I] with contiguous rows, got ", gate_up.sizes());
  const int64_t T = gate_up.size(0), I = gate_up.size(1) / 2, stride = gate_up.stride(0);
  torch::Tensor out = torch::empty({T, I}, gate_up.options());
  const float* gp = gate_up.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, T, row_grain(2 * I), [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) silu_mul_row(gp + t * stride, gp + t * stride + I, I, op + t * I);
  });
  return out;
}

}  // namespace morphserve
