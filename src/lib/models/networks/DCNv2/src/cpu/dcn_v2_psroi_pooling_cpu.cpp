// Deformable position-sensitive ROI pooling on the CPU.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <tuple>

#include "../dcn_v2_psroi_args.h"
#include "../dcn_v2_sampling.h"
#include "vision.h"

namespace {

using dcn::PoolArgs;

}  // namespace

std::tuple<at::Tensor, at::Tensor> dcn_v2_psroi_pooling_cpu_forward(
    const at::Tensor& input, const at::Tensor& bbox, const at::Tensor& trans, int no_trans, double spatial_scale,
    int output_dim, int group_size, int pooled_size, int part_size, int sample_per_part, double trans_std) {
  const PoolArgs a = dcn::pool_args(input, bbox, trans, no_trans, spatial_scale, output_dim, group_size, pooled_size,
                               part_size, sample_per_part, trans_std);
  at::Tensor out = at::empty({a.num_rois, output_dim, pooled_size, pooled_size}, input.options());
  at::Tensor count = at::empty_like(out);
  const int64_t total = out.numel();
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "dcn_v2_psroi_pooling_cpu_forward", [&] {
    using T = scalar_t;
    const T* data = input.data_ptr<T>();
    const T* rois = bbox.data_ptr<T>();
    const T* tr = trans.data_ptr<T>();
    T* top = out.data_ptr<T>();
    T* top_count = count.data_ptr<T>();
    const int64_t plane = int64_t(a.height) * a.width;
    at::parallel_for(0, total, 256, [&](int64_t begin, int64_t end) {
      for (int64_t index = begin; index < end; ++index) {
        const int pw = static_cast<int>(index % a.pooled_size);
        const int ph = static_cast<int>((index / a.pooled_size) % a.pooled_size);
        const int ctop = static_cast<int>((index / a.pooled_size / a.pooled_size) % a.output_dim);
        const int n = static_cast<int>(index / a.pooled_size / a.pooled_size / a.output_dim);
        const auto b = dcn::make_pool_bin<T>(n, ctop, ph, pw, rois + n * 5, tr, a.no_trans, T(a.spatial_scale),
                                             T(a.trans_std), a.group_size, a.pooled_size, a.part_size,
                                             a.sample_per_part, a.num_classes, a.channels_each_class);
        const T* img = data + (int64_t(b.roi_batch) * a.channels + b.channel) * plane;
        T sum = T(0);
        int cnt = 0;
        for (int ih = 0; ih < a.sample_per_part; ++ih) {
          for (int iw = 0; iw < a.sample_per_part; ++iw) {
            T x = b.wstart + static_cast<T>(iw) * b.sub_w;
            T y = b.hstart + static_cast<T>(ih) * b.sub_h;
            if (!dcn::clamp_pool_sample(x, y, a.height, a.width)) continue;
            const auto t = dcn::make_pool_tap(x, y);
            sum += (T(1) - t.dx) * (T(1) - t.dy) * img[t.y0 * a.width + t.x0] +
                   (T(1) - t.dx) * t.dy * img[t.y1 * a.width + t.x0] +
                   t.dx * (T(1) - t.dy) * img[t.y0 * a.width + t.x1] + t.dx * t.dy * img[t.y1 * a.width + t.x1];
            ++cnt;
          }
        }
        top[index] = cnt == 0 ? T(0) : sum / static_cast<T>(cnt);
        top_count[index] = static_cast<T>(cnt);
      }
    });
  });
  return std::make_tuple(out, count);
}

