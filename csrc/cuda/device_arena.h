// Elastic device memory arena on the CUDA driver's virtual memory management API.
// CUDA driver API only (no ATen/torch): the torch binding lives in device_bindings.cpp.
#pragma once

#include <cuda.h>

#include <cstddef>
#include <optional>
#include <vector>

namespace morphserve {

// One virtual range reserved once; physical memory is mapped and unmapped in chunks of the
// allocation granularity. Addresses never move, so views of the range stay valid while the arena
// lives; touching a chunk that is not committed is an illegal device access (callers never hand
// out such memory).
class DeviceArena {
 public:
  DeviceArena(std::size_t capacity_bytes, int device_ordinal);
  ~DeviceArena();
  DeviceArena(const DeviceArena&) = delete;
  DeviceArena& operator=(const DeviceArena&) = delete;

  CUdeviceptr base() const { return base_; }
  std::size_t capacity_bytes() const { return capacity_; }
  std::size_t granularity() const { return granularity_; }
  int device_ordinal() const { return ordinal_; }

  // Maps physical memory under every chunk touching [offset, offset + nbytes) that is not mapped
  // yet and enqueues its zero-fill on `stream` (work enqueued on `stream` afterwards sees zeros;
  // other streams must wait for `stream` first). Returns the bytes newly mapped.
  std::size_t commit(std::size_t offset, std::size_t nbytes, CUstream stream);

  // Waits for the work already enqueued on `stream` (the only stream that may still touch the
  // range), then unmaps and frees the chunks lying wholly inside [offset, offset + nbytes). Other
  // streams keep running: the device is not synchronized. Returns the bytes freed.
  std::size_t release(std::size_t offset, std::size_t nbytes, CUstream stream);

  // Throws std::out_of_range unless [offset, offset + nbytes) lies inside the arena.
  void check_range(std::size_t offset, std::size_t nbytes) const;

 private:
  void map_chunk(std::size_t index, CUstream stream);
  void unmap_chunk(std::size_t index);
  CUdeviceptr chunk_address(std::size_t index) const { return base_ + index * granularity_; }

  int ordinal_;
  CUdevice device_;
  CUcontext context_;
  CUmemAllocationProp prop_;
  std::size_t granularity_;
  std::size_t capacity_;
  CUdeviceptr base_;
  std::vector<std::optional<CUmemGenericAllocationHandle>> chunks_;  // mapped handle per chunk
};

// Enqueues a copy of `nbytes` between two unified addresses (device memory or pinned host memory).
void copy_async(CUdeviceptr dst, CUdeviceptr src, std::size_t nbytes, CUstream stream);

}  // namespace morphserve
