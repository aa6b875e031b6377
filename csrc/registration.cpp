// The op schemas of the mkcc namespace, defined once for every backend, and the Python module
// with the build description.
#include <torch/extension.h>

#include "cpu/isa.h"
#include "cpu/workspace.h"
#include "host.h"

// MKCC_CUDA_ARCHS is set by setup.py as one identifier, e.g. sm80_sm90.
#define MKCC_STRINGIFY_(x) #x
#define MKCC_STRINGIFY(x) MKCC_STRINGIFY_(x)
#ifdef MKCC_CUDA_ARCHS
#define MKCC_CUDA_ARCH_STRING MKCC_STRINGIFY(MKCC_CUDA_ARCHS)
#else
#define MKCC_CUDA_ARCH_STRING ""
#endif

TORCH_LIBRARY(mkcc, m) {
  // Bias is left out of the ops (added with plain aten ops, so compilers can fuse it).
  // Output length: (length + pad_left + pad_right - dilation * (k - 1) - 1) // stride + 1.
  m.def(
      "kan_conv1d_fwd(Tensor x, Tensor base_weight, Tensor spline_weight, int stride, "
      "int pad_left, int pad_right, int dilation, int groups, int spline_order, float grid_lo, "
      "float grid_hi) -> Tensor",
      {at::Tag::pt2_compliant_tag});
  // Gradients with respect to x and to both weights; one that is not asked for (input_grad or
  // weight_grad false) comes back as an empty tensor of shape [0].
  m.def(
      "kan_conv1d_bwd(Tensor grad_out, Tensor x, Tensor base_weight, Tensor spline_weight, "
      "int stride, int pad_left, int pad_right, int dilation, int groups, int spline_order, "
      "float grid_lo, float grid_hi, bool input_grad, bool weight_grad) "
      "-> (Tensor, Tensor, Tensor)",
      {at::Tag::pt2_compliant_tag});
  // KANConv2d on x [B, C_in, H, W]: base_weight [C_out, C_in / groups, kh, kw], spline_weight
  // [C_out, C_in / groups, kh, kw, G + K]; padding per side, a padded tap contributes nothing.
  m.def(
      "kan_conv2d_fwd(Tensor x, Tensor base_weight, Tensor spline_weight, int stride_h, "
      "int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right, int dilation_h, "
      "int dilation_w, int groups, int spline_order, float grid_lo, float grid_hi) -> Tensor",
      {at::Tag::pt2_compliant_tag});
  m.def(
      "kan_conv2d_bwd(Tensor grad_out, Tensor x, Tensor base_weight, Tensor spline_weight, "
      "int stride_h, int stride_w, int pad_top, int pad_bottom, int pad_left, int pad_right, "
      "int dilation_h, int dilation_w, int groups, int spline_order, float grid_lo, "
      "float grid_hi, bool input_grad, bool weight_grad) -> (Tensor, Tensor, Tensor)",
      {at::Tag::pt2_compliant_tag});
  // KANLinear on x [N, in] with each input feature's knots grid [in, G + 2K + 1]; the scaler
  // (or None) multiplies the spline weight inside the op, so that autograd saves no scaled copy.
  m.def(
      "kan_linear_fwd(Tensor x, Tensor base_weight, Tensor spline_weight, Tensor? spline_scaler, "
      "Tensor grid, int spline_order) -> Tensor",
      {at::Tag::pt2_compliant_tag});
  // Gradients with respect to x, base_weight, spline_weight and spline_scaler; one not asked
  // for (or without a scaler) comes back as an empty tensor of shape [0].
  m.def(
      "kan_linear_bwd(Tensor grad_out, Tensor x, Tensor base_weight, Tensor spline_weight, "
      "Tensor? spline_scaler, Tensor grid, int spline_order, bool input_grad, bool weight_grad) "
      "-> (Tensor, Tensor, Tensor, Tensor)",
      {at::Tag::pt2_compliant_tag});
}

namespace {

pybind11::dict build_info() {
  pybind11::dict info;
  info["torch_version"] = std::to_string(TORCH_VERSION_MAJOR) + "." +
                          std::to_string(TORCH_VERSION_MINOR) + "." +
                          std::to_string(TORCH_VERSION_PATCH);
#ifdef MKCC_WITH_CUDA
  info["cuda_compiled"] = true;
#else
  info["cuda_compiled"] = false;
#endif
  std::vector<std::string> archs;  // "sm80_sm90" -> {"sm_80", "sm_90"}
  const std::string arch_list = MKCC_CUDA_ARCH_STRING;
  size_t start = 0;
  while (start < arch_list.size()) {
    size_t end = arch_list.find('_', start);
    if (end == std::string::npos) end = arch_list.size();
    if (end > start + 2) archs.push_back("sm_" + arch_list.substr(start + 2, end - start - 2));
    start = end + 1;
  }
  info["cuda_archs"] = archs;
  info["cpu_isas"] = mkcc::cpu::supported_isas();
  info["cpu_isa"] = mkcc::cpu::active_isa();
  return info;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "mkcc fused KANConv1d kernels";
  m.def("build_info", &build_info,
        "What this build holds: torch version, CUDA kernels and archs, CPU instruction sets.");
  m.def("set_cpu_isa", &mkcc::cpu::set_active_isa, pybind11::arg("isa"),
        "Selects the CPU kernel build ('generic', 'avx2', 'avx512') among those supported.");
  m.def("cpu_workspace_bytes", &mkcc::cpu::workspace_bytes,
        "Bytes of reused CPU-op buffers the calling thread holds.");
  m.def("release_cpu_workspace", &mkcc::cpu::release_workspace,
        "Frees the calling thread's reused CPU-op buffers.");
  m.def("set_cpu_workspace_limit", &mkcc::cpu::set_workspace_limit, pybind11::arg("nbytes"),
        "The most bytes of reused CPU-op buffers one thread may hold (0: none kept).");
  m.def("cpu_workspace_limit", &mkcc::cpu::workspace_limit,
        "The most bytes of reused CPU-op buffers one thread may hold.");
  m.def("set_poison_outputs", &mkcc::set_poison_outputs, pybind11::arg("enabled"),
        "Fill every new kernel output with NaN before the kernels write it (for tests).");
  m.def("poison_outputs", &mkcc::poison_outputs, "Whether new kernel outputs are NaN-filled.");
  m.def("set_cuda_tensor_cores", &mkcc::set_cuda_tensor_cores, pybind11::arg("enabled"),
        "Allow the CUDA forward's tensor-core kernel for fp16/bf16 (on by default).");
  m.def("cuda_tensor_cores", &mkcc::cuda_tensor_cores,
        "Whether the CUDA forward may use tensor cores for fp16/bf16.");
}
