// CPU kernels of DCNv2 (called from the dispatch functions in ../dcn_v2.h only).
#pragma once

#include <ATen/ATen.h>

#include <tuple>
#include <vector>

at::Tensor dcn_v2_cpu_forward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                              const at::Tensor& offset, const at::Tensor& mask, int kernel_h, int kernel_w,
                              int stride_h, int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w,
                              int deformable_group);

std::vector<at::Tensor> dcn_v2_cpu_backward(const at::Tensor& input, const at::Tensor& weight,
                                            const at::Tensor& bias, const at::Tensor& offset,
                                            const at::Tensor& mask, const at::Tensor& grad_output, int kernel_h,
                                            int kernel_w, int stride_h, int stride_w, int pad_h, int pad_w,
                                            int dilation_h, int dilation_w, int deformable_group);

std::tuple<at::Tensor, at::Tensor> dcn_v2_psroi_pooling_cpu_forward(
    const at::Tensor& input, const at::Tensor& bbox, const at::Tensor& trans, int no_trans, double spatial_scale,
    int output_dim, int group_size, int pooled_size, int part_size, int sample_per_part, double trans_std);

std::tuple<at::Tensor, at::Tensor> dcn_v2_psroi_pooling_cpu_backward(
    const at::Tensor& out_grad, const at::Tensor& input, const at::Tensor& bbox, const at::Tensor& trans,
    const at::Tensor& top_count, int no_trans, double spatial_scale, int output_dim, int group_size,
    int pooled_size, int part_size, int sample_per_part, double trans_std);
