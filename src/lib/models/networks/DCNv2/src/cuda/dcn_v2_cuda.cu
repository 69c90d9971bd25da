// Modulated deformable convolution on CUDA: deformable im2col, one GEMM per batch element, and the
// backward as col2im (atomic scatter into an accumulation-precision buffer) plus a coordinate pass.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/Atomic.cuh>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>
#include <vector>

#include "../dcn_v2_geometry.h"
#include "../dcn_v2_sampling.h"
#include "vision.h"

namespace {

constexpr int kThreads = 256;

inline unsigned int blocks_for(int64_t n) {
  // grid-stride loops cover whatever a capped grid does not
  return static_cast<unsigned int>(std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, 1 << 20)));
}

using Geo = dcn::ConvGeometry<int>;

// The sample point of tap k at output pixel p for one batch element.
template <typename scalar_t, typename acc_t>
__device__ inline void sample_point(const Geo& g, const scalar_t* offset, int grp, int k, int64_t p, acc_t& y,
                                    acc_t& x) {
  const int64_t P = int64_t(g.out_h) * g.out_w;
  const int K = g.kernel_h * g.kernel_w;
  const int oy = static_cast<int>(p / g.out_w), ox = static_cast<int>(p % g.out_w);
  const int i = k / g.kernel_w, j = k % g.kernel_w;
  const scalar_t* off = offset + (int64_t(grp) * 2 * K + 2 * k) * P + p;
  y = static_cast<acc_t>(oy * g.stride_h - g.pad_h + i * g.dil_h) + static_cast<acc_t>(off[0]);
  x = static_cast<acc_t>(ox * g.stride_w - g.pad_w + j * g.dil_w) + static_cast<acc_t>(off[P]);
}

// One thread per (channel, pixel): writes the K column rows of that channel.
template <typename scalar_t>
__global__ void im2col_kernel(int64_t n, const scalar_t* __restrict__ im, const scalar_t* __restrict__ offset,
                              const scalar_t* __restrict__ mask, Geo g, scalar_t* __restrict__ col) {
  using acc_t = at::opmath_type<scalar_t>;
  const int K = g.kernel_h * g.kernel_w;
  const int64_t P = int64_t(g.out_h) * g.out_w;
  const int cpg = g.channels / g.groups;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < n; t += int64_t(blockDim.x) * gridDim.x) {
    const int64_t p = t % P;
    const int c = static_cast<int>(t / P);
    const int grp = c / cpg;
    const scalar_t* img = im + int64_t(c) * g.height * g.width;
    for (int k = 0; k < K; ++k) {
      acc_t y, x;
      sample_point<scalar_t, acc_t>(g, offset, grp, k, p, y, x);
      dcn::Tap<acc_t> tap;
      acc_t v = acc_t(0);
      if (dcn::make_tap(y, x, g.height, g.width, tap)) {
        DCN_UNROLL
        for (int q = 0; q < 4; ++q) v += tap.w[q] * static_cast<acc_t>(img[tap.idx[q]]);
      }
      const acc_t m = static_cast<acc_t>(mask[(int64_t(grp) * K + k) * P + p]);
      col[(int64_t(c) * K + k) * P + p] = static_cast<scalar_t>(v * m);
    }
  }
}

// One thread per (channel, tap, pixel): scatters its grad column entry onto the four corners.
template <typename scalar_t>
__global__ void col2im_kernel(int64_t n, const scalar_t* __restrict__ gcol, const scalar_t* __restrict__ offset,
                              const scalar_t* __restrict__ mask, Geo g, at::opmath_type<scalar_t>* grad_im) {
  using acc_t = at::opmath_type<scalar_t>;
  const int K = g.kernel_h * g.kernel_w;
  const int64_t P = int64_t(g.out_h) * g.out_w;
  const int cpg = g.channels / g.groups;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < n; t += int64_t(blockDim.x) * gridDim.x) {
    const int64_t p = t % P;
    const int k = static_cast<int>((t / P) % K);
    const int c = static_cast<int>(t / P / K);
    const int grp = c / cpg;
    acc_t y, x;
    sample_point<scalar_t, acc_t>(g, offset, grp, k, p, y, x);
    dcn::Tap<acc_t> tap;
    if (!dcn::make_tap(y, x, g.height, g.width, tap)) continue;
    const acc_t top = static_cast<acc_t>(gcol[t]) * static_cast<acc_t>(mask[(int64_t(grp) * K + k) * P + p]);
    acc_t* gimg = grad_im + int64_t(c) * g.height * g.width;
    DCN_UNROLL
    for (int q = 0; q < 4; ++q) {
      if (tap.w[q] != acc_t(0)) gpuAtomicAdd(gimg + tap.idx[q], tap.w[q] * top);
    }
  }
}

