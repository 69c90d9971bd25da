// The one dispatch point of every DCNv2 op: argument checks, contiguity, then the CPU or CUDA kernel
// chosen by the device of the input.
#pragma once

#include <ATen/ATen.h>

#include <tuple>
#include <vector>

#include "cpu/vision.h"
#ifdef WITH_CUDA
#include "cuda/vision.h"
#endif

namespace dcn {

inline void check_same(const at::Tensor& ref, const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device() == ref.device(), "DCNv2: ", name, " is on ", t.device(), " but input is on ", ref.device(),
              "; move all tensors to one device");
  TORCH_CHECK(t.scalar_type() == ref.scalar_type(), "DCNv2: ", name, " has dtype ", t.scalar_type(),
              " but input has dtype ", ref.scalar_type(), "; cast them to one dtype (or run under autocast)");
}

inline void check_dtype(const at::Tensor& input) {
  const auto st = input.scalar_type();
  if (input.is_cuda()) {
    TORCH_CHECK(st == at::kFloat || st == at::kDouble || st == at::kHalf || st == at::kBFloat16,
                "DCNv2: CUDA tensors must be float32, float64, float16 or bfloat16, got ", st);
  } else {
    TORCH_CHECK(input.device().is_cpu(), "DCNv2: unsupported device ", input.device(), "; use CPU or CUDA");
    TORCH_CHECK(st == at::kFloat || st == at::kDouble, "DCNv2: CPU tensors must be float32 or float64, got ", st,
                "; cast to float32 (or use a CUDA device for float16/bfloat16)");
  }
}

[[noreturn]] inline void no_cuda() {
  TORCH_CHECK(false, "DCNv2 was built without CUDA kernels; rebuild it with a CUDA build of torch and nvcc on "
                     "PATH (or FORCE_CUDA=1): cd src/lib/models/networks/DCNv2 && python setup.py build develop");
}

inline int64_t out_size(int64_t in, int k, int stride, int pad, int dil) {
  return (in + 2 * pad - (dil * (k - 1) + 1)) / stride + 1;
}

// Checks shapes and returns the contiguous tensors the kernels expect.
inline std::vector<at::Tensor> check_conv_args(const at::Tensor& input, const at::Tensor& weight,
                                               const at::Tensor& bias, const at::Tensor& offset,
                                               const at::Tensor& mask, int kernel_h, int kernel_w, int stride_h,
                                               int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w,
                                               int deformable_group) {
  TORCH_CHECK(input.dim() == 4, "DCNv2: input must be 4-D (N, C, H, W), got shape ", input.sizes());
  TORCH_CHECK(weight.dim() == 4, "DCNv2: weight must be 4-D (C_out, C_in, kh, kw), got shape ", weight.sizes());
  check_dtype(input);
  check_same(input, weight, "weight");
  check_same(input, bias, "bias");
  check_same(input, offset, "offset");
  check_same(input, mask, "mask");
  TORCH_CHECK(kernel_h > 0 && kernel_w > 0, "DCNv2: kernel size must be positive");
  TORCH_CHECK(stride_h > 0 && stride_w > 0, "DCNv2: stride must be positive, got (", stride_h, ", ", stride_w, ")");
  TORCH_CHECK(pad_h >= 0 && pad_w >= 0, "DCNv2: padding must be >= 0, got (", pad_h, ", ", pad_w, ")");
  TORCH_CHECK(dilation_h > 0 && dilation_w > 0, "DCNv2: dilation must be positive");
  TORCH_CHECK(deformable_group > 0, "DCNv2: deformable_groups must be positive, got ", deformable_group);
  const int64_t n = input.size(0), c = input.size(1), h = input.size(2), w = input.size(3);
  TORCH_CHECK(weight.size(1) == c, "DCNv2: weight has ", weight.size(1), " input channels but input has ", c,
              " (grouped convolution is not supported)");
  TORCH_CHECK(weight.size(2) == kernel_h && weight.size(3) == kernel_w, "DCNv2: weight kernel ", weight.size(2), "x",
              weight.size(3), " does not match kernel size ", kernel_h, "x", kernel_w);
  TORCH_CHECK(bias.numel() == weight.size(0), "DCNv2: bias has ", bias.numel(), " values but weight has ",
              weight.size(0), " output channels");
  TORCH_CHECK(c % deformable_group == 0, "DCNv2: input channels (", c, ") must be divisible by deformable_groups (",
              deformable_group, ")");
  TORCH_CHECK(h * w < (int64_t(1) << 31), "DCNv2: input plane of ", h, "x", w, " is too large");
  const int64_t ho = out_size(h, kernel_h, stride_h, pad_h, dilation_h);
  const int64_t wo = out_size(w, kernel_w, stride_w, pad_w, dilation_w);
  TORCH_CHECK(ho > 0 && wo > 0, "DCNv2: output would be empty (", ho, "x", wo, ") for input ", h, "x", w,
              "; use a larger input or more padding");
  const int64_t kk = int64_t(kernel_h) * kernel_w;
  TORCH_CHECK(offset.dim() == 4 && offset.size(0) == n && offset.size(1) == 2 * deformable_group * kk &&
                  offset.size(2) == ho && offset.size(3) == wo,
              "DCNv2: offset must have shape (", n, ", ", 2 * deformable_group * kk, ", ", ho, ", ", wo, "), got ",
              offset.sizes());
  TORCH_CHECK(mask.dim() == 4 && mask.size(0) == n && mask.size(1) == deformable_group * kk && mask.size(2) == ho &&
                  mask.size(3) == wo,
              "DCNv2: mask must have shape (", n, ", ", deformable_group * kk, ", ", ho, ", ", wo, "), got ",
              mask.sizes());
  return {input.contiguous(), weight.contiguous(), bias.contiguous(), offset.contiguous(), mask.contiguous()};
}

