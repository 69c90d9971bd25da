// Modulated deformable convolution on the CPU: deformable im2col (channels-last, pixel-major columns)
// then one GEMM per batch element; the backward scatters grad columns with one thread per channel,
// so no atomics are needed, and computes offset/mask gradients in a separate coordinate pass.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "../dcn_v2_geometry.h"
#include "../dcn_v2_sampling.h"
#include "vision.h"

namespace {

using Geometry = dcn::ConvGeometry<int64_t>;

// Where tap k of output pixel p samples the input, offsets included.
template <typename T>
inline void sample_point(const Geometry& g, const T* off_y, const T* off_x, int64_t k, int64_t p, T& y, T& x) {
  const int64_t oy = p / g.out_w, ox = p - (p / g.out_w) * g.out_w;
  const int64_t i = k / g.kernel_w, j = k - (k / g.kernel_w) * g.kernel_w;
  y = static_cast<T>(oy * g.stride_h - g.pad_h + i * g.dil_h) + off_y[p];
  x = static_cast<T>(ox * g.stride_w - g.pad_w + j * g.dil_w) + off_x[p];
}

// Corner indices and mask-weighted bilinear weights of every (group, tap, pixel), laid out as
// rows (group * K + k) * 4 + corner of `pixels` entries; shared by im2col and col2im.
template <typename T>
void build_taps(const Geometry& g, const T* offset, const T* mask, int32_t* idx, T* wt) {
  const int64_t K = g.taps(), P = g.pixels();
  at::parallel_for(0, g.groups * K * P, 2048, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t gk = t / P, p = t - gk * P;
      const int64_t grp = gk / K, k = gk - grp * K;
      const T* off_y = offset + (grp * 2 * K + 2 * k) * P;
      T y, x;
      sample_point(g, off_y, off_y + P, k, p, y, x);
      dcn::Tap<T> tap;
      dcn::make_tap(y, x, static_cast<int>(g.height), static_cast<int>(g.width), tap);
      const T m = mask[gk * P + p];
      for (int q = 0; q < 4; ++q) {
        idx[(gk * 4 + q) * P + p] = tap.idx[q];
        wt[(gk * 4 + q) * P + p] = tap.w[q] * m;
      }
    }
  });
}

// Channels-last im2col: columns[p][k * C + c] = mask * bilinear sample of channel c for tap k,
// read from an (H, W, C) image, so the innermost loop runs over contiguous channels (vectorisable)
// while the corner tables are read once per (tap, pixel).
template <typename T>
void im2col_channels_last(const Geometry& g, const T* im_hwc, const int32_t* idx, const T* wt, T* col) {
  const int64_t K = g.taps(), P = g.pixels(), C = g.channels, cpg = g.channels_per_group();
  at::parallel_for(0, P, std::max<int64_t>(1, 4096 / (K * C)), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      T* out_p = col + p * K * C;
      for (int64_t k = 0; k < K; ++k) {
        for (int64_t grp = 0; grp < g.groups; ++grp) {
          const int64_t gk = grp * K + k;
          const int64_t t0 = (gk * 4) * P + p;
          const T w0 = wt[t0], w1 = wt[t0 + P], w2 = wt[t0 + 2 * P], w3 = wt[t0 + 3 * P];
          const T* r0 = im_hwc + int64_t(idx[t0]) * C + grp * cpg;
          const T* r1 = im_hwc + int64_t(idx[t0 + P]) * C + grp * cpg;
          const T* r2 = im_hwc + int64_t(idx[t0 + 2 * P]) * C + grp * cpg;
          const T* r3 = im_hwc + int64_t(idx[t0 + 3 * P]) * C + grp * cpg;
          T* out = out_p + k * C + grp * cpg;
          for (int64_t c = 0; c < cpg; ++c) out[c] = w0 * r0[c] + w1 * r1[c] + w2 * r2[c] + w3 * r3[c];
        }
      }
    }
  });
}