// One thread per (group, tap, pixel): sums over the group's channels the grad column times the
// sample's derivative (offset gradient) and value (mask gradient); no two threads share an output.
template <typename scalar_t>
__global__ void col2im_coord_kernel(int64_t n, const scalar_t* __restrict__ gcol, const scalar_t* __restrict__ im,
                                    const scalar_t* __restrict__ offset, const scalar_t* __restrict__ mask, Geo g,
                                    scalar_t* __restrict__ grad_offset, scalar_t* __restrict__ grad_mask) {
  using acc_t = at::opmath_type<scalar_t>;
  const int K = g.kernel_h * g.kernel_w;
  const int64_t P = int64_t(g.out_h) * g.out_w;
  const int cpg = g.channels / g.groups;
  const int64_t plane = int64_t(g.height) * g.width;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < n; t += int64_t(blockDim.x) * gridDim.x) {
    const int64_t p = t % P;
    const int k = static_cast<int>((t / P) % K);
    const int grp = static_cast<int>(t / P / K);
    acc_t y, x;
    sample_point<scalar_t, acc_t>(g, offset, grp, k, p, y, x);
    dcn::Tap<acc_t> tap;
    acc_t gy = acc_t(0), gx = acc_t(0), gm = acc_t(0);
    if (dcn::make_tap(y, x, g.height, g.width, tap)) {
      for (int c = grp * cpg; c < (grp + 1) * cpg; ++c) {
        const scalar_t* img = im + int64_t(c) * plane;
        const acc_t gv = static_cast<acc_t>(gcol[(int64_t(c) * K + k) * P + p]);
        acc_t vy = acc_t(0), vx = acc_t(0), vm = acc_t(0);
        DCN_UNROLL
        for (int q = 0; q < 4; ++q) {
          const acc_t v = static_cast<acc_t>(img[tap.idx[q]]);
          vm += tap.w[q] * v;
          vy += tap.wdy[q] * v;
          vx += tap.wdx[q] * v;
        }
        gm += gv * vm;
        gy += gv * vy;
        gx += gv * vx;
      }
    }
    const acc_t m = static_cast<acc_t>(mask[t]);  // t is also the flat (group * K + k) * P + p mask index
    grad_offset[(int64_t(grp) * 2 * K + 2 * k) * P + p] = static_cast<scalar_t>(m * gy);
    grad_offset[(int64_t(grp) * 2 * K + 2 * k + 1) * P + p] = static_cast<scalar_t>(m * gx);
    grad_mask[t] = static_cast<scalar_t>(gm);
  }
}

}  // namespace

