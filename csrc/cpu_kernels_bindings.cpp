// Torch binding of the CPU kernels; they run with the GIL released.
#include "cpu_kernels.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  namespace py = pybind11;
  m.def("cpu_supported", &morphserve::cpu_supported);
  m.def("checksum_supported", &morphserve::checksum_supported);
  m.def("chunk_checksums", &morphserve::chunk_checksums, py::arg("tensor"), py::arg("chunk_bytes"),
        py::call_guard<py::gil_scoped_release>());
  m.def("copy_checksummed", &morphserve::copy_checksummed, py::arg("destinations"), py::arg("sources"),
        py::arg("begins"), py::arg("ends"), py::arg("chunk_bytes"), py::call_guard<py::gil_scoped_release>());
  m.def("skinny_linear", &morphserve::skinny_linear, py::arg("x"), py::arg("w"),
        py::call_guard<py::gil_scoped_release>());
  m.def("int4_linear", &morphserve::int4_linear, py::arg("x"), py::arg("codes"), py::arg("params"),
        py::arg("group_size"), py::call_guard<py::gil_scoped_release>());
  m.def("int8_linear", &morphserve::int8_linear, py::arg("x"), py::arg("codes"), py::arg("scales"),
        py::call_guard<py::gil_scoped_release>());
  m.def("paged_decode_attention", &morphserve::paged_decode_attention, py::arg("q"), py::arg("k_cache"),
        py::arg("v_cache"), py::arg("block_tables"), py::arg("seq_lens"), py::arg("scale"),
        py::call_guard<py::gil_scoped_release>());
  m.def("rmsnorm", &morphserve::rmsnorm, py::arg("x"), py::arg("weight"), py::arg("eps"),
        py::call_guard<py::gil_scoped_release>());
  m.def("add_rmsnorm_", &morphserve::add_rmsnorm_, py::arg("residual"), py::arg("x"), py::arg("weight"), py::arg("eps"),
        py::call_guard<py::gil_scoped_release>());
  m.def("split_qkv_rotary", &morphserve::split_qkv_rotary, py::arg("qkv"), py::arg("cos"), py::arg("sin"),
        py::arg("num_q_heads"), py::arg("num_kv_heads"), py::call_guard<py::gil_scoped_release>());
  m.def("store_kv", &morphserve::store_kv, py::arg("k_cache"), py::arg("v_cache"), py::arg("k"), py::arg("v"),
        py::arg("slot_mapping"), py::call_guard<py::gil_scoped_release>());
  m.def("silu_and_mul", &morphserve::silu_and_mul, py::arg("gate_up"), py::call_guard<py::gil_scoped_release>());
}