std::tuple<at::Tensor, at::Tensor> dcn_v2_psroi_pooling_cpu_backward(
    const at::Tensor& out_grad, const at::Tensor& input, const at::Tensor& bbox, const at::Tensor& trans,
    const at::Tensor& top_count, int no_trans, double spatial_scale, int output_dim, int group_size,
    int pooled_size, int part_size, int sample_per_part, double trans_std) {
  const PoolArgs a = dcn::pool_args(input, bbox, trans, no_trans, spatial_scale, output_dim, group_size, pooled_size,
                               part_size, sample_per_part, trans_std);
  at::Tensor grad_input = at::zeros_like(input);
  at::Tensor grad_trans = at::zeros_like(trans);
  // Output channels of one offset class write disjoint input channels and share only their own
  // offsets, so splitting the work by class (or by channel without offsets) needs no atomics.
  const int units = a.no_trans ? a.output_dim : a.num_classes;
  const int per_unit = a.no_trans ? 1 : a.channels_each_class;
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "dcn_v2_psroi_pooling_cpu_backward", [&] {
    using T = scalar_t;
    const T* data = input.data_ptr<T>();
    const T* rois = bbox.data_ptr<T>();
    const T* tr = trans.data_ptr<T>();
    const T* top_diff = out_grad.data_ptr<T>();
    const T* cnt = top_count.data_ptr<T>();
    T* gdata = grad_input.data_ptr<T>();
    T* gtr = grad_trans.data_ptr<T>();
    const int64_t plane = int64_t(a.height) * a.width;
    const int ps = a.pooled_size;
    at::parallel_for(0, units, 1, [&](int64_t ubegin, int64_t uend) {
      for (int64_t u = ubegin; u < uend; ++u) {
        for (int n = 0; n < a.num_rois; ++n) {
          for (int ctop = static_cast<int>(u) * per_unit; ctop < (static_cast<int>(u) + 1) * per_unit; ++ctop) {
            for (int ph = 0; ph < ps; ++ph) {
              for (int pw = 0; pw < ps; ++pw) {
                const int64_t index = ((int64_t(n) * a.output_dim + ctop) * ps + ph) * ps + pw;
                if (cnt[index] <= T(0)) continue;
                const T diff = top_diff[index] / cnt[index];
                const auto b = dcn::make_pool_bin<T>(n, ctop, ph, pw, rois + n * 5, tr, a.no_trans,
                                                     T(a.spatial_scale), T(a.trans_std), a.group_size, ps,
                                                     a.part_size, a.sample_per_part, a.num_classes,
                                                     a.channels_each_class);
                const int64_t base = (int64_t(b.roi_batch) * a.channels + b.channel) * plane;
                const T* img = data + base;
                T* gimg = gdata + base;
                for (int ih = 0; ih < a.sample_per_part; ++ih) {
                  for (int iw = 0; iw < a.sample_per_part; ++iw) {
                    T x = b.wstart + static_cast<T>(iw) * b.sub_w;
                    T y = b.hstart + static_cast<T>(ih) * b.sub_h;
                    if (!dcn::clamp_pool_sample(x, y, a.height, a.width)) continue;
                    const auto t = dcn::make_pool_tap(x, y);
                    const int i00 = t.y0 * a.width + t.x0, i01 = t.y1 * a.width + t.x0;
                    const int i10 = t.y0 * a.width + t.x1, i11 = t.y1 * a.width + t.x1;
                    gimg[i00] += (T(1) - t.dx) * (T(1) - t.dy) * diff;
                    gimg[i01] += (T(1) - t.dx) * t.dy * diff;
                    gimg[i10] += t.dx * (T(1) - t.dy) * diff;
                    gimg[i11] += t.dx * t.dy * diff;
                    if (a.no_trans) continue;
                    const T u00 = img[i00], u01 = img[i01], u10 = img[i10], u11 = img[i11];
                    const T gx = (u11 * t.dy + u10 * (T(1) - t.dy) - u01 * t.dy - u00 * (T(1) - t.dy)) *
                                 T(a.trans_std) * diff * b.roi_w;
                    const T gy = (u11 * t.dx + u01 * (T(1) - t.dx) - u10 * t.dx - u00 * (T(1) - t.dx)) *
                                 T(a.trans_std) * diff * b.roi_h;
                    gtr[b.trans_x_index] += gx;
                    gtr[b.trans_x_index + a.part_size * a.part_size] += gy;
                  }
                }
              }
            }
          }
        }
      }
    });
  });
  return std::make_tuple(grad_input, grad_trans);
}
