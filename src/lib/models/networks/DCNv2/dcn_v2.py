"""Modulated deformable convolution (DCNv2) and deformable PSROI pooling on top of the `_ext` extension.

The public names are those DCNv2 users know: `dcn_v2_conv`, `DCNv2`, `DCN`, `dcn_v2_pooling`,
`DCNv2Pooling`, `DCNPooling`. Importing this module never needs the compiled extension; creating
a layer or calling an op without it raises an error that says how to build it.

The convolution is the registered operator `torch.ops.dcn_v2.modulated_deform_conv` (schema, CPU/CUDA
kernels and autocast rule in src/vision.cpp; fake kernels and autograd here), so networks with DCN go
through torch.export, torch.compile and the ONNX exporter.
"""
from __future__ import annotations

import glob
import math
import os

import torch
from torch import nn
from torch.amp import custom_bwd, custom_fwd
from torch.autograd import Function
from torch.autograd.function import once_differentiable
from torch.nn.modules.utils import _pair

try:
    from utils.errors import UserError as _BuildError
except ImportError:  # used outside the project's src/lib
    _BuildError = RuntimeError

BUILD_HINT = ("DCNv2 extension is not built: run `make setup` or "
              "`cd src/lib/models/networks/DCNv2 && python setup.py build develop`")

try:
    from . import _ext as _backend
    _LOAD_ERROR = None
except ImportError as _exc:  # not built, built for another torch, or imported outside the package
    _backend = None
    _LOAD_ERROR = _exc


def extension_available() -> bool:
    """Whether the compiled `_ext` extension could be loaded."""
    return _backend is not None


def _require_backend():
    """Return the extension module or raise the build hint."""
    if _backend is None:
        here = os.path.dirname(os.path.abspath(__file__))
        stale = glob.glob(os.path.join(here, "_ext*.so")) + glob.glob(os.path.join(here, "_ext*.pyd"))
        detail = f" (a build exists but does not load: {_LOAD_ERROR}; rebuild it)" if stale else ""
        raise _BuildError(BUILD_HINT + detail)
    return _backend


def _compute_dtype(t: torch.Tensor) -> torch.dtype | None:
    """The dtype every operand is cast to under autocast, or None outside autocast."""
    dev = t.device.type
    if dev == "cuda" and torch.is_autocast_enabled("cuda"):
        return torch.get_autocast_dtype("cuda")
    if dev == "cpu" and torch.is_autocast_enabled("cpu"):
        return torch.float32  # the CPU kernels compute in float32 / float64 only
    return None


OP_NAME = "dcn_v2::modulated_deform_conv"


def _conv_out_size(size, kernel: int, stride: int, pad: int, dil: int):
    return (size + 2 * pad - (dil * (kernel - 1) + 1)) // stride + 1


def _fake_conv(input, offset, mask, weight, bias, stride, padding, dilation, deformable_groups):
    """Output shape and dtype of the convolution, without computing it (torch.export / torch.compile)."""
    torch._check(input.dim() == 4 and weight.dim() == 4, lambda: "DCNv2: input and weight must be 4-D")
    kh, kw = weight.shape[2], weight.shape[3]
    ho = _conv_out_size(input.shape[2], kh, stride[0], padding[0], dilation[0])
    wo = _conv_out_size(input.shape[3], kw, stride[1], padding[1], dilation[1])
    return input.new_empty((input.shape[0], weight.shape[0], ho, wo))


def _fake_conv_backward(input, offset, mask, weight, bias, grad_output, stride, padding, dilation,
                        deformable_groups):
    """Gradients have the shapes of the five tensor operands."""
    return tuple(torch.empty_like(t) for t in (input, offset, mask, weight, bias))


def _setup_context(ctx, inputs, output) -> None:
    input, offset, mask, weight, bias, stride, padding, dilation, deformable_groups = inputs
    ctx.save_for_backward(input, offset, mask, weight, bias)
    ctx.conv_args = (stride, padding, dilation, deformable_groups)


def _conv_backward(ctx, grad_output):
    grads = torch.ops.dcn_v2.modulated_deform_conv_backward(*ctx.saved_tensors, grad_output, *ctx.conv_args)
    return (*grads, None, None, None, None)


