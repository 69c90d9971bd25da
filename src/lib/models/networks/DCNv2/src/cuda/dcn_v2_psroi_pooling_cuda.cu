// Deformable position-sensitive ROI pooling on CUDA: one thread per output bin.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/Atomic.cuh>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>
#include <tuple>

#include "../dcn_v2_psroi_args.h"
#include "../dcn_v2_sampling.h"
#include "vision.h"

namespace {

constexpr int kThreads = 256;

inline unsigned int blocks_for(int64_t n) {
  return static_cast<unsigned int>(std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, 1 << 20)));
}

using dcn::PoolArgs;

template <typename scalar_t>
__device__ inline dcn::PoolBin<at::opmath_type<scalar_t>> bin_of(int64_t index, const PoolArgs& a,
                                                                 const scalar_t* rois, const scalar_t* trans,
                                                                 int& n, int& ctop) {
  using acc_t = at::opmath_type<scalar_t>;
  const int ps = a.pooled_size;
  const int pw = static_cast<int>(index % ps);
  const int ph = static_cast<int>((index / ps) % ps);
  ctop = static_cast<int>((index / ps / ps) % a.output_dim);
  n = static_cast<int>(index / ps / ps / a.output_dim);
  return dcn::make_pool_bin<acc_t, scalar_t>(n, ctop, ph, pw, rois + int64_t(n) * 5, trans, a.no_trans,
                                             static_cast<acc_t>(a.spatial_scale), static_cast<acc_t>(a.trans_std),
                                             a.group_size, ps, a.part_size, a.sample_per_part, a.num_classes,
                                             a.channels_each_class);
}

template <typename scalar_t>
__global__ void pool_forward_kernel(int64_t count, const scalar_t* __restrict__ data,
                                    const scalar_t* __restrict__ rois, const scalar_t* __restrict__ trans, PoolArgs a,
                                    scalar_t* __restrict__ top, scalar_t* __restrict__ top_count) {
  using acc_t = at::opmath_type<scalar_t>;
  for (int64_t index = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; index < count;
       index += int64_t(blockDim.x) * gridDim.x) {
    int n, ctop;
    const auto b = bin_of<scalar_t>(index, a, rois, trans, n, ctop);
    const scalar_t* img = data + (int64_t(b.roi_batch) * a.channels + b.channel) * a.height * a.width;
    acc_t sum = acc_t(0);
    int cnt = 0;
    for (int ih = 0; ih < a.sample_per_part; ++ih) {
      for (int iw = 0; iw < a.sample_per_part; ++iw) {
        acc_t x = b.wstart + static_cast<acc_t>(iw) * b.sub_w;
        acc_t y = b.hstart + static_cast<acc_t>(ih) * b.sub_h;
        if (!dcn::clamp_pool_sample(x, y, a.height, a.width)) continue;
        const auto t = dcn::make_pool_tap(x, y);
        sum += (acc_t(1) - t.dx) * (acc_t(1) - t.dy) * static_cast<acc_t>(img[t.y0 * a.width + t.x0]) +
               (acc_t(1) - t.dx) * t.dy * static_cast<acc_t>(img[t.y1 * a.width + t.x0]) +
               t.dx * (acc_t(1) - t.dy) * static_cast<acc_t>(img[t.y0 * a.width + t.x1]) +
               t.dx * t.dy * static_cast<acc_t>(img[t.y1 * a.width + t.x1]);
        ++cnt;
      }
    }
    top[index] = static_cast<scalar_t>(cnt == 0 ? acc_t(0) : sum / static_cast<acc_t>(cnt));
    top_count[index] = static_cast<scalar_t>(cnt);
  }
}

