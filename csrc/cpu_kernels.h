// CPU compute kernels of the engine's decode path (fp32 tensors, AVX2 + FMA); see each source file.
#pragma once

#include <torch/extension.h>

#include <vector>

namespace morphserve {

// Whether this CPU runs the kernels below (AVX2 and FMA); they raise a ValueError where it does not.
bool cpu_supported();

// Whether this CPU has SSE4.2 and AVX2 (the CRC-32C instruction and the 32-byte copies of the checksums).
bool checksum_supported();

// The checksums of a contiguous CPU tensor's bytes, one per ``chunk_bytes`` (csrc/checksum.cpp).
std::vector<int64_t> chunk_checksums(const torch::Tensor& tensor, int64_t chunk_bytes);

// For each piece p, copies bytes [begins[p], ends[p]) of ``sources[p]`` to the same bytes of ``destinations[p]``
// (contiguous CPU tensors of equal size, each begin a multiple of ``chunk_bytes``) and returns the checksums of those
// chunks, as ``chunk_checksums`` gives them; all the pieces' chunks share the intra-op threads.
std::vector<std::vector<int64_t>> copy_checksummed(const std::vector<torch::Tensor>& destinations,
                                                   const std::vector<torch::Tensor>& sources,
                                                   const std::vector<int64_t>& begins, const std::vector<int64_t>& ends,
                                                   int64_t chunk_bytes);

// x: [M, K], w: [N, K], float32, contiguous -> x @ w.T: [M, N]. Meant for small M (decode).
torch::Tensor skinny_linear(const torch::Tensor& x, const torch::Tensor& w);

// q: [S, hq, d]; k_cache, v_cache: [num_blocks, block_size, hkv, d] (float32, contiguous);
// block_tables: [S, max_blocks]; seq_lens: [S] (context length, the new token included) -> [S, hq, d].
torch::Tensor paged_decode_attention(const torch::Tensor& q, const torch::Tensor& k_cache, const torch::Tensor& v_cache,
                                     const torch::Tensor& block_tables, const torch::Tensor& seq_lens, double scale);

// x: [M, K'] float32 with K' <= K (the missing columns count as zeros); codes: [N, K / 2] uint8 in
// swiftllm/quant/int4_layout.py's row-major layout; params: [N, K / group_size, 2] bf16 (scale, offset)
// -> x @ dequant(W).T: [M, N] float32, with x rounded to int16 in blocks of 32 for the codes' term (int4_linear.cpp).
torch::Tensor int4_linear(const torch::Tensor& x, const torch::Tensor& codes, const torch::Tensor& params,
                          int64_t group_size);

// x: [M, K] float32; codes: [N, K] int8; scales: [N] float32 -> x @ (codes * scales[:, None]).T: [M, N] float32,
// with x rounded to int16 in blocks of 32 (int8_linear.cpp).
torch::Tensor int8_linear(const torch::Tensor& x, const torch::Tensor& codes, const torch::Tensor& scales);

// Elementwise decoder ops (csrc/decoder_ops.cpp), float32. Row-major inputs need contiguous rows, any row stride.
// x: [M, H], weight: [H] -> x * rsqrt(mean(x^2) + eps) * weight: [M, H].
torch::Tensor rmsnorm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// residual += x in place (both contiguous [M, H]); returns rmsnorm(residual, weight, eps).
torch::Tensor add_rmsnorm_(torch::Tensor& residual, const torch::Tensor& x, const torch::Tensor& weight, double eps);

// qkv: [T, (hq + 2 hkv) d] (q, k, v heads in that order); cos, sin: [T, d / 2] ->
// {q [T, hq, d], k [T, hkv, d]} with the rotate-half rotary embedding (new, contiguous), v [T, hkv, d] (a view of qkv).
std::vector<torch::Tensor> split_qkv_rotary(const torch::Tensor& qkv, const torch::Tensor& cos, const torch::Tensor& sin,
                                            int64_t num_q_heads, int64_t num_kv_heads);

// k_cache, v_cache: [num_blocks, block_size, hkv, d]; k, v: [T, hkv, d]; slot_mapping: [T] (block * block_size +
// offset): writes row t of k and v to slot slot_mapping[t].
void store_kv(torch::Tensor& k_cache, torch::Tensor& v_cache, const torch::Tensor& k, const torch::Tensor& v,
              const torch::Tensor& slot_mapping);

// gate_up: [T, 2 I] (gate first) -> silu(gate) * up: [T, I].
torch::Tensor silu_and_mul(const torch::Tensor& gate_up);

}  // namespace morphserve