def _register_python_parts() -> None:
    """Fake kernels and the autograd formula of the C++-defined `dcn_v2` operators (once, when `_ext` loads)."""
    torch.library.register_fake(OP_NAME)(_fake_conv)
    torch.library.register_fake(OP_NAME + "_backward")(_fake_conv_backward)
    torch.library.register_autograd(OP_NAME, _conv_backward, setup_context=_setup_context)


if _backend is not None:
    try:
        _register_python_parts()
    except RuntimeError as _exc:  # this file imported a second time under another module name
        if "already" not in str(_exc):
            raise


def dcn_v2_conv(input, offset, mask, weight, bias, stride=1, padding=0, dilation=1, deformable_groups=1):
    """Modulated deformable convolution; stride, padding and dilation are ints or (h, w) pairs."""
    _require_backend()
    if bias is None:
        bias = weight.new_zeros(weight.shape[0])
    return torch.ops.dcn_v2.modulated_deform_conv(input, offset, mask, weight, bias, list(_pair(stride)),
                                                  list(_pair(padding)), list(_pair(dilation)),
                                                  int(deformable_groups))


class DCNv2(nn.Module):
    """Modulated deformable convolution layer taking offset and mask as inputs."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation=1, deformable_groups=1):
        super().__init__()
        _require_backend()
        self.in_channels, self.out_channels = in_channels, out_channels
        # only the kernel is stored as a pair: stride, padding and dilation keep the caller's form (see extra_repr)
        self.kernel_size = _pair(kernel_size)
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.deformable_groups = deformable_groups
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weight ~ U(-1/sqrt(fan_in), +1/sqrt(fan_in)), bias 0."""
        stdv = 1.0 / math.sqrt(self.in_channels * self.kernel_size[0] * self.kernel_size[1])
        with torch.no_grad():
            self.weight.uniform_(-stdv, stdv)
            self.bias.zero_()

    def forward(self, input, offset, mask):
        """Deformable convolution of `input` with the given offsets and modulation mask."""
        return dcn_v2_conv(input, offset, mask, self.weight, self.bias, self.stride, self.padding, self.dilation,
                           self.deformable_groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, deformable_groups={self.deformable_groups}")


class DCN(DCNv2):
    """DCNv2 layer predicting its own offsets and mask with a zero-initialised convolution."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation=1, deformable_groups=1):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, deformable_groups)
        kh, kw = self.kernel_size
        self.conv_offset_mask = nn.Conv2d(in_channels, deformable_groups * 3 * kh * kw, kernel_size=self.kernel_size,
                                          stride=_pair(stride), padding=_pair(padding), bias=True)
        self.init_offset()

    def init_offset(self) -> None:
        """Zero offsets and mask logits: the layer starts as half a plain convolution."""
        with torch.no_grad():
            self.conv_offset_mask.weight.zero_()
            self.conv_offset_mask.bias.zero_()

    def forward(self, input):
        """Predict offsets (first two thirds) and mask (sigmoid of the last third), then convolve."""
        o1, o2, mask = torch.chunk(self.conv_offset_mask(input), 3, dim=1)
        offset = torch.cat((o1, o2), dim=1)
        return dcn_v2_conv(input, offset, torch.sigmoid(mask), self.weight, self.bias, self.stride, self.padding,
                           self.dilation, self.deformable_groups)


class _DCNv2Pooling(Function):
    @staticmethod
    @custom_fwd(device_type="cuda")
    def forward(ctx, input, rois, offset, spatial_scale, pooled_size, output_dim, no_trans, group_size=1,
                part_size=None, sample_per_part=4, trans_std=0.0):
        backend = _require_backend()
        no_trans = bool(no_trans) or offset is None or offset.numel() == 0
        part_size = pooled_size if part_size is None else part_size
        ctx.args = (int(no_trans), float(spatial_scale), int(output_dim), int(group_size), int(pooled_size),
                    int(part_size), int(sample_per_part), float(trans_std))
        ctx.dtypes = (input.dtype, None if no_trans else offset.dtype)
        dtype = _compute_dtype(input) or input.dtype
        input = input.to(dtype)
        rois = rois.to(dtype)  # the kernels read boxes in the feature dtype
        offset = input.new_empty(0) if no_trans else offset.to(dtype)
        output, count = backend.dcn_v2_psroi_pooling_forward(input, rois, offset, *ctx.args)
        ctx.save_for_backward(input, rois, offset, count)
        return output

    @staticmethod
    @once_differentiable
    @custom_bwd(device_type="cuda")
    def backward(ctx, grad_output):
        input, rois, offset, count = ctx.saved_tensors
        grad_input, grad_offset = _require_backend().dcn_v2_psroi_pooling_backward(
            grad_output.to(input.dtype), input, rois, offset, count, *ctx.args)
        grad_input = grad_input.to(ctx.dtypes[0])
        grad_offset = None if ctx.args[0] else grad_offset.to(ctx.dtypes[1])
        return grad_input, None, grad_offset, None, None, None, None, None, None, None, None


def dcn_v2_pooling(input, rois, offset, spatial_scale, pooled_size, output_dim, no_trans, group_size=1,
                   part_size=None, sample_per_part=4, trans_std=0.0):
    """Deformable PSROI pooling of `rois` (R, 5: batch index, x1, y1, x2, y2) -> (R, output_dim, p, p)."""
    _require_backend()
    return _DCNv2Pooling.apply(input, rois, offset, spatial_scale, pooled_size, output_dim, no_trans, group_size,
                               part_size, sample_per_part, trans_std)


class DCNv2Pooling(nn.Module):
    """Deformable PSROI pooling with externally supplied offsets."""

    def __init__(self, spatial_scale, pooled_size, output_dim, no_trans, group_size=1, part_size=None,
                 sample_per_part=4, trans_std=0.0):
        super().__init__()
        _require_backend()
        if not 0.0 <= trans_std <= 1.0:
            raise ValueError(f"DCNv2Pooling: trans_std must lie in [0, 1], got {trans_std}")
        self.spatial_scale, self.pooled_size, self.output_dim = spatial_scale, pooled_size, output_dim
        self.no_trans, self.group_size, self.trans_std = no_trans, group_size, trans_std
        # parts default to one per output cell
        self.part_size = pooled_size if part_size is None else part_size
        self.sample_per_part = sample_per_part

    def _pool(self, input, rois, offset, no_trans):
        return dcn_v2_pooling(input, rois, offset, self.spatial_scale, self.pooled_size, self.output_dim, no_trans,
                              self.group_size, self.part_size, self.sample_per_part, self.trans_std)

    def forward(self, input, rois, offset):
        """Pool `rois` from `input`, shifting the parts by `offset` unless no_trans."""
        if self.no_trans:
            offset = input.new_empty(0)
        return self._pool(input, rois, offset, self.no_trans)


class DCNPooling(DCNv2Pooling):
    """Deformable PSROI pooling that predicts its part offsets and mask from a first, plain pooling."""

    def __init__(self, spatial_scale, pooled_size, output_dim, no_trans, group_size=1, part_size=None,
                 sample_per_part=4, trans_std=0.0, deform_fc_dim=1024):
        super().__init__(spatial_scale, pooled_size, output_dim, no_trans, group_size, part_size, sample_per_part,
                         trans_std)
        self.deform_fc_dim = deform_fc_dim
        if not no_trans:
            feat = pooled_size * pooled_size * output_dim
            self.offset_fc = nn.Sequential(
                nn.Linear(feat, deform_fc_dim), nn.ReLU(inplace=True),
                nn.Linear(deform_fc_dim, deform_fc_dim), nn.ReLU(inplace=True),
                nn.Linear(deform_fc_dim, pooled_size * pooled_size * 2))
            self.mask_fc = nn.Sequential(
                nn.Linear(feat, deform_fc_dim), nn.ReLU(inplace=True),
                nn.Linear(deform_fc_dim, pooled_size * pooled_size), nn.Sigmoid())
            with torch.no_grad():  # start from unshifted parts and mask 0.5
                self.offset_fc[4].weight.zero_()
                self.offset_fc[4].bias.zero_()
                self.mask_fc[2].weight.zero_()
                self.mask_fc[2].bias.zero_()

    def forward(self, input, rois):
        """Pool `rois`, with offsets and mask predicted from an unshifted pooling when trans is on."""
        empty = input.new_empty(0)
        if self.no_trans:
            return self._pool(input, rois, empty, True)
        n = rois.shape[0]
        x = self._pool(input, rois, empty, True).reshape(n, -1)
        offset = self.offset_fc(x).view(n, 2, self.pooled_size, self.pooled_size)
        mask = self.mask_fc(x).view(n, 1, self.pooled_size, self.pooled_size)
        return self._pool(input, rois, offset, False) * mask
