// Bilinear sampling rules shared by the CPU and CUDA kernels, so both devices agree bit for bit
// on which samples and corners count.
#pragma once

#include <c10/macros/Macros.h>

#include <cmath>

#if defined(__CUDACC__)
#define DCN_UNROLL _Pragma("unroll")
#else
#define DCN_UNROLL
#endif

namespace dcn {

// The four corners of one bilinear sample and their weights. Corners outside the image get
// weight 0 (and index 0, so reading them is always safe).
template <typename T>
struct Tap {
  int idx[4];   // flat pixel index of corners (y0,x0), (y0,x1), (y1,x0), (y1,x1)
  T w[4];       // interpolation weights of the corners, 0 for corners outside the image
  T wdy[4];     // d(weight)/dy of each corner, 0 outside
  T wdx[4];     // d(weight)/dx of each corner, 0 outside
};

// Floor of a value within int range, without the math library (same code on host and device).
template <typename T>
C10_HOST_DEVICE inline int floor_int(T v) {
  int i = static_cast<int>(v);
  return (static_cast<T>(i) > v) ? i - 1 : i;
}

// Fills `tap` for a sample at (y, x) in an h x w image. A sample is taken only inside the open
// window -1 < y < h, -1 < x < w; outside it every weight is 0. Returns whether it was taken.
template <typename T>
C10_HOST_DEVICE inline bool make_tap(T y, T x, int h, int w, Tap<T>& tap) {
  const bool taken = y > T(-1) && x > T(-1) && y < static_cast<T>(h) && x < static_cast<T>(w);
  if (!taken) {
DCN_UNROLL
    for (int q = 0; q < 4; ++q) {
      tap.idx[q] = 0;
      tap.w[q] = tap.wdy[q] = tap.wdx[q] = T(0);
    }
    return false;
  }
  const int y0 = floor_int(y);
  const int x0 = floor_int(x);
  const T ly = y - static_cast<T>(y0);
  const T lx = x - static_cast<T>(x0);
  const T hy = T(1) - ly;
  const T hx = T(1) - lx;
  const bool oky0 = y0 >= 0, oky1 = y0 + 1 <= h - 1;
  const bool okx0 = x0 >= 0, okx1 = x0 + 1 <= w - 1;
  const bool ok[4] = {oky0 && okx0, oky0 && okx1, oky1 && okx0, oky1 && okx1};
  const int yy[4] = {y0, y0, y0 + 1, y0 + 1};
  const int xx[4] = {x0, x0 + 1, x0, x0 + 1};
  const T wy[4] = {hy, hy, ly, ly};
  const T wx[4] = {hx, lx, hx, lx};
  const T sy[4] = {T(-1), T(-1), T(1), T(1)};  // sign of d(wy)/dy
  const T sx[4] = {T(-1), T(1), T(-1), T(1)};  // sign of d(wx)/dx
DCN_UNROLL
  for (int q = 0; q < 4; ++q) {
    if (ok[q]) {
      tap.idx[q] = yy[q] * w + xx[q];
      tap.w[q] = wy[q] * wx[q];
      tap.wdy[q] = sy[q] * wx[q];
      tap.wdx[q] = sx[q] * wy[q];
    } else {
      tap.idx[q] = 0;
      tap.w[q] = tap.wdy[q] = tap.wdx[q] = T(0);
    }
  }
  return true;
}

// Deformable PSROI pooling reads a clamped point with floor/ceil corners (all inside the image).
template <typename T>
struct PoolTap {
  int x0, x1, y0, y1;
  T dx, dy;  // distances from the (x0, y0) corner
};

template <typename T>
C10_HOST_DEVICE inline PoolTap<T> make_pool_tap(T x, T y) {
  PoolTap<T> t;
  t.x0 = floor_int(x);
  t.y0 = floor_int(y);
  t.x1 = (static_cast<T>(t.x0) < x) ? t.x0 + 1 : t.x0;  // ceil
  t.y1 = (static_cast<T>(t.y0) < y) ? t.y0 + 1 : t.y0;
  t.dx = x - static_cast<T>(t.x0);
  t.dy = y - static_cast<T>(t.y0);
  return t;
}

// Geometry of one output bin (roi n, output channel ctop, bin ph, pw) of deformable PSROI pooling.
template <typename T>
struct PoolBin {
  int roi_batch;       // image of the roi
  int channel;         // input channel read by this bin (position-sensitive group)
  int trans_x_index;   // flat index of the bin's x shift in `trans` (y shift follows part_size^2 later)
  T wstart, hstart;    // first sample point
  T sub_w, sub_h;      // distance between sample points
  T roi_w, roi_h;      // roi size, which scales the learned shifts
};

template <typename T>
C10_HOST_DEVICE inline T round_half_away(T v) {
#ifdef __CUDA_ARCH__
  return ::round(v);
#else
  return std::round(v);
#endif
}

// S is the storage type of rois/trans, T the type computed in.
template <typename T, typename S>
C10_HOST_DEVICE inline PoolBin<T> make_pool_bin(int n, int ctop, int ph, int pw, const S* roi, const S* trans,
                                                bool no_trans, T spatial_scale, T trans_std, int group_size,
                                                int pooled_size, int part_size, int sample_per_part,
                                                int num_classes, int channels_each_class) {
  PoolBin<T> b;
  b.roi_batch = static_cast<int>(static_cast<T>(roi[0]));
  // Rounded box corners, pixel centres at integer coordinates (hence the -0.5).
  const T start_w = round_half_away(static_cast<T>(roi[1])) * spatial_scale - T(0.5);
  const T start_h = round_half_away(static_cast<T>(roi[2])) * spatial_scale - T(0.5);
  const T end_w = (round_half_away(static_cast<T>(roi[3])) + T(1)) * spatial_scale - T(0.5);
  const T end_h = (round_half_away(static_cast<T>(roi[4])) + T(1)) * spatial_scale - T(0.5);
  b.roi_w = end_w - start_w > T(0.1) ? end_w - start_w : T(0.1);  // degenerate rois still get a size
  b.roi_h = end_h - start_h > T(0.1) ? end_h - start_h : T(0.1);
  const T bin_w = b.roi_w / static_cast<T>(pooled_size);
  const T bin_h = b.roi_h / static_cast<T>(pooled_size);
  b.sub_w = bin_w / static_cast<T>(sample_per_part);
  b.sub_h = bin_h / static_cast<T>(sample_per_part);
  const int part_h = floor_int(static_cast<T>(ph) / static_cast<T>(pooled_size) * static_cast<T>(part_size));
  const int part_w = floor_int(static_cast<T>(pw) / static_cast<T>(pooled_size) * static_cast<T>(part_size));
  const int class_id = ctop / channels_each_class;
  b.trans_x_index = (((n * num_classes + class_id) * 2) * part_size + part_h) * part_size + part_w;
  T shift_x = T(0), shift_y = T(0);
  if (!no_trans) {
    shift_x = static_cast<T>(trans[b.trans_x_index]) * trans_std;
    shift_y = static_cast<T>(trans[b.trans_x_index + part_size * part_size]) * trans_std;
  }
  b.wstart = static_cast<T>(pw) * bin_w + start_w + shift_x * b.roi_w;
  b.hstart = static_cast<T>(ph) * bin_h + start_h + shift_y * b.roi_h;
  int gw = floor_int(static_cast<T>(pw) * static_cast<T>(group_size) / static_cast<T>(pooled_size));
  int gh = floor_int(static_cast<T>(ph) * static_cast<T>(group_size) / static_cast<T>(pooled_size));
  gw = gw < 0 ? 0 : (gw > group_size - 1 ? group_size - 1 : gw);
  gh = gh < 0 ? 0 : (gh > group_size - 1 ? group_size - 1 : gh);
  b.channel = (ctop * group_size + gh) * group_size + gw;
  return b;
}

// Clamps a pooling sample into the image; false when it lies more than half a pixel outside.
template <typename T>
C10_HOST_DEVICE inline bool clamp_pool_sample(T& x, T& y, int height, int width) {
  if (x < T(-0.5) || x > static_cast<T>(width) - T(0.5) || y < T(-0.5) || y > static_cast<T>(height) - T(0.5)) {
    return false;
  }
  x = x < T(0) ? T(0) : (x > static_cast<T>(width - 1) ? static_cast<T>(width - 1) : x);
  y = y < T(0) ? T(0) : (y > static_cast<T>(height - 1) ? static_cast<T>(height - 1) : y);
  return true;
}

}  // namespace dcn
