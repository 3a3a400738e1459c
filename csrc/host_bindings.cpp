// Torch binding of HostArena: views of the arena as tensors, and the GIL-free swap copy.
#include <torch/extension.h>

#include <cstring>
#include <memory>

#include "host_arena.h"
#include "tensor_checks.h"

namespace morphserve {
namespace {

// A tensor over the arena bytes at `offset`; it holds a reference to the arena, so the mapping
// outlives every view.
torch::Tensor host_view(const std::shared_ptr<HostArena>& arena, std::size_t offset,
                        const std::vector<int64_t>& shape, at::ScalarType dtype) {
  arena->check_range(offset, view_nbytes(offset, shape, dtype));
  return torch::from_blob(arena->base() + offset, shape, [arena](void*) {}, torch::TensorOptions().dtype(dtype));
}

// memmove of the bytes of `src` into `dst` with the GIL released, so a Python background thread can
// copy a layer while the main thread computes.
void host_copy_into(torch::Tensor dst, const torch::Tensor& src) {
  TORCH_CHECK_VALUE(dst.device().is_cpu() && src.device().is_cpu(), "copy_into here copies CPU tensors, got ",
                    src.device(), " -> ", dst.device());
  check_copy_pair(dst, src);
  void* target = dst.data_ptr();
  const void* source = src.data_ptr();
  const std::size_t nbytes = dst.nbytes();
  pybind11::gil_scoped_release no_gil;
  std::memmove(target, source, nbytes);
}

}  // namespace
}  // namespace morphserve

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  using morphserve::HostArena;
  namespace py = pybind11;
  py::class_<HostArena, std::shared_ptr<HostArena>>(m, "HostArena")
      .def(py::init<std::size_t>(), py::arg("capacity_bytes"))
      .def_property_readonly("capacity_bytes", &HostArena::capacity_bytes)
      .def_static("page_size", &HostArena::page_size)
      .def("view", &morphserve::host_view, py::arg("offset"), py::arg("shape"), py::arg("dtype"))
      .def("release", &HostArena::release, py::arg("offset"), py::arg("nbytes"),
           py::call_guard<py::gil_scoped_release>())
      .def("commit", &HostArena::commit, py::arg("offset"), py::arg("nbytes"),
           py::call_guard<py::gil_scoped_release>());
  m.def("copy_into", &morphserve::host_copy_into, py::arg("dst"), py::arg("src"));
}
