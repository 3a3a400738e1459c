// Decode attention over the paged KV cache on the CPU: fp32, AVX2 + FMA, one task per sequence.
//
// Each task reads its sequence's keys and values once, block by block straight from the cache (no gathered
// copy), for every query head: scores (four keys at a time, shared by a GQA group), softmax (vectorized exp),
// weighted sum of the values. Threads get runs of tasks of about equal total context length; a sequence is not
// split, so one sequence far longer than all the others still leaves the other threads idle early.
#include "cpu_kernels.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "avx2_math.h"

namespace morphserve {
namespace {

struct CacheGeometry {
  int64_t block_size, num_kv_heads, head_dim;

  int64_t token_stride() const { return num_kv_heads * head_dim; }

  // Start of KV head `head`'s vector for the first token of `block`.
  int64_t block_offset(int64_t block, int64_t head) const { return (block * block_size * num_kv_heads + head) * head_dim; }
};

constexpr int64_t kLanes = 8;          // floats per AVX2 register
constexpr int kMaxHeadsPerPass = 3;    // query heads scored per pass over a block: 4 keys x 3 heads = 12 accumulators
constexpr int64_t kMinVectorsPerThread = 4096;  // (position, KV head) pairs: below ~100 us of work, one thread

// scores[g * len + t] = scale * q[g] . keys[t * stride] for G query heads (rows of q, d apart) and `count` keys;
// each key is loaded once for all G heads, four keys at a time.
template <int G>
__attribute__((target("avx2,fma"))) void score_keys(const float* q, const float* keys, int64_t stride, int64_t count,
                                                    int64_t d, float scale, float* scores, int64_t len) {
  int64_t t = 0;
  for (; t + 4 <= count; t += 4) {
    __m256 acc[4][G];
    for (auto& row : acc) for (auto& a : row) a = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + kLanes <= d; c += kLanes) {
      for (int m = 0; m < 4; ++m) {
        const __m256 key = _mm256_loadu_ps(keys + (t + m) * stride + c);
        for (int g = 0; g < G; ++g) acc[m][g] = _mm256_fmadd_ps(_mm256_loadu_ps(q + g * d + c), key, acc[m][g]);
      }
    }
    for (int g = 0; g < G; ++g) {
      alignas(16) float sums[4];
      _mm_store_ps(sums, hsum4(acc[0][g], acc[1][g], acc[2][g], acc[3][g]));
      for (int m = 0; m < 4; ++m) {
        for (int64_t r = c; r < d; ++r) sums[m] += q[g * d + r] * keys[(t + m) * stride + r];
        scores[g * len + t + m] = sums[m] * scale;
      }
    }
  }
  for (; t < count; ++t) {
    for (int g = 0; g < G; ++g) scores[g * len + t] = dot(q + g * d, keys + t * stride, d) * scale;
  }
}

// out[g] += sum_t probs[g * len + t] * values[t * stride] for G query heads and `count` values, 16 columns
// at a time with the 2 G accumulators in registers; each value vector is loaded once for all G heads.
template <int G>
__attribute__((target("avx2,fma"))) void weigh_values(const float* probs, int64_t len, const float* values,
                                                      int64_t stride, int64_t count, int64_t d, float* out) {
  int64_t c = 0;
  for (; c + 2 * kLanes <= d; c += 2 * kLanes) {
    __m256 acc[G][2];
    for (int g = 0; g < G; ++g) {
      acc[g][0] = _mm256_loadu_ps(out + g * d + c);
      acc[g][1] = _mm256_loadu_ps(out + g * d + c + kLanes);
    }
    for (int64_t t = 0; t < count; ++t) {
      const __m256 v0 = _mm256_loadu_ps(values + t * stride + c), v1 = _mm256_loadu_ps(values + t * stride + c + kLanes);
      for (int g = 0; g < G; ++g) {
        const __m256 p = _mm256_broadcast_ss(probs + g * len + t);
        acc[g][0] = _mm256_fmadd_ps(p, v0, acc[g][0]);
        acc[g][1] = _mm256_fmadd_ps(p, v1, acc[g][1]);
      }
    }
    for (int g = 0; g < G; ++g) {
      _mm256_storeu_ps(out + g * d + c, acc[g][0]);
      _mm256_storeu_ps(out + g * d + c + kLanes, acc[g][1]);
    }
  }
  for (; c < d; ++c) {
    for (int g = 0; g < G; ++g) {
      float sum = out[g * d + c];
      for (int64_t t = 0; t < count; ++t) sum += probs[g * len + t] * values[t * stride + c];
      out[g * d + c] = sum;
    }
  }
}

// Scores of `group` query heads (rows of q) against `count` keys, in passes of up to kMaxHeadsPerPass heads.
void score_group(const float* q, const float* keys, int64_t stride, int64_t count, int64_t d, int64_t group,
                 float scale, float* scores, int64_t len) {
  for (int64_t j = 0; j < group; j += kMaxHeadsPerPass) {
    const float* q_j = q + j * d;
    float* scores_j = scores + j * len;
    switch (std::min<int64_t>(kMaxHeadsPerPass, group - j)) {
      case 3: score_keys<3>(q_j, keys, stride, count, d, scale, scores_j, len); break;
      case 2: score_keys<2>(q_j, keys, stride, count, d, scale, scores_j, len); break;
      default: score_keys<1>(q_j, keys, stride, count, d, scale, scores_j, len); break;
    }
  }
}

// out (group rows of d) += probabilities (group rows, len apart) x `count` values, kMaxHeadsPerPass heads a pass.
void weigh_group(const float* probs, int64_t len, const float* values, int64_t stride, int64_t count, int64_t d,
                 int64_t group, float* out) {
  for (int64_t j = 0; j < group; j += kMaxHeadsPerPass) {
    const float* probs_j = probs + j * len;
    float* out_j = out + j * d;
    switch (std::min<int64_t>(kMaxHeadsPerPass, group - j)) {
      case 3: weigh_values<3>(probs_j, len, values, stride, count, d, out_j); break;
      case 2: weigh_values<2>(probs_j, len, values, stride, count, d, out_j); break;
      default: weigh_values<1>(probs_j, len, values, stride, count, d, out_j); break;
    }
  }
}

// Attention of one sequence of `len` positions for KV heads [head_begin, head_end) and their query heads.
// Both passes walk the cache block by block, every head of a block together, so each cache line is read
// from memory once. q, out: the sequence's rows of all query heads; scores: scratch of heads x group x len floats.
void attend_heads(const float* q, const float* k_cache, const float* v_cache, const int64_t* table, int64_t len,
                  int64_t head_begin, int64_t head_end, int64_t group, float scale, const CacheGeometry& cache,
                  float* out, float* scores) {
  const int64_t d = cache.head_dim, stride = cache.token_stride(), rows_per_head = group * len;
  for (int64_t first = 0, b = 0; first < len; first += cache.block_size, ++b) {
    const int64_t count = std::min(cache.block_size, len - first);
    for (int64_t h = head_begin; h < head_end; ++h) {
      score_group(q + h * group * d, k_cache + cache.block_offset(table[b], h), stride, count, d, group, scale,
                  scores + (h - head_begin) * rows_per_head + first, len);
    }
  }
  const int64_t num_rows = (head_end - head_begin) * group;
  for (int64_t r = 0; r < num_rows; ++r) softmax_inplace(scores + r * len, len);
  std::fill(out + head_begin * group * d, out + head_end * group * d, 0.0f);
  for (int64_t first = 0, b = 0; first < len; first += cache.block_size, ++b) {
    const int64_t count = std::min(cache.block_size, len - first);
    for (int64_t h = head_begin; h < head_end; ++h) {
      weigh_group(scores + (h - head_begin) * rows_per_head + first, len, v_cache + cache.block_offset(table[b], h),
                  stride, count, d, group, out + h * group * d);
    }
  }
}

// Task boundaries (`per_seq` tasks per sequence, in sequence order) giving each of `parts` threads about the
// same number of context positions: part p runs tasks [bounds[p], bounds[p + 1]).
std::vector<int64_t> balanced_bounds(const int64_t* lens, int64_t num_seqs, int64_t per_seq, int64_t parts) {
  int64_t total = 0;
  for (int64_t s = 0; s < num_seqs; ++s) total += lens[s] * per_seq;
  std::vector<int64_t> bounds(parts + 1, num_seqs * per_seq);
  bounds[0] = 0;
  int64_t done = 0, next = 1;
  for (int64_t task = 0; task < num_seqs * per_seq && next < parts; ++task) {
    done += lens[task / per_seq];
    while (next < parts && done * parts >= total * next) bounds[next++] = task + 1;
  }
  return bounds;
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
  TORCH_CHECK_VALUE(cache.num_kv_heads > 0 && head_dim == cache.head_dim && num_q_heads % cache.num_kv_heads == 0,
                    "q heads ", num_q_heads,
                    " x ", head_dim, " do not fit KV heads ", cache.num_kv_heads, " x ", cache.head_dim);
  TORCH_CHECK_VALUE(block_tables.device().is_cpu() && seq_lens.device().is_cpu(),
                    "paged_decode_attention takes block_tables and seq_lens on the CPU");
  TORCH_CHECK_VALUE(block_tables.dim() == 2 && block_tables.size(0) == num_seqs && seq_lens.dim() == 1 &&
                    seq_lens.size(0) == num_seqs, "block_tables must be [S, max_blocks] and seq_lens [S]");
  const torch::Tensor tables = block_tables.to(at::kLong).contiguous();
  const torch::Tensor lens = seq_lens.to(at::kLong).contiguous();
  const int64_t* lens_p = lens.data_ptr<int64_t>();
  const int64_t num_blocks = k_cache.size(0), max_blocks = tables.size(1);
  const int64_t* tables_p = tables.data_ptr<int64_t>();
  int64_t max_len = 0;
  for (int64_t s = 0; s < num_seqs; ++s) {
    TORCH_CHECK_VALUE(lens_p[s] >= 1 && lens_p[s] <= max_blocks * cache.block_size, "sequence ", s, " has length ",
                      lens_p[s], ", outside [1, ", max_blocks * cache.block_size, "]");
    const int64_t* used = tables_p + s * max_blocks;
    const int64_t num_used = (lens_p[s] + cache.block_size - 1) / cache.block_size;
    TORCH_CHECK_INDEX(std::all_of(used, used + num_used, [&](int64_t b) { return b >= 0 && b < num_blocks; }),
                      "sequence ", s, " names a block outside [0, ", num_blocks, ")");
    max_len = std::max(max_len, lens_p[s]);
  }
  torch::Tensor out = torch::empty_like(q);
  const int64_t group = num_q_heads / cache.num_kv_heads;
  const float* q_p = q.data_ptr<float>();
  const float* k_p = k_cache.data_ptr<float>();
  const float* v_p = v_cache.data_ptr<float>();
  float* out_p = out.data_ptr<float>();
  // A task is one sequence, all heads (each block read in one go); with fewer sequences than threads, one head.
  // Starting the threads costs more than a short context's attention takes on one.
  const int64_t total_vectors = std::accumulate(lens_p, lens_p + num_seqs, int64_t{0}) * cache.num_kv_heads;
  const int64_t parts = total_vectors < kMinVectorsPerThread ? 1 : at::get_num_threads();
  const int64_t heads_per_task = num_seqs >= parts ? cache.num_kv_heads : 1;
  const int64_t tasks_per_seq = cache.num_kv_heads / heads_per_task;
  const std::vector<int64_t> bounds = balanced_bounds(lens_p, num_seqs, tasks_per_seq, parts);
  at::parallel_for(0, parts, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores(heads_per_task * group * max_len);
    for (int64_t task = bounds[begin]; task < bounds[end]; ++task) {
      const int64_t s = task / tasks_per_seq, head = task % tasks_per_seq * heads_per_task;
      const int64_t first_row = s * num_q_heads * head_dim;
      attend_heads(q_p + first_row, k_p, v_p, tables_p + s * max_blocks, lens_p[s], head, head + heads_per_task,
                   group, static_cast<float>(scale), cache, out_p + first_row, scores.data());
    }
  });
  return out;
}

}  // namespace morphserve
