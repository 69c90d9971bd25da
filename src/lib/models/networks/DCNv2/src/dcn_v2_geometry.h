// Shape of a modulated deformable convolution call, shared by the CPU and CUDA kernels.
// Index is int64_t on the CPU and int on the GPU (fewer registers per thread).
#pragma once

#include <ATen/ATen.h>
#include <c10/macros/Macros.h>

namespace dcn {

template <typename Index>
struct ConvGeometry {
  Index channels, height, width;
  Index kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
  Index groups, out_h, out_w;

  C10_HOST_DEVICE Index taps() const { return kernel_h * kernel_w; }
  C10_HOST_DEVICE Index pixels() const { return out_h * out_w; }
  C10_HOST_DEVICE Index channels_per_group() const { return channels / groups; }
  C10_HOST_DEVICE Index plane() const { return height * width; }
};

template <typename Index>
inline ConvGeometry<Index> conv_geometry(const at::Tensor& input, int kernel_h, int kernel_w, int stride_h,
                                         int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w,
                                         int deformable_group) {
  ConvGeometry<Index> g{};
  g.channels = static_cast<Index>(input.size(1));
  g.height = static_cast<Index>(input.size(2));
  g.width = static_cast<Index>(input.size(3));
  g.kernel_h = kernel_h;
  g.kernel_w = kernel_w;
  g.stride_h = stride_h;
  g.stride_w = stride_w;
  g.pad_h = pad_h;
  g.pad_w = pad_w;
  g.dil_h = dilation_h;
  g.dil_w = dilation_w;
  g.groups = deformable_group;
  g.out_h = (g.height + 2 * pad_h - (dilation_h * (kernel_h - 1) + 1)) / stride_h + 1;
  g.out_w = (g.width + 2 * pad_w - (dilation_w * (kernel_w - 1) + 1)) / stride_w + 1;
  return g;
}

}  // namespace dcn