inline std::vector<at::Tensor> check_pool_args(const at::Tensor& input, const at::Tensor& bbox,
                                               const at::Tensor& trans, int no_trans, int output_dim,
                                               int group_size, int pooled_size, int part_size,
                                               int sample_per_part, double trans_std) {
  TORCH_CHECK(input.dim() == 4, "DCNv2 pooling: input must be 4-D (N, C, H, W), got shape ", input.sizes());
  check_dtype(input);
  check_same(input, bbox, "rois");
  TORCH_CHECK(bbox.dim() == 2 && bbox.size(1) == 5, "DCNv2 pooling: rois must have shape (R, 5) holding ",
              "(batch index, x1, y1, x2, y2), got ", bbox.sizes());
  TORCH_CHECK(output_dim > 0 && group_size > 0 && pooled_size > 0 && part_size > 0 && sample_per_part > 0,
              "DCNv2 pooling: output_dim, group_size, pooled_size, part_size and sample_per_part must be positive");
  TORCH_CHECK(input.size(1) == int64_t(output_dim) * group_size * group_size, "DCNv2 pooling: input has ",
              input.size(1), " channels but output_dim * group_size^2 = ", int64_t(output_dim) * group_size * group_size);
  TORCH_CHECK(trans_std >= 0.0 && trans_std <= 1.0, "DCNv2 pooling: trans_std must lie in [0, 1], got ", trans_std);
  at::Tensor t = trans;
  if (no_trans) {
    t = at::zeros({1}, input.options());  // never read; keeps the kernels' pointers valid
  } else {
    check_same(input, trans, "offset");
    TORCH_CHECK(trans.dim() == 4 && trans.size(0) == bbox.size(0) && trans.size(1) >= 2 && trans.size(1) % 2 == 0 &&
                    trans.size(2) == part_size && trans.size(3) == part_size,
                "DCNv2 pooling: offset must have shape (R, 2 * num_classes, part_size, part_size) = (", bbox.size(0),
                ", 2k, ", part_size, ", ", part_size, "), got ", trans.sizes());
    TORCH_CHECK(output_dim % (trans.size(1) / 2) == 0, "DCNv2 pooling: output_dim (", output_dim,
                ") must be divisible by the number of offset classes (", trans.size(1) / 2, ")");
  }
  TORCH_CHECK(input.size(2) * input.size(3) < (int64_t(1) << 31), "DCNv2 pooling: input plane too large");
  if (bbox.size(0) > 0) {
    const auto image = bbox.select(1, 0);
    const double lo = image.min().item<double>(), hi = image.max().item<double>();
    TORCH_CHECK(lo > -1.0 && hi < static_cast<double>(input.size(0)), "DCNv2 pooling: roi batch indices span [", lo,
                ", ", hi, "] but the input holds ", input.size(0), " images");
  }
  return {input.contiguous(), bbox.contiguous(), t.contiguous()};
}

}  // namespace dcn

inline at::Tensor dcn_v2_forward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                                 const at::Tensor& offset, const at::Tensor& mask, int kernel_h, int kernel_w,
                                 int stride_h, int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w,
                                 int deformable_group) {
  auto t = dcn::check_conv_args(input, weight, bias, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h,
                                pad_w, dilation_h, dilation_w, deformable_group);
  if (input.is_cuda()) {
#ifdef WITH_CUDA
    return dcn_v2_cuda_forward(t[0], t[1], t[2], t[3], t[4], kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                               dilation_h, dilation_w, deformable_group);
#else
    dcn::no_cuda();
#endif
  }
  return dcn_v2_cpu_forward(t[0], t[1], t[2], t[3], t[4], kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                            dilation_h, dilation_w, deformable_group);
}

