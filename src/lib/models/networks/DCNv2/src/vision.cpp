// Python bindings of the DCNv2 ops (module `_ext`) and the `dcn_v2` torch operator library.
//
// The convolution is a registered operator (torch.ops.dcn_v2.modulated_deform_conv and its backward) so
// that torch.export, torch.compile and the ONNX exporter see one node instead of an opaque Python call.
// Its fake (meta) kernels and autograd formula live in dcn_v2.py; the autocast rule lives here.
#include <ATen/autocast_mode.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/extension.h>
#include <torch/library.h>

#include "dcn_v2.h"

namespace {

using Tensors5 = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

void check_pairs(at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation) {
  TORCH_CHECK(stride.size() == 2 && padding.size() == 2 && dilation.size() == 2,
              "DCNv2: stride, padding and dilation must be (h, w) pairs");
}

at::Tensor conv_forward(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                        const at::Tensor& weight, const at::Tensor& bias, at::IntArrayRef stride,
                        at::IntArrayRef padding, at::IntArrayRef dilation, int64_t deformable_groups) {
  check_pairs(stride, padding, dilation);
  TORCH_CHECK(weight.dim() == 4, "DCNv2: weight must be 4-D (C_out, C_in, kh, kw), got shape ", weight.sizes());
  return dcn_v2_forward(input, weight, bias, offset, mask, weight.size(2), weight.size(3), stride[0], stride[1],
                        padding[0], padding[1], dilation[0], dilation[1], deformable_groups);
}

Tensors5 conv_backward(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                       const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& grad_output,
                       at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                       int64_t deformable_groups) {
  check_pairs(stride, padding, dilation);
  TORCH_CHECK(weight.dim() == 4, "DCNv2: weight must be 4-D (C_out, C_in, kh, kw), got shape ", weight.sizes());
  auto g = dcn_v2_backward(input, weight, bias, offset, mask, grad_output, weight.size(2), weight.size(3), stride[0],
                           stride[1], padding[0], padding[1], dilation[0], dilation[1], deformable_groups);
  // kernel order {input, offset, mask, weight, bias} already matches the operator's argument order
  return {g[0], g[1], g[2], g[3], g[4]};
}

// Autocast: CUDA computes in the autocast dtype (the kernels have float16/bfloat16 versions); the CPU
// kernels exist for float32/float64 only, so CPU autocast runs them in float32. float64 is never touched,
// as torch's own autocast leaves it alone. The casts are ordinary differentiable ops, so gradients come
// back in the caller's dtypes.
template <c10::DispatchKey key>
at::Tensor conv_autocast(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                         const at::Tensor& weight, const at::Tensor& bias, at::IntArrayRef stride,
                         at::IntArrayRef padding, at::IntArrayRef dilation, int64_t deformable_groups) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(key);
  const at::ScalarType dtype =
      key == c10::DispatchKey::AutocastCUDA ? at::autocast::get_autocast_dtype(at::kCUDA) : at::kFloat;
  auto cast = [dtype](const at::Tensor& t) {
    return t.is_floating_point() && t.scalar_type() != at::kDouble ? t.to(dtype) : t;
  };
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("dcn_v2::modulated_deform_conv", "")
                       .typed<decltype(conv_forward)>();
  return op.call(cast(input), cast(offset), cast(mask), cast(weight), cast(bias), stride, padding, dilation,
                 deformable_groups);
}

}  // namespace

TORCH_LIBRARY(dcn_v2, m) {
  m.def(
      "modulated_deform_conv(Tensor input, Tensor offset, Tensor mask, Tensor weight, Tensor bias, int[2] stride, "
      "int[2] padding, int[2] dilation, int deformable_groups) -> Tensor");
  m.def(
      "modulated_deform_conv_backward(Tensor input, Tensor offset, Tensor mask, Tensor weight, Tensor bias, "
      "Tensor grad_output, int[2] stride, int[2] padding, int[2] dilation, int deformable_groups) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor)");
}

// One function per op serves both devices: dcn_v2.h picks the kernel by the input's device and, in a
// CPU-only build, turns a CUDA call into the rebuild hint.
TORCH_LIBRARY_IMPL(dcn_v2, CPU, m) {
  m.impl("modulated_deform_conv", &conv_forward);
  m.impl("modulated_deform_conv_backward", &conv_backward);
}

TORCH_LIBRARY_IMPL(dcn_v2, CUDA, m) {
  m.impl("modulated_deform_conv", &conv_forward);
  m.impl("modulated_deform_conv_backward", &conv_backward);
}

TORCH_LIBRARY_IMPL(dcn_v2, AutocastCUDA, m) {
  m.impl("modulated_deform_conv", &conv_autocast<c10::DispatchKey::AutocastCUDA>);
}

TORCH_LIBRARY_IMPL(dcn_v2, AutocastCPU, m) {
  m.impl("modulated_deform_conv", &conv_autocast<c10::DispatchKey::AutocastCPU>);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("dcn_v2_forward", &dcn_v2_forward, "modulated deformable convolution, forward");
  m.def("dcn_v2_backward", &dcn_v2_backward,
        "modulated deformable convolution, backward: [grad_input, grad_offset, grad_mask, grad_weight, grad_bias]");
  m.def("dcn_v2_psroi_pooling_forward", &dcn_v2_psroi_pooling_forward,
        "deformable PSROI pooling, forward: (output, top_count)");
  m.def("dcn_v2_psroi_pooling_backward", &dcn_v2_psroi_pooling_backward,
        "deformable PSROI pooling, backward: (grad_input, grad_offset)");
#ifdef WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
}
