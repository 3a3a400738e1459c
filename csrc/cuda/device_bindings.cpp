// Thin torch binding of DeviceArena (compiled only against CUDA torch with a CUDA toolkit).
#include <torch/extension.h>

#include <cstdint>
#include <memory>

#include "../tensor_checks.h"
#include "device_arena.h"

namespace morphserve {
namespace {

// A CUDA tensor over the arena bytes at `offset`; it holds a reference to the arena, so the
// virtual range outlives every view. Only committed chunks may be touched.
torch::Tensor device_view(const std::shared_ptr<DeviceArena>& arena, std::size_t offset,
                          const std::vector<int64_t>& shape, at::ScalarType dtype) {
  arena->check_range(offset, view_nbytes(offset, shape, dtype));
  void* address = reinterpret_cast<void*>(arena->base() + offset);
  const auto options = torch::TensorOptions().dtype(dtype).device(torch::kCUDA, arena->device_ordinal());
  return torch::from_blob(address, shape, [arena](void*) {}, options);
}

// Enqueues the copy of `src` (CUDA or pinned host) into CUDA `dst` on the CUstream handle `stream`.
void device_copy_into(torch::Tensor dst, const torch::Tensor& src, std::uintptr_t stream) {
  TORCH_CHECK_VALUE(dst.device().is_cuda(), "copy_into here writes CUDA tensors, got ", dst.device());
  check_copy_pair(dst, src);
  copy_async(reinterpret_cast<CUdeviceptr>(dst.data_ptr()), reinterpret_cast<CUdeviceptr>(src.data_ptr()),
             dst.nbytes(), reinterpret_cast<CUstream>(stream));
}

std::size_t device_commit(DeviceArena& arena, std::size_t offset, std::size_t nbytes, std::uintptr_t stream) {
  return arena.commit(offset, nbytes, reinterpret_cast<CUstream>(stream));
}

std::size_t device_release(DeviceArena& arena, std::size_t offset, std::size_t nbytes, std::uintptr_t stream) {
  return arena.release(offset, nbytes, reinterpret_cast<CUstream>(stream));
}

}  // namespace
}  // namespace morphserve

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  using morphserve::DeviceArena;
  namespace py = pybind11;
  py::class_<DeviceArena, std::shared_ptr<DeviceArena>>(m, "DeviceArena")
      .def(py::init<std::size_t, int>(), py::arg("capacity_bytes"), py::arg("device_ordinal"))
      .def_property_readonly("capacity_bytes", &DeviceArena::capacity_bytes)
      .def_property_readonly("granularity", &DeviceArena::granularity)
      .def("view", &morphserve::device_view, py::arg("offset"), py::arg("shape"), py::arg("dtype"))
      .def("release", &morphserve::device_release, py::arg("offset"), py::arg("nbytes"), py::arg("stream"),
           py::call_guard<py::gil_scoped_release>())
      .def("commit", &morphserve::device_commit, py::arg("offset"), py::arg("nbytes"), py::arg("stream"),
           py::call_guard<py::gil_scoped_release>());
  m.def("copy_into", &morphserve::device_copy_into, py::arg("dst"), py::arg("src"), py::arg("stream"));
}