template <typename scalar_t>
__global__ void pool_backward_kernel(int64_t count, const scalar_t* __restrict__ top_diff,
                                     const scalar_t* __restrict__ top_count, const scalar_t* __restrict__ data,
                                     const scalar_t* __restrict__ rois, const scalar_t* __restrict__ trans,
                                     PoolArgs a, at::opmath_type<scalar_t>* grad_data,
                                     at::opmath_type<scalar_t>* grad_trans) {
  using acc_t = at::opmath_type<scalar_t>;
  for (int64_t index = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; index < count;
       index += int64_t(blockDim.x) * gridDim.x) {
    const acc_t cnt = static_cast<acc_t>(top_count[index]);
    if (cnt <= acc_t(0)) continue;
    int n, ctop;
    const auto b = bin_of<scalar_t>(index, a, rois, trans, n, ctop);
    const acc_t diff = static_cast<acc_t>(top_diff[index]) / cnt;
    const int64_t base = (int64_t(b.roi_batch) * a.channels + b.channel) * a.height * a.width;
    const scalar_t* img = data + base;
    acc_t* gimg = grad_data + base;
    for (int ih = 0; ih < a.sample_per_part; ++ih) {
      for (int iw = 0; iw < a.sample_per_part; ++iw) {
        acc_t x = b.wstart + static_cast<acc_t>(iw) * b.sub_w;
        acc_t y = b.hstart + static_cast<acc_t>(ih) * b.sub_h;
        if (!dcn::clamp_pool_sample(x, y, a.height, a.width)) continue;
        const auto t = dcn::make_pool_tap(x, y);
        const int i00 = t.y0 * a.width + t.x0, i01 = t.y1 * a.width + t.x0;
        const int i10 = t.y0 * a.width + t.x1, i11 = t.y1 * a.width + t.x1;
        gpuAtomicAdd(gimg + i00, (acc_t(1) - t.dx) * (acc_t(1) - t.dy) * diff);
        gpuAtomicAdd(gimg + i01, (acc_t(1) - t.dx) * t.dy * diff);
        gpuAtomicAdd(gimg + i10, t.dx * (acc_t(1) - t.dy) * diff);
        gpuAtomicAdd(gimg + i11, t.dx * t.dy * diff);
        if (a.no_trans) continue;
        const acc_t u00 = static_cast<acc_t>(img[i00]), u01 = static_cast<acc_t>(img[i01]);
        const acc_t u10 = static_cast<acc_t>(img[i10]), u11 = static_cast<acc_t>(img[i11]);
        const acc_t ts = static_cast<acc_t>(a.trans_std);
        const acc_t gx = (u11 * t.dy + u10 * (acc_t(1) - t.dy) - u01 * t.dy - u00 * (acc_t(1) - t.dy)) * ts * diff *
                         b.roi_w;
        const acc_t gy = (u11 * t.dx + u01 * (acc_t(1) - t.dx) - u10 * t.dx - u00 * (acc_t(1) - t.dx)) * ts * diff *
                         b.roi_h;
        gpuAtomicAdd(grad_trans + b.trans_x_index, gx);
        gpuAtomicAdd(grad_trans + b.trans_x_index + a.part_size * a.part_size, gy);
      }
    }
  }
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> dcn_v2_psroi_pooling_cuda_forward(
    const at::Tensor& input, const at::Tensor& bbox, const at::Tensor& trans, int no_trans, double spatial_scale,
    int output_dim, int group_size, int pooled_size, int part_size, int sample_per_part, double trans_std) {
  const c10::cuda::CUDAGuard device_guard(input.device());
  const PoolArgs a = dcn::pool_args(input, bbox, trans, no_trans, spatial_scale, output_dim, group_size, pooled_size, part_size,
                               sample_per_part, trans_std);
  at::Tensor out = at::empty({bbox.size(0), output_dim, pooled_size, pooled_size}, input.options());
  at::Tensor count = at::empty_like(out);
  const int64_t total = out.numel();
  if (total == 0) return std::make_tuple(out, count);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, input.scalar_type(),
                                  "dcn_v2_psroi_pooling_cuda_forward", [&] {
    pool_forward_kernel<scalar_t><<<blocks_for(total), kThreads, 0, stream>>>(
        total, input.data_ptr<scalar_t>(), bbox.data_ptr<scalar_t>(), trans.data_ptr<scalar_t>(), a,
        out.data_ptr<scalar_t>(), count.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return std::make_tuple(out, count);
}

std::tuple<at::Tensor, at::Tensor> dcn_v2_psroi_pooling_cuda_backward(
    const at::Tensor& out_grad, const at::Tensor& input, const at::Tensor& bbox, const at::Tensor& trans,
    const at::Tensor& top_count, int no_trans, double spatial_scale, int output_dim, int group_size,
    int pooled_size, int part_size, int sample_per_part, double trans_std) {
  const c10::cuda::CUDAGuard device_guard(input.device());
  const PoolArgs a = dcn::pool_args(input, bbox, trans, no_trans, spatial_scale, output_dim, group_size, pooled_size, part_size,
                               sample_per_part, trans_std);
  const auto acc_type = at::toOpMathType(input.scalar_type());
  at::Tensor grad_input = at::zeros(input.sizes(), input.options().dtype(acc_type));
  at::Tensor grad_trans = at::zeros(trans.sizes(), trans.options().dtype(acc_type));
  const int64_t total = out_grad.numel();
  if (total > 0) {
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, input.scalar_type(),
                                    "dcn_v2_psroi_pooling_cuda_backward", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      pool_backward_kernel<scalar_t><<<blocks_for(total), kThreads, 0, stream>>>(
          total, out_grad.data_ptr<scalar_t>(), top_count.data_ptr<scalar_t>(), input.data_ptr<scalar_t>(),
          bbox.data_ptr<scalar_t>(), trans.data_ptr<scalar_t>(), a, grad_input.data_ptr<acc_t>(),
          grad_trans.data_ptr<acc_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return std::make_tuple(grad_input.to(input.scalar_type()), grad_trans.to(trans.scalar_type()));
}
