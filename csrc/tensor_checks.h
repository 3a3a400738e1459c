// Argument checks shared by the host and device torch bindings: a bad argument raises a Python
// ValueError/IndexError before any memory is touched.
#pragma once

#include <torch/extension.h>

#include <c10/util/safe_numerics.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace morphserve {

// Bytes a view of `shape` x `dtype` at byte `offset` covers; checks sizes and alignment.
inline std::size_t view_nbytes(std::size_t offset, const std::vector<int64_t>& shape, at::ScalarType dtype) {
  for (const int64_t dim : shape) TORCH_CHECK_VALUE(dim >= 0, "view shape ", c10::IntArrayRef(shape), " has a negative dimension");
  const std::size_t itemsize = c10::elementSize(dtype);
  TORCH_CHECK_VALUE(offset % itemsize == 0, "view offset ", offset, " is not a multiple of the ", dtype,
                    " item size ", itemsize);
  std::uint64_t numel = 1;
  std::uint64_t nbytes = 0;
  const bool overflow = c10::safe_multiplies_u64(shape, &numel) || c10::mul_overflows(numel, static_cast<std::uint64_t>(itemsize), &nbytes);
  TORCH_CHECK_VALUE(!overflow, "view shape ", c10::IntArrayRef(shape), " of ", dtype, " overflows 64-bit byte count");
  return nbytes;
}

// A raw copy needs two contiguous tensors of one dtype and one element count.
inline void check_copy_pair(const torch::Tensor& dst, const torch::Tensor& src) {
  TORCH_CHECK_VALUE(dst.is_contiguous() && src.is_contiguous(), "copy_into needs contiguous tensors");
  TORCH_CHECK_VALUE(dst.scalar_type() == src.scalar_type(), "copy_into dtype mismatch: dst ", dst.scalar_type(),
                    ", src ", src.scalar_type());
  TORCH_CHECK_VALUE(dst.numel() == src.numel(), "copy_into size mismatch: dst has ", dst.numel(),
                    " elements, src ", src.numel());
}

}  // namespace morphserve