at::Tensor dcn_v2_cuda_forward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                               const at::Tensor& offset, const at::Tensor& mask, int kernel_h, int kernel_w,
                               int stride_h, int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w,
                               int deformable_group) {
  const c10::cuda::CUDAGuard device_guard(input.device());
  const Geo g = dcn::conv_geometry<int>(input, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w,
                         deformable_group);
  const int64_t batch = input.size(0), co = weight.size(0), K = int64_t(kernel_h) * kernel_w;
  const int64_t P = int64_t(g.out_h) * g.out_w;
  at::Tensor output = at::empty({batch, co, g.out_h, g.out_w}, input.options());
  if (batch == 0) return output;
  at::Tensor columns = at::empty({g.channels * K, P}, input.options());
  const at::Tensor w2d = weight.view({co, g.channels * K});
  const at::Tensor b2d = bias.view({co, 1});
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int64_t n = int64_t(g.channels) * P;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, input.scalar_type(),
                                  "dcn_v2_cuda_forward", [&] {
    for (int64_t b = 0; b < batch; ++b) {
      im2col_kernel<scalar_t><<<blocks_for(n), kThreads, 0, stream>>>(
          n, input[b].data_ptr<scalar_t>(), offset[b].data_ptr<scalar_t>(), mask[b].data_ptr<scalar_t>(), g,
          columns.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      at::Tensor out_b = output[b].view({co, P});
      at::addmm_out(out_b, b2d, w2d, columns);
    }
  });
  return output;
}

std::vector<at::Tensor> dcn_v2_cuda_backward(const at::Tensor& input, const at::Tensor& weight,
                                             const at::Tensor& bias, const at::Tensor& offset,
                                             const at::Tensor& mask, const at::Tensor& grad_output, int kernel_h,
                                             int kernel_w, int stride_h, int stride_w, int pad_h, int pad_w,
                                             int dilation_h, int dilation_w, int deformable_group) {
  const c10::cuda::CUDAGuard device_guard(input.device());
  const Geo g = dcn::conv_geometry<int>(input, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w,
                         deformable_group);
  const int64_t batch = input.size(0), co = weight.size(0), K = int64_t(kernel_h) * kernel_w;
  const int64_t P = int64_t(g.out_h) * g.out_w;
  // Scatter and cross-batch sums accumulate in float for half/bfloat16 inputs.
  const auto acc_type = at::toOpMathType(input.scalar_type());
  at::Tensor grad_input_acc = at::zeros(input.sizes(), input.options().dtype(acc_type));
  at::Tensor grad_weight_acc = at::zeros({co, g.channels * K}, weight.options().dtype(acc_type));
  at::Tensor grad_offset = at::zeros_like(offset);
  at::Tensor grad_mask = at::zeros_like(mask);
  at::Tensor grad_bias = grad_output.sum({0, 2, 3}).view_as(bias);
  if (batch > 0) {
    at::Tensor columns = at::empty({g.channels * K, P}, input.options());
    const at::Tensor w2d_t = weight.view({co, g.channels * K}).t();
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    const int64_t n_im2col = int64_t(g.channels) * P;
    const int64_t n_col2im = int64_t(g.channels) * K * P;
    const int64_t n_coord = int64_t(g.groups) * K * P;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, input.scalar_type(),
                                    "dcn_v2_cuda_backward", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      for (int64_t b = 0; b < batch; ++b) {
        const scalar_t* im = input[b].data_ptr<scalar_t>();
        const scalar_t* off = offset[b].data_ptr<scalar_t>();
        const scalar_t* msk = mask[b].data_ptr<scalar_t>();
        im2col_kernel<scalar_t><<<blocks_for(n_im2col), kThreads, 0, stream>>>(n_im2col, im, off, msk, g,
                                                                                columns.data_ptr<scalar_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        const at::Tensor go_b = grad_output[b].view({co, P});
        grad_weight_acc.add_(at::mm(go_b, columns.t()));
        at::mm_out(columns, w2d_t, go_b);  // the columns buffer now holds grad_columns
        col2im_kernel<scalar_t><<<blocks_for(n_col2im), kThreads, 0, stream>>>(
            n_col2im, columns.data_ptr<scalar_t>(), off, msk, g, grad_input_acc[b].data_ptr<acc_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        col2im_coord_kernel<scalar_t><<<blocks_for(n_coord), kThreads, 0, stream>>>(
            n_coord, columns.data_ptr<scalar_t>(), im, off, msk, g, grad_offset[b].data_ptr<scalar_t>(),
            grad_mask[b].data_ptr<scalar_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
    });
  }
  return {grad_input_acc.to(input.scalar_type()), grad_offset, grad_mask,
          grad_weight_acc.to(weight.scalar_type()).view_as(weight), grad_bias};
}
