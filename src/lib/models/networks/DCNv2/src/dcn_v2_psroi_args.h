// Geometry of a deformable PS-RoI pooling call, shared by the CPU and CUDA kernels (host side).
#pragma once

#include <ATen/ATen.h>

namespace dcn {

struct PoolArgs {
  int channels, height, width, num_rois;
  bool no_trans;
  double spatial_scale, trans_std;
  int output_dim, group_size, pooled_size, part_size, sample_per_part, num_classes, channels_each_class;
};

inline PoolArgs pool_args(const at::Tensor& input, const at::Tensor& bbox, const at::Tensor& trans, int no_trans,
                          double spatial_scale, int output_dim, int group_size, int pooled_size, int part_size,
                          int sample_per_part, double trans_std) {
  PoolArgs a{};
  a.channels = static_cast<int>(input.size(1));
  a.height = static_cast<int>(input.size(2));
  a.width = static_cast<int>(input.size(3));
  a.num_rois = static_cast<int>(bbox.size(0));
  a.no_trans = no_trans != 0;
  a.spatial_scale = spatial_scale;
  a.trans_std = trans_std;
  a.output_dim = output_dim;
  a.group_size = group_size;
  a.pooled_size = pooled_size;
  a.part_size = part_size;
  a.sample_per_part = sample_per_part;
  // without offsets every output channel shares one (zero) offset map
  a.num_classes = a.no_trans ? 1 : static_cast<int>(trans.size(1) / 2);
  a.channels_each_class = output_dim / a.num_classes;
  return a;
}

}  // namespace dcn
