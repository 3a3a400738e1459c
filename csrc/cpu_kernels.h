// CPU compute kernels of the engine's decode path (fp32 activations, AVX2 + FMA); see each source file.
#pragma once

#include <torch/extension.h>

namespace morphserve {

// Whether this CPU runs the kernels below (AVX2 and FMA); they raise a ValueError where it does not.
bool cpu_supported();

// x: [M, K], w: [N, K], float32, contiguous -> x @ w.T: [M, N]. Meant for small M (decode).
torch::Tensor skinny_linear(const torch::Tensor& x, const torch::Tensor& w);

// q: [S, hq, d]; k_cache, v_cache: [num_blocks, block_size, hkv, d] (float32, contiguous);
// block_tables: [S, max_blocks]; seq_lens: [S] (context length, the new token included) -> [S, hq, d].
torch::Tensor paged_decode_attention(const torch::Tensor& q, const torch::Tensor& k_cache, const torch::Tensor& v_cache,
                                     const torch::Tensor& block_tables, const torch::Tensor& seq_lens, double scale);

// x: [M, K] float32; packed: [N, K / 2] uint8 in torch's AVX2 CPU INT4 layout (32-row blocks, split halves);
// scales_and_zeros: [K / group_size, N, 2] bf16 (scale, offset) -> x @ dequant(W).T: [M, N] float32.
torch::Tensor int4pack_linear(const torch::Tensor& x, const torch::Tensor& packed, const torch::Tensor& scales_and_zeros,
                              int64_t group_size);

}  // namespace morphserve
