// Decode attention over the paged KV cache on the CPU: fp32, AVX2 + FMA, one task per (sequence, KV head).
//
// Each task reads its sequence's keys and values once, straight from the cache blocks named by the
// block table (no gathered copy), for all query heads of its GQA group: scores, softmax, weighted sum.
#include "cpu_kernels.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace morphserve {
namespace {

__attribute__((target("avx2,fma"))) inline float dot(const float* a, const float* b, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  __m128 sum = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  sum = _mm_hadd_ps(sum, sum);
  sum = _mm_hadd_ps(sum, sum);
  float result = _mm_cvtss_f32(sum);
  for (; i < n; ++i) result += a[i] * b[i];
  return result;
}

// y += a * x
__attribute__((target("avx2,fma"))) inline void axpy(float a, const float* x, float* y, int64_t n) {
  const __m256 av = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}

struct CacheGeometry {
  int64_t block_size, num_kv_heads, head_dim;

  // Offset (in floats) of position `pos`'s vector for KV head `head`, given the sequence's block table.
  int64_t offset(const int64_t* table, int64_t pos, int64_t head) const {
    const int64_t slot = table[pos / block_size] * block_size + pos % block_size;
    return (slot * num_kv_heads + head) * head_dim;
  }
};

// out[j] for the `group` query heads q[j] that share KV head `head` of one sequence of `len` positions.
__attribute__((target("avx2,fma"))) void attend_one_head(const float* q, const float* k_cache, const float* v_cache, const int64_t* table, int64_t len,
                     int64_t head, int64_t group, float scale, const CacheGeometry& cache, float* out,
                     std::vector<float>& scores) {
  const int64_t d = cache.head_dim;
  scores.assign(group * len, 0.0f);                                    // [group, len]
  for (int64_t t = 0; t < len; ++t) {
    const float* key = k_cache + cache.offset(table, t, head);
    for (int64_t j = 0; j < group; ++j) scores[j * len + t] = dot(q + j * d, key, d) * scale;
  }
  for (int64_t j = 0; j < group; ++j) {
    float* row = scores.data() + j * len;
    const float max_score = *std::max_element(row, row + len);
    float total = 0.0f;
    for (int64_t t = 0; t < len; ++t) total += row[t] = std::exp(row[t] - max_score);
    for (int64_t t = 0; t < len; ++t) row[t] /= total;
    std::fill(out + j * d, out + (j + 1) * d, 0.0f);
  }
  for (int64_t t = 0; t < len; ++t) {
    const float* value = v_cache + cache.offset(table, t, head);
    for (int64_t j = 0; j < group; ++j) axpy(scores[j * len + t], value, out + j * d, d);
  }
}

}  // namespace

torch::Tensor paged_decode_attention(const torch::Tensor& q, const torch::Tensor& k_cache, const torch::Tensor& v_cache,
                                     const torch::Tensor& block_tables, const torch::Tensor& seq_lens, double scale) {
  TORCH_CHECK_VALUE(cpu_supported(), "paged_decode_attention needs a CPU with AVX2 and FMA");
  for (const torch::Tensor* t : {&q, &k_cache, &v_cache}) {
    TORCH_CHECK_VALUE(t->device().is_cpu() && t->scalar_type() == at::kFloat && t->is_contiguous(),
                      "paged_decode_attention takes contiguous float32 CPU tensors for q and the caches");
  }
  TORCH_CHECK_VALUE(q.dim() == 3 && k_cache.dim() == 4 && k_cache.sizes() == v_cache.sizes(),
                    "q must be [S, hq, d] and the caches [num_blocks, block_size, hkv, d], got ", q.sizes(), ", ",
                    k_cache.sizes(), ", ", v_cache.sizes());
  const int64_t num_seqs = q.size(0), num_q_heads = q.size(1), head_dim = q.size(2);
  const CacheGeometry cache{k_cache.size(1), k_cache.size(2), k_cache.size(3)};
  TORCH_CHECK_VALUE(head_dim == cache.head_dim && num_q_heads % cache.num_kv_heads == 0, "q heads ", num_q_heads,
                    " x ", head_dim, " do not fit KV heads ", cache.num_kv_heads, " x ", cache.head_dim);
  TORCH_CHECK_VALUE(block_tables.dim() == 2 && block_tables.size(0) == num_seqs && seq_lens.dim() == 1 &&
                    seq_lens.size(0) == num_seqs, "block_tables must be [S, max_blocks] and seq_lens [S]");
  const torch::Tensor tables = block_tables.to(at::kLong).contiguous();
  const torch::Tensor lens = seq_lens.to(at::kLong).contiguous();
  const int64_t* lens_p = lens.data_ptr<int64_t>();
  const int64_t num_blocks = k_cache.size(0), max_blocks = tables.size(1);
  const int64_t* tables_p = tables.data_ptr<int64_t>();
  for (int64_t s = 0; s < num_seqs; ++s) {
    TORCH_CHECK_VALUE(lens_p[s] >= 1 && lens_p[s] <= max_blocks * cache.block_size, "sequence ", s, " has length ",
                      lens_p[s], ", outside [1, ", max_blocks * cache.block_size, "]");
    const int64_t* used = tables_p + s * max_blocks;
    const int64_t num_used = (lens_p[s] + cache.block_size - 1) / cache.block_size;
    TORCH_CHECK_INDEX(std::all_of(used, used + num_used, [&](int64_t b) { return b >= 0 && b < num_blocks; }),
                      "sequence ", s, " names a block outside [0, ", num_blocks, ")");
  }
  torch::Tensor out = torch::empty_like(q);
  const int64_t group = num_q_heads / cache.num_kv_heads;
  const float* q_p = q.data_ptr<float>();
  const float* k_p = k_cache.data_ptr<float>();
  const float* v_p = v_cache.data_ptr<float>();
  float* out_p = out.data_ptr<float>();
  at::parallel_for(0, num_seqs * cache.num_kv_heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t s = task / cache.num_kv_heads, head = task % cache.num_kv_heads;
      const int64_t first_row = (s * num_q_heads + head * group) * head_dim;
      attend_one_head(q_p + first_row, k_p, v_p, tables_p + s * max_blocks, lens_p[s], head, group,
                      static_cast<float>(scale), cache, out_p + first_row, scores);
    }
  });
  return out;
}

}  // namespace morphserve
