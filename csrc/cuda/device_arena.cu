#include "device_arena.h"

#include <stdexcept>
#include <string>

namespace morphserve {
namespace {

void check(CUresult result, const char* call) {
  if (result == CUDA_SUCCESS) return;
  const char* name = "unknown";
  const char* text = "";
  cuGetErrorName(result, &name);
  cuGetErrorString(result, &text);
  throw std::runtime_error(std::string(call) + " failed: " + name + " (" + text + ")");
}

// Makes the device's primary context current for the lifetime of the guard.
class ContextGuard {
 public:
  explicit ContextGuard(CUcontext context) { check(cuCtxPushCurrent(context), "cuCtxPushCurrent"); }
  ~ContextGuard() {
    CUcontext popped;
    cuCtxPopCurrent(&popped);
  }
  ContextGuard(const ContextGuard&) = delete;
  ContextGuard& operator=(const ContextGuard&) = delete;
};

CUmemAllocationProp device_allocation(int ordinal) {
  CUmemAllocationProp prop = {};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = ordinal;
  return prop;
}

}  // namespace

DeviceArena::DeviceArena(std::size_t capacity_bytes, int device_ordinal)
    : ordinal_(device_ordinal), prop_(device_allocation(device_ordinal)), base_(0) {
  if (capacity_bytes == 0) throw std::invalid_argument("arena capacity must be positive");
  check(cuInit(0), "cuInit");
  check(cuDeviceGet(&device_, device_ordinal), "cuDeviceGet");
  check(cuDevicePrimaryCtxRetain(&context_, device_), "cuDevicePrimaryCtxRetain");
  ContextGuard guard(context_);
  check(cuMemGetAllocationGranularity(&granularity_, &prop_, CU_MEM_ALLOC_GRANULARITY_MINIMUM),
        "cuMemGetAllocationGranularity");
  const std::size_t num_chunks = (capacity_bytes + granularity_ - 1) / granularity_;
  capacity_ = num_chunks * granularity_;
  check(cuMemAddressReserve(&base_, capacity_, granularity_, 0, 0), "cuMemAddressReserve");
  chunks_.resize(num_chunks);
}

// Best effort and never throws: at process exit the driver may already be shut down.
DeviceArena::~DeviceArena() {
  if (cuCtxPushCurrent(context_) != CUDA_SUCCESS) return;
  cuCtxSynchronize();
  for (std::size_t index = 0; index < chunks_.size(); ++index) {
    if (!chunks_[index]) continue;
    cuMemUnmap(chunk_address(index), granularity_);
    cuMemRelease(*chunks_[index]);
  }
  cuMemAddressFree(base_, capacity_);
  CUcontext popped;
  cuCtxPopCurrent(&popped);
  cuDevicePrimaryCtxRelease(device_);
}

void DeviceArena::check_range(std::size_t offset, std::size_t nbytes) const {
  if (offset > capacity_ || nbytes > capacity_ - offset) {
    throw std::out_of_range("range [" + std::to_string(offset) + ", +" + std::to_string(nbytes) +
                            ") exceeds arena capacity " + std::to_string(capacity_));
  }
}

void DeviceArena::map_chunk(std::size_t index, CUstream stream) {
  const CUdeviceptr address = chunk_address(index);
  CUmemGenericAllocationHandle handle;
  check(cuMemCreate(&handle, granularity_, &prop_, 0), "cuMemCreate");
  const CUresult mapped = cuMemMap(address, granularity_, 0, handle, 0);
  if (mapped != CUDA_SUCCESS) {
    cuMemRelease(handle);
    check(mapped, "cuMemMap");
  }
  CUmemAccessDesc access = {};
  access.location = prop_.location;
  access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  const CUresult granted = cuMemSetAccess(address, granularity_, &access, 1);
  if (granted != CUDA_SUCCESS) {
    cuMemUnmap(address, granularity_);
    cuMemRelease(handle);
    check(granted, "cuMemSetAccess");
  }
  chunks_[index] = handle;
  check(cuMemsetD8Async(address, 0, granularity_, stream), "cuMemsetD8Async");
}

void DeviceArena::unmap_chunk(std::size_t index) {
  check(cuMemUnmap(chunk_address(index), granularity_), "cuMemUnmap");
  check(cuMemRelease(*chunks_[index]), "cuMemRelease");
  chunks_[index].reset();
}

std::size_t DeviceArena::commit(std::size_t offset, std::size_t nbytes, CUstream stream) {
  check_range(offset, nbytes);
  if (nbytes == 0) return 0;
  ContextGuard guard(context_);
  std::size_t mapped = 0;
  for (std::size_t index = offset / granularity_; index * granularity_ < offset + nbytes; ++index) {
    if (chunks_[index]) continue;
    map_chunk(index, stream);
    mapped += granularity_;
  }
  return mapped;
}

std::size_t DeviceArena::release(std::size_t offset, std::size_t nbytes, CUstream stream) {
  check_range(offset, nbytes);
  const std::size_t first = (offset + granularity_ - 1) / granularity_;
  const std::size_t last = (offset + nbytes) / granularity_;
  if (last <= first) return 0;
  ContextGuard guard(context_);
  check(cuStreamSynchronize(stream), "cuStreamSynchronize");
  std::size_t freed = 0;
  for (std::size_t index = first; index < last; ++index) {
    if (!chunks_[index]) continue;
    unmap_chunk(index);
    freed += granularity_;
  }
  return freed;
}

void copy_async(CUdeviceptr dst, CUdeviceptr src, std::size_t nbytes, CUstream stream) {
  check(cuMemcpyAsync(dst, src, nbytes, stream), "cuMemcpyAsync");
}

}  // namespace morphserve