// grad_im (H, W, C) += adjoint of the channels-last im2col. Threads own blocks of channels, so
// their writes never collide; the innermost loop runs over the block's contiguous channels.
template <typename T>
void col2im_channels_last(const Geometry& g, const T* gcol, const int32_t* idx, const T* wt, T* gim_hwc) {
  const int64_t K = g.taps(), P = g.pixels(), C = g.channels, cpg = g.channels_per_group();
  // one block of channels per thread (multiples of 16): fewer passes over the corner tables
  const int64_t per_thread = (C + at::get_num_threads() - 1) / at::get_num_threads();
  const int64_t CB = std::max<int64_t>(16, (per_thread + 15) / 16 * 16);
  at::parallel_for(0, (C + CB - 1) / CB, 1, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t c0 = blk * CB, c1 = std::min(C, c0 + CB);
      for (int64_t p = 0; p < P; ++p) {
        for (int64_t k = 0; k < K; ++k) {
          const T* gc = gcol + p * K * C + k * C;
          for (int64_t grp = c0 / cpg; grp <= (c1 - 1) / cpg; ++grp) {
            const int64_t lo = std::max(c0, grp * cpg), hi = std::min(c1, (grp + 1) * cpg);
            const int64_t t0 = ((grp * K + k) * 4) * P + p;
            const T w0 = wt[t0], w1 = wt[t0 + P], w2 = wt[t0 + 2 * P], w3 = wt[t0 + 3 * P];
            T* d0 = gim_hwc + int64_t(idx[t0]) * C;
            T* d1 = gim_hwc + int64_t(idx[t0 + P]) * C;
            T* d2 = gim_hwc + int64_t(idx[t0 + 2 * P]) * C;
            T* d3 = gim_hwc + int64_t(idx[t0 + 3 * P]) * C;
            for (int64_t c = lo; c < hi; ++c) {
              const T v = gc[c];
              d0[c] += w0 * v;
              d1[c] += w1 * v;
              d2[c] += w2 * v;
              d3[c] += w3 * v;
            }
          }
        }
      }
    }
  });
}

// Gradients of offset and mask: for every (group, tap, pixel), the grad column dotted with each
// corner's channels gives four sums, combined with the derivative (offset) or interpolation (mask)
// weights of the corners. Threads own pixels, so every output has one writer.
template <typename T>
void col2im_coord_channels_last(const Geometry& g, const T* im_hwc, const T* offset, const T* mask, const T* gcol,
                                T* goff, T* gmask) {
  const int64_t K = g.taps(), P = g.pixels(), C = g.channels, cpg = g.channels_per_group();
  at::parallel_for(0, P, std::max<int64_t>(1, 4096 / (K * C)), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      for (int64_t grp = 0; grp < g.groups; ++grp) {
        for (int64_t k = 0; k < K; ++k) {
          const T* off_y = offset + (grp * 2 * K + 2 * k) * P;
          T y, x;
          sample_point(g, off_y, off_y + P, k, p, y, x);
          dcn::Tap<T> tap;
          T gy = T(0), gx = T(0), gm = T(0);
          if (dcn::make_tap(y, x, static_cast<int>(g.height), static_cast<int>(g.width), tap)) {
            const T* r0 = im_hwc + int64_t(tap.idx[0]) * C + grp * cpg;
            const T* r1 = im_hwc + int64_t(tap.idx[1]) * C + grp * cpg;
            const T* r2 = im_hwc + int64_t(tap.idx[2]) * C + grp * cpg;
            const T* r3 = im_hwc + int64_t(tap.idx[3]) * C + grp * cpg;
            const T* gc = gcol + p * K * C + k * C + grp * cpg;
            T s0 = T(0), s1 = T(0), s2 = T(0), s3 = T(0);
            for (int64_t c = 0; c < cpg; ++c) {
              s0 += gc[c] * r0[c];
              s1 += gc[c] * r1[c];
              s2 += gc[c] * r2[c];
              s3 += gc[c] * r3[c];
            }
            gm = tap.w[0] * s0 + tap.w[1] * s1 + tap.w[2] * s2 + tap.w[3] * s3;
            gy = tap.wdy[0] * s0 + tap.wdy[1] * s1 + tap.wdy[2] * s2 + tap.wdy[3] * s3;
            gx = tap.wdx[0] * s0 + tap.wdx[1] * s1 + tap.wdx[2] * s2 + tap.wdx[3] * s3;
          }
          const T m = mask[(grp * K + k) * P + p];
          goff[(grp * 2 * K + 2 * k) * P + p] = m * gy;
          goff[(grp * 2 * K + 2 * k + 1) * P + p] = m * gx;
          gmask[(grp * K + k) * P + p] = gm;
        }
      }
    }
  });
}

}  // namespace

