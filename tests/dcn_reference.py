"""Plain-PyTorch reference implementations of DCNv2 ops, used as test oracles (slow, exact, autograd-able)."""
from __future__ import annotations

import math

import torch
from torch.nn.modules.utils import _pair


def _gather_plane(img: torch.Tensor, yi: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
    """img (N, G, c, H, W), integer yi/xi (N, G, S) -> values (N, G, c, S); positions outside read 0."""
    n, g, c, h, w = img.shape
    inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
    flat = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).long()
    vals = torch.gather(img.reshape(n, g, c, h * w), 3, flat.unsqueeze(2).expand(n, g, c, flat.shape[-1]))
    return vals * inside.unsqueeze(2).to(img.dtype)


def bilinear_zero_outside(img: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of img (N, G, c, H, W) at float y/x (N, G, S) with DCNv2's border rule.

    A point is sampled only if -1 < y < H and -1 < x < W; each of its four corners that falls
    outside the image contributes 0.
    """
    h, w = img.shape[-2:]
    taken = ((y > -1) & (y < h) & (x > -1) & (x < w)).unsqueeze(2).to(img.dtype)
    y0 = torch.floor(y)
    x0 = torch.floor(x)
    out = 0
    for cy in (0, 1):
        wy = (1 - (y - y0)) if cy == 0 else (y - y0)
        for cx in (0, 1):
            wx = (1 - (x - x0)) if cx == 0 else (x - x0)
            vals = _gather_plane(img, (y0 + cy).long(), (x0 + cx).long())
            out = out + vals * (wy * wx).unsqueeze(2)
    return out * taken


def dcn_v2_conv_ref(input, offset, mask, weight, bias, stride=1, padding=0, dilation=1, deformable_groups=1):
    """Modulated deformable convolution; offset channel 2k is the y shift and 2k+1 the x shift of tap k."""
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    n, c, h, w = input.shape
    co, _, kh, kw = weight.shape
    k = kh * kw
    g = deformable_groups
    ho = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    wo = (w + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    opts = {"dtype": input.dtype, "device": input.device}
    tap_y = (torch.arange(kh, **opts) * dh).repeat_interleave(kw)  # (K,)
    tap_x = (torch.arange(kw, **opts) * dw).repeat(kh)
    base_y = torch.arange(ho, **opts) * sh - ph
    base_x = torch.arange(wo, **opts) * sw - pw
    off = offset.reshape(n, g, k, 2, ho, wo)
    y = base_y.view(1, 1, 1, ho, 1) + tap_y.view(1, 1, k, 1, 1) + off[:, :, :, 0]
    x = base_x.view(1, 1, 1, 1, wo) + tap_x.view(1, 1, k, 1, 1) + off[:, :, :, 1]
    img = input.reshape(n, g, c // g, h, w)
    samples = bilinear_zero_outside(img, y.reshape(n, g, -1), x.reshape(n, g, -1))  # (N, G, c, K*P)
    samples = samples * mask.reshape(n, g, 1, k * ho * wo)
    cols = samples.reshape(n, c * k, ho * wo)
    out = torch.matmul(weight.reshape(co, c * k), cols)
    if bias is not None:
        out = out + bias.view(1, co, 1)
    return out.reshape(n, co, ho, wo)


def _value(v) -> float:
    """Python float of a number or a (possibly grad-requiring) scalar tensor."""
    return float(v.detach()) if torch.is_tensor(v) else float(v)


def dcn_v2_pooling_ref(input, rois, offset, spatial_scale, pooled_size, output_dim, no_trans, group_size=1,
                       part_size=None, sample_per_part=4, trans_std=0.0):
    """Deformable PSROI pooling by explicit loops over bins and samples (tiny inputs only).

    Offsets are (R, 2 * classes, part, part) with channel 2*class the x shift and 2*class + 1 the
    y shift, in units of the roi size times trans_std. Samples more than half a pixel outside the
    image are skipped; the rest are clamped into it (the clamp passes gradients straight through,
    as the original kernels do).
    """
    part_size = pooled_size if part_size is None else part_size
    _, _, h, w = input.shape
    num_classes = 1 if no_trans else offset.shape[1] // 2
    per_class = output_dim // num_classes
    outs = []
    for r in range(rois.shape[0]):
        b = int(rois[r, 0])
        x1, y1, x2, y2 = (float(v) for v in rois[r, 1:])

        def rnd(v):
            return math.floor(v + 0.5) if v >= 0 else -math.floor(-v + 0.5)

        sw = rnd(x1) * spatial_scale - 0.5
        sh = rnd(y1) * spatial_scale - 0.5
        rw = max((rnd(x2) + 1) * spatial_scale - 0.5 - sw, 0.1)
        rh = max((rnd(y2) + 1) * spatial_scale - 0.5 - sh, 0.1)
        bw, bh = rw / pooled_size, rh / pooled_size
        for ctop in range(output_dim):
            cls = ctop // per_class
            for py in range(pooled_size):
                for px in range(pooled_size):
                    part_y = math.floor(py / pooled_size * part_size)
                    part_x = math.floor(px / pooled_size * part_size)
                    if no_trans:
                        tx = ty = 0.0
                    else:
                        tx = offset[r, 2 * cls, part_y, part_x] * trans_std
                        ty = offset[r, 2 * cls + 1, part_y, part_x] * trans_std
                    gx = min(max(math.floor(px * group_size / pooled_size), 0), group_size - 1)
                    gy = min(max(math.floor(py * group_size / pooled_size), 0), group_size - 1)
                    plane = input[b, (ctop * group_size + gy) * group_size + gx]
                    acc, cnt = 0, 0
                    for iy in range(sample_per_part):
                        for ix in range(sample_per_part):
                            xs = px * bw + sw + tx * rw + ix * bw / sample_per_part
                            ys = py * bh + sh + ty * rh + iy * bh / sample_per_part
                            xv, yv = _value(xs), _value(ys)
                            if xv < -0.5 or xv > w - 0.5 or yv < -0.5 or yv > h - 0.5:
                                continue
                            xc = xs + (min(max(xv, 0.0), w - 1.0) - xv)  # straight-through clamp
                            yc = ys + (min(max(yv, 0.0), h - 1.0) - yv)
                            x0, y0 = math.floor(_value(xc)), math.floor(_value(yc))
                            x1c, y1c = math.ceil(_value(xc)), math.ceil(_value(yc))
                            dx, dy = xc - x0, yc - y0
                            acc = acc + ((1 - dx) * (1 - dy) * plane[y0, x0] + (1 - dx) * dy * plane[y1c, x0]
                                         + dx * (1 - dy) * plane[y0, x1c] + dx * dy * plane[y1c, x1c])
                            cnt += 1
                    outs.append(acc / cnt if cnt else input.new_zeros(()))
    out = torch.stack([torch.as_tensor(o, dtype=input.dtype) if not torch.is_tensor(o) else o for o in outs])
    return out.reshape(rois.shape[0], output_dim, pooled_size, pooled_size)