// Returns {grad_input, grad_offset, grad_mask, grad_weight, grad_bias}.
inline std::vector<at::Tensor> dcn_v2_backward(const at::Tensor& input, const at::Tensor& weight,
                                               const at::Tensor& bias, const at::Tensor& offset,
                                               const at::Tensor& mask, const at::Tensor& grad_output, int kernel_h,
                                               int kernel_w, int stride_h, int stride_w, int pad_h, int pad_w,
                                               int dilation_h, int dilation_w, int deformable_group) {
  auto t = dcn::check_conv_args(input, weight, bias, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h,
                                pad_w, dilation_h, dilation_w, deformable_group);
  dcn::check_same(input, grad_output, "grad_output");
  const int64_t ho = dcn::out_size(input.size(2), kernel_h, stride_h, pad_h, dilation_h);
  const int64_t wo = dcn::out_size(input.size(3), kernel_w, stride_w, pad_w, dilation_w);
  TORCH_CHECK(grad_output.dim() == 4 && grad_output.size(0) == input.size(0) && grad_output.size(1) == weight.size(0) &&
                  grad_output.size(2) == ho && grad_output.size(3) == wo,
              "DCNv2: grad_output has shape ", grad_output.sizes(), ", expected (", input.size(0), ", ",
              weight.size(0), ", ", ho, ", ", wo, ")");
  const at::Tensor go = grad_output.contiguous();
  if (input.is_cuda()) {
#ifdef WITH_CUDA
    return dcn_v2_cuda_backward(t[0], t[1], t[2], t[3], t[4], go, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                                dilation_h, dilation_w, deformable_group);
#else
    dcn::no_cuda();
#endif
  }
  return dcn_v2_cpu_backward(t[0], t[1], t[2], t[3], t[4], go, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                             dilation_h, dilation_w, deformable_group);
}

// Returns (output, top_count); top_count (samples averaged per bin) is what the backward needs.
inline std::tuple<at::Tensor, at::Tensor> dcn_v2_psroi_pooling_forward(
    const at::Tensor& input, const at::Tensor& bbox, const at::Tensor& trans, int no_trans, double spatial_scale,
    int output_dim, int group_size, int pooled_size, int part_size, int sample_per_part, double trans_std) {
  auto t = dcn::check_pool_args(input, bbox, trans, no_trans, output_dim, group_size, pooled_size, part_size,
                                sample_per_part, trans_std);
  if (input.is_cuda()) {
#ifdef WITH_CUDA
    return dcn_v2_psroi_pooling_cuda_forward(t[0], t[1], t[2], no_trans, spatial_scale, output_dim, group_size,
                                             pooled_size, part_size, sample_per_part, trans_std);
#else
    dcn::no_cuda();
#endif
  }
  return dcn_v2_psroi_pooling_cpu_forward(t[0], t[1], t[2], no_trans, spatial_scale, output_dim, group_size,
                                          pooled_size, part_size, sample_per_part, trans_std);
}

// Returns (grad_input, grad_offset); grad_offset is all zeros (shape of `trans`) when no_trans.
inline std::tuple<at::Tensor, at::Tensor> dcn_v2_psroi_pooling_backward(
    const at::Tensor& out_grad, const at::Tensor& input, const at::Tensor& bbox, const at::Tensor& trans,
    const at::Tensor& top_count, int no_trans, double spatial_scale, int output_dim, int group_size,
    int pooled_size, int part_size, int sample_per_part, double trans_std) {
  auto t = dcn::check_pool_args(input, bbox, trans, no_trans, output_dim, group_size, pooled_size, part_size,
                                sample_per_part, trans_std);
  dcn::check_same(input, out_grad, "grad_output");
  dcn::check_same(input, top_count, "top_count");
  const std::vector<int64_t> want = {bbox.size(0), output_dim, pooled_size, pooled_size};
  TORCH_CHECK(out_grad.sizes() == at::IntArrayRef(want) && top_count.sizes() == at::IntArrayRef(want),
              "DCNv2 pooling: grad_output and top_count must have shape ", at::IntArrayRef(want));
  const at::Tensor go = out_grad.contiguous();
  const at::Tensor tc = top_count.contiguous();
  std::tuple<at::Tensor, at::Tensor> res;
  if (input.is_cuda()) {
#ifdef WITH_CUDA
    res = dcn_v2_psroi_pooling_cuda_backward(go, t[0], t[1], t[2], tc, no_trans, spatial_scale, output_dim,
                                             group_size, pooled_size, part_size, sample_per_part, trans_std);
#else
    dcn::no_cuda();
#endif
  } else {
    res = dcn_v2_psroi_pooling_cpu_backward(go, t[0], t[1], t[2], tc, no_trans, spatial_scale, output_dim, group_size,
                                            pooled_size, part_size, sample_per_part, trans_std);
  }
  if (no_trans) std::get<1>(res) = at::zeros_like(trans);
  return res;
}