at::Tensor dcn_v2_cpu_forward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                              const at::Tensor& offset, const at::Tensor& mask, int kernel_h, int kernel_w,
                              int stride_h, int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w,
                              int deformable_group) {
  const Geometry g = dcn::conv_geometry<int64_t>(input, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h,
                                   dilation_w, deformable_group);
  const int64_t batch = input.size(0), co = weight.size(0), K = g.taps(), P = g.pixels();
  at::Tensor output = at::empty({batch, co, g.out_h, g.out_w}, input.options());
  if (batch == 0) return output;
  // columns are pixel-major (P, K * C), so the weight is taken as (C_out, kh, kw, C_in)
  at::Tensor columns = at::empty({P, K * g.channels}, input.options());
  at::Tensor idx = at::empty({g.groups * K * 4, P}, input.options().dtype(at::kInt));
  at::Tensor wt = at::empty({g.groups * K * 4, P}, input.options());
  const at::Tensor w2d = weight.permute({0, 2, 3, 1}).reshape({co, K * g.channels});
  const at::Tensor b2d = bias.view({co, 1});
  const at::Tensor input_hwc = input.permute({0, 2, 3, 1}).contiguous();
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "dcn_v2_cpu_forward", [&] {
    for (int64_t n = 0; n < batch; ++n) {
      build_taps<scalar_t>(g, offset[n].data_ptr<scalar_t>(), mask[n].data_ptr<scalar_t>(), idx.data_ptr<int32_t>(),
                           wt.data_ptr<scalar_t>());
      im2col_channels_last<scalar_t>(g, input_hwc[n].data_ptr<scalar_t>(), idx.data_ptr<int32_t>(),
                                     wt.data_ptr<scalar_t>(), columns.data_ptr<scalar_t>());
      at::Tensor out_n = output[n].view({co, P});
      at::addmm_out(out_n, b2d, w2d, columns.t());
    }
  });
  return output;
}

std::vector<at::Tensor> dcn_v2_cpu_backward(const at::Tensor& input, const at::Tensor& weight,
                                            const at::Tensor& bias, const at::Tensor& offset,
                                            const at::Tensor& mask, const at::Tensor& grad_output, int kernel_h,
                                            int kernel_w, int stride_h, int stride_w, int pad_h, int pad_w,
                                            int dilation_h, int dilation_w, int deformable_group) {
  const Geometry g = dcn::conv_geometry<int64_t>(input, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h,
                                   dilation_w, deformable_group);
  const int64_t batch = input.size(0), co = weight.size(0), K = g.taps(), P = g.pixels();
  // every element of these three is written below
  at::Tensor grad_input = at::empty_like(input);
  at::Tensor grad_offset = at::empty_like(offset);
  at::Tensor grad_mask = at::empty_like(mask);
  // weight gradient accumulated in the pixel-major columns' (C_out, kh, kw, C_in) order
  at::Tensor grad_weight_hwc = at::zeros({co, g.kernel_h, g.kernel_w, g.channels}, weight.options());
  at::Tensor grad_bias = grad_output.sum({0, 2, 3}).view_as(bias);
  if (batch == 0) return {grad_input, grad_offset, grad_mask, at::zeros_like(weight), grad_bias};
  // pixel-major columns: first the im2col (for the weight gradient), then the grad columns
  at::Tensor columns = at::empty({P, K * g.channels}, input.options());
  at::Tensor grad_im_hwc = at::empty({g.height, g.width, g.channels}, input.options());
  at::Tensor idx = at::empty({g.groups * K * 4, P}, input.options().dtype(at::kInt));
  at::Tensor wt = at::empty({g.groups * K * 4, P}, input.options());
  const at::Tensor w2d = weight.permute({0, 2, 3, 1}).reshape({co, K * g.channels});
  at::Tensor gw2d = grad_weight_hwc.view({co, K * g.channels});
  const at::Tensor input_hwc = input.permute({0, 2, 3, 1}).contiguous();
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "dcn_v2_cpu_backward", [&] {
    for (int64_t n = 0; n < batch; ++n) {
      const scalar_t* off = offset[n].data_ptr<scalar_t>();
      const scalar_t* msk = mask[n].data_ptr<scalar_t>();
      build_taps<scalar_t>(g, off, msk, idx.data_ptr<int32_t>(), wt.data_ptr<scalar_t>());
      const scalar_t* im_hwc = input_hwc[n].data_ptr<scalar_t>();
      im2col_channels_last<scalar_t>(g, im_hwc, idx.data_ptr<int32_t>(), wt.data_ptr<scalar_t>(),
                                     columns.data_ptr<scalar_t>());
      const at::Tensor go_n = grad_output[n].view({co, P});
      gw2d.addmm_(go_n, columns);
      at::mm_out(columns, go_n.t(), w2d);  // the buffer now holds grad columns
      grad_im_hwc.zero_();
      col2im_channels_last<scalar_t>(g, columns.data_ptr<scalar_t>(), idx.data_ptr<int32_t>(),
                                     wt.data_ptr<scalar_t>(), grad_im_hwc.data_ptr<scalar_t>());
      grad_input[n].copy_(grad_im_hwc.permute({2, 0, 1}));
      col2im_coord_channels_last<scalar_t>(g, im_hwc, off, msk, columns.data_ptr<scalar_t>(),
                                           grad_offset[n].data_ptr<scalar_t>(), grad_mask[n].data_ptr<scalar_t>());
    }
  });
  return {grad_input, grad_offset, grad_mask, grad_weight_hwc.permute({0, 3, 1, 2}).contiguous(), grad_bias};
}
