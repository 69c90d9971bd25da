"""DCNv2 extension: forward/backward against a plain-PyTorch reference, gradcheck, module semantics, errors."""
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from dcn_reference import dcn_v2_conv_ref, dcn_v2_pooling_ref
from torch.autograd import gradcheck

from models.networks.DCNv2 import dcn_v2
from models.networks.DCNv2.dcn_v2 import DCN, DCNPooling, DCNv2, DCNv2Pooling, dcn_v2_conv, dcn_v2_pooling

torch.set_num_threads(1)
needs_ext = pytest.mark.skipif(not dcn_v2.extension_available(), reason="DCNv2 extension not built")
cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
LIB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src", "lib")


def _pair_out(h, k, s, p, d):
    return (h + 2 * p - (d * (k - 1) + 1)) // s + 1


def make_inputs(n=1, c=4, h=6, w=7, co=3, k=(3, 3), stride=(1, 1), pad=(1, 1), dil=(1, 1), dg=1, scale=2.0,
                dtype=torch.float64, seed=0, device="cpu"):
    """Random conv operands; offsets of +-scale pixels push samples past every border."""
    g = torch.Generator().manual_seed(seed)
    ho = _pair_out(h, k[0], stride[0], pad[0], dil[0])
    wo = _pair_out(w, k[1], stride[1], pad[1], dil[1])
    kk = k[0] * k[1]
    x = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
    off = (torch.rand(n, 2 * dg * kk, ho, wo, generator=g, dtype=torch.float64) * 2 - 1) * scale
    msk = torch.rand(n, dg * kk, ho, wo, generator=g, dtype=torch.float64)
    wt = torch.randn(co, c, *k, generator=g, dtype=torch.float64) * 0.5
    b = torch.randn(co, generator=g, dtype=torch.float64)
    return [t.to(device, dtype) for t in (x, off, msk, wt, b)]


def compare_with_reference(args, stride, pad, dil, dg, tol):
    """Forward and all five gradients of the extension against the reference."""
    ext_in = [t.clone().requires_grad_() for t in args]
    ref_in = [t.detach().double().cpu().requires_grad_() for t in args]
    y = dcn_v2_conv(*ext_in, stride, pad, dil, dg)
    yr = dcn_v2_conv_ref(*ref_in, stride, pad, dil, dg)
    gy = torch.randn(yr.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    y.backward(gy.to(y))
    yr.backward(gy)
    scale = yr.abs().max().item() + 1e-12
    assert (y.detach().double().cpu() - yr).abs().max().item() / scale < tol
    for name, a, r in zip(("input", "offset", "mask", "weight", "bias"), ext_in, ref_in):
        err = (a.grad.double().cpu() - r.grad).abs().max().item() / (r.grad.abs().max().item() + 1e-12)
        assert err < tol, f"grad {name}: relative error {err:.2e}"


# ---- the unbuilt-extension error (never skipped) ----------------------------------------------------

def test_unbuilt_extension_error(monkeypatch):
    monkeypatch.setattr(dcn_v2, "_backend", None)
    with pytest.raises(Exception, match="DCNv2 extension is not built: run `make setup` or "
                                        "`cd src/lib/models/networks/DCNv2 && python setup.py build develop`"):
        DCN(4, 4, 3, 1, 1)
    with pytest.raises(Exception, match="DCNv2 extension is not built"):
        dcn_v2_conv(*make_inputs(), 1, 1, 1, 1)
    with pytest.raises(Exception, match="DCNv2 extension is not built"):
        DCNv2Pooling(1.0, 2, 1, True)


def test_import_without_extension_then_clear_error():
    # A fresh interpreter in which loading `_ext` fails: importing works, creating a layer explains the fix.
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.endswith('DCNv2._ext'):\n"
        "            raise ImportError('blocked for the test')\n"
        "sys.meta_path.insert(0, Block())\n"
        f"sys.path.insert(0, {LIB!r})\n"
        "from models.networks.DCNv2.dcn_v2 import DCN\n"
        "from utils.errors import UserError\n"
        "try:\n"
        "    DCN(2, 2, 3, 1, 1)\n"
        "except UserError as e:\n"
        "    print('ERR', e)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "ERR DCNv2 extension is not built: run `make setup` or `cd src/lib/models/networks/DCNv2 && " \
           "python setup.py build develop`" in res.stdout


# ---- convolution --------------------------------------------------------------------------------------

@needs_ext
def test_gradcheck_cpu_float64():
    args = [t.requires_grad_() for t in make_inputs(n=2, c=2, h=4, w=5, co=2, scale=1.5, seed=1)]
    assert gradcheck(lambda *a: dcn_v2_conv(*a, 1, 1, 1, 1), args, eps=1e-6, atol=1e-5, rtol=1e-4)


@needs_ext
def test_gradcheck_cpu_strided_groups():
    args = make_inputs(n=1, c=4, h=5, w=6, co=2, k=(3, 2), stride=(2, 1), pad=(1, 2), dil=(2, 1), dg=2, seed=2)
    args = [t.requires_grad_() for t in args]
    assert gradcheck(lambda *a: dcn_v2_conv(*a, (2, 1), (1, 2), (2, 1), 2), args, eps=1e-6, atol=1e-5, rtol=1e-4)


@needs_ext
@pytest.mark.parametrize("stride,pad,dil", [(1, 1, 1), (2, (1, 2), 1), (1, (2, 0), 2), ((2, 1), (0, 1), (1, 2))])
def test_zero_offset_unit_mask_is_conv2d(stride, pad, dil):
    x, off, msk, w, b = make_inputs(n=2, c=3, h=9, w=8, co=4, seed=3)
    sp, pp, dp = (torch.nn.modules.utils._pair(v) for v in (stride, pad, dil))
    ho, wo = _pair_out(9, 3, sp[0], pp[0], dp[0]), _pair_out(8, 3, sp[1], pp[1], dp[1])
    off = torch.zeros(2, 18, ho, wo, dtype=torch.float64)
    msk = torch.ones(2, 9, ho, wo, dtype=torch.float64)
    y = dcn_v2_conv(x, off, msk, w, b, stride, pad, dil, 1)
    ref = F.conv2d(x, w, b, stride=sp, padding=pp, dilation=dp)
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)


@needs_ext
@pytest.mark.parametrize("case", [
    dict(n=1, c=4, h=6, w=7, co=3, k=(3, 3), stride=(1, 1), pad=(1, 1), dil=(1, 1), dg=1, scale=4.0),
    dict(n=3, c=4, h=7, w=5, co=2, k=(3, 3), stride=(2, 2), pad=(1, 2), dil=(1, 1), dg=2, scale=3.0),
    dict(n=2, c=6, h=8, w=9, co=5, k=(3, 3), stride=(1, 1), pad=(2, 2), dil=(2, 2), dg=3, scale=5.0),
    dict(n=2, c=2, h=5, w=6, co=3, k=(1, 1), stride=(1, 1), pad=(0, 0), dil=(1, 1), dg=1, scale=2.5),
    dict(n=1, c=3, h=1, w=6, co=2, k=(3, 3), stride=(1, 1), pad=(1, 1), dil=(1, 1), dg=1, scale=1.0),
    dict(n=1, c=4, h=6, w=6, co=2, k=(2, 4), stride=(1, 2), pad=(0, 3), dil=(1, 1), dg=4, scale=6.0),
])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_matches_reference(case, dtype, tol):
    args = make_inputs(**case, dtype=dtype, seed=11)
    compare_with_reference(args, case["stride"], case["pad"], case["dil"], case["dg"], tol)


@needs_ext
def test_samples_beyond_every_border_read_zero():
    # All taps pushed far outside the image: output is the bias alone, input/weight grads vanish.
    x, off, msk, w, b = make_inputs(n=1, c=2, h=4, w=4, co=2, seed=4)
    for shift in ((-10.0, 0.0), (10.0, 0.0), (0.0, -10.0), (0.0, 10.0)):
        o = off.clone()
        o[:, 0::2] = shift[0]
        o[:, 1::2] = shift[1]
        xg = x.clone().requires_grad_()
        y = dcn_v2_conv(xg, o, msk, w, b, 1, 1, 1, 1)
        torch.testing.assert_close(y, b.view(1, -1, 1, 1).expand_as(y))
        y.sum().backward()
        assert xg.grad.abs().max() == 0


@needs_ext
def test_non_contiguous_inputs():
    x, off, msk, w, b = make_inputs(n=2, c=4, h=6, w=6, co=3, dg=2, seed=5)
    # the same values in transposed / strided storage
    x_nc = x.transpose(2, 3).contiguous().transpose(2, 3)
    off_nc = off.transpose(0, 1).contiguous().transpose(0, 1)
    msk_nc = torch.stack([msk, msk], -1)[..., 0]
    w_nc = w.permute(1, 0, 2, 3).contiguous().permute(1, 0, 2, 3)
    b_nc = torch.stack([b, b], 1)[:, 0]
    assert not any(t.is_contiguous() for t in (x_nc, off_nc, msk_nc, w_nc, b_nc))
    y = dcn_v2_conv(x, off, msk, w, b, 1, 1, 1, 2)
    y_nc = dcn_v2_conv(x_nc, off_nc, msk_nc, w_nc, b_nc, 1, 1, 1, 2)
    torch.testing.assert_close(y_nc, y, rtol=0, atol=0)
    compare_with_reference([x_nc, off_nc, msk_nc, w_nc, b_nc], 1, 1, 1, 2, 1e-10)


@needs_ext
def test_bad_shapes_raise_clear_errors():
    x, off, msk, w, b = make_inputs()
    with pytest.raises(RuntimeError, match="offset must have shape"):
        dcn_v2_conv(x, off[:, :4], msk, w, b, 1, 1, 1, 1)
    with pytest.raises(RuntimeError, match="divisible by deformable_groups"):
        dcn_v2_conv(x, off, msk, w, b, 1, 1, 1, 3)
    with pytest.raises(RuntimeError, match="dtype"):
        dcn_v2_conv(x, off.float(), msk, w, b, 1, 1, 1, 1)


@needs_ext
def test_dcn_module_semantics():
    torch.manual_seed(0)
    m = DCN(8, 4, kernel_size=3, stride=1, padding=1, deformable_groups=2)
    names = [n for n, _ in m.named_parameters()]
    assert names == ["weight", "bias", "conv_offset_mask.weight", "conv_offset_mask.bias"]
    assert m.conv_offset_mask.out_channels == 2 * 3 * 9
    assert m.conv_offset_mask.weight.abs().sum() == 0 and m.conv_offset_mask.bias.abs().sum() == 0
    bound = 1.0 / (8 * 9) ** 0.5
    assert m.weight.abs().max() <= bound and m.bias.abs().sum() == 0
    x = torch.randn(2, 8, 7, 6)
    y = m(x)
    torch.testing.assert_close(y, F.conv2d(x, m.weight * 0.5, m.bias, padding=1), rtol=1e-5, atol=1e-5)
    y.sum().backward()
    assert m.conv_offset_mask.weight.grad is not None and m.weight.grad is not None


@needs_ext
def test_dcn_module_uses_offset_layout():
    # conv_offset_mask output: first two thirds = offsets as they are, last third = mask logits.
    torch.manual_seed(1)
    m = DCN(3, 2, kernel_size=3, stride=2, padding=1).double()
    with torch.no_grad():
        m.conv_offset_mask.weight.normal_(0, 0.3)
        m.conv_offset_mask.bias.normal_(0, 0.5)
    x = torch.randn(1, 3, 9, 8, dtype=torch.float64)
    t = m.conv_offset_mask(x)
    ref = dcn_v2_conv_ref(x, t[:, :18], torch.sigmoid(t[:, 18:]), m.weight, m.bias, 2, 1, 1, 1)
    torch.testing.assert_close(m(x), ref)


@needs_ext
def test_cpu_autocast_runs_in_float32():
    m = DCN(4, 4, 3, 1, 1)
    x = torch.randn(1, 4, 6, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
    assert y.dtype == torch.float32
    y.float().sum().backward()
    assert m.weight.grad.dtype == torch.float32


@needs_ext
def test_dcnv2_module_and_no_bias():
    x, off, msk, w, b = make_inputs(n=1, c=2, h=5, w=5, co=2, seed=6)
    m = DCNv2(2, 2, 3, 1, 1).double()
    with torch.no_grad():
        m.weight.copy_(w)
        m.bias.copy_(b)
    torch.testing.assert_close(m(x, off, msk), dcn_v2_conv_ref(x, off, msk, w, b, 1, 1, 1, 1))
    wg = w.clone().requires_grad_()
    y = dcn_v2_conv(x, off, msk, wg, None, 1, 1, 1, 1)
    torch.testing.assert_close(y, dcn_v2_conv_ref(x, off, msk, w, None, 1, 1, 1, 1))
    y.sum().backward()
    assert wg.grad is not None


# ---- pooling ------------------------------------------------------------------------------------------

def _pool_inputs(dtype=torch.float64, no_trans=False, classes=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    out_dim, gs, ps = 2, 2, 3
    x = torch.randn(2, out_dim * gs * gs, 7, 8, generator=g, dtype=torch.float64)
    rois = torch.tensor([[0, 1.2, 0.7, 5.4, 6.1], [1, 0.0, 2.0, 7.0, 4.0], [1, 3.0, 3.0, 3.2, 3.0]],
                        dtype=torch.float64)
    off = None if no_trans else (torch.rand(3, 2 * classes, ps, ps, generator=g, dtype=torch.float64) - 0.5)
    return x.to(dtype), rois.to(dtype), off if off is None else off.to(dtype), out_dim, gs, ps


@needs_ext
@pytest.mark.parametrize("no_trans", [False, True])
def test_pooling_matches_reference(no_trans):
    x, rois, off, out_dim, gs, ps = _pool_inputs(no_trans=no_trans)
    kw = dict(spatial_scale=0.9, pooled_size=ps, output_dim=out_dim, no_trans=no_trans, group_size=gs,
              part_size=ps, sample_per_part=2, trans_std=0.2)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    oa = None if no_trans else off.clone().requires_grad_()
    ob = None if no_trans else off.clone().requires_grad_()
    y = dcn_v2_pooling(xa, rois, oa if oa is not None else x.new_empty(0), **kw)
    yr = dcn_v2_pooling_ref(xb, rois, ob, **kw)
    torch.testing.assert_close(y, yr, rtol=1e-10, atol=1e-10)
    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    y.backward(gy)
    yr.backward(gy)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-10, atol=1e-10)
    if not no_trans:
        torch.testing.assert_close(oa.grad, ob.grad, rtol=1e-9, atol=1e-10)


@needs_ext
def test_pooling_gradcheck():
    x, _, off, out_dim, gs, ps = _pool_inputs(seed=1)
    # rois well inside the image, so no sample sits where the clamp or the skip rule makes it non-smooth
    rois = torch.tensor([[0, 2, 2, 5, 5], [1, 1.6, 2.4, 6, 4.4], [1, 2, 1, 4, 5]], dtype=torch.float64)
    x.requires_grad_()
    off.requires_grad_()

    def f(inp, o):
        return dcn_v2_pooling(inp, rois, o, 1.0, ps, out_dim, False, gs, ps, 2, 0.1)
    assert gradcheck(f, (x, off), eps=1e-6, atol=1e-5, rtol=1e-4)


@needs_ext
def test_pooling_hand_example():
    # One 4x4 image, whole-image roi, one bin, one sample: the bin samples at the roi start (-0.5, -0.5),
    # clamped to pixel (0, 0); with a shift of +0.25 roi widths in x (trans_std 1) it moves to x = 1.5.
    img = torch.arange(16, dtype=torch.float64).view(1, 1, 4, 4)
    rois = torch.tensor([[0, 0, 0, 3, 3]], dtype=torch.float64)
    y = dcn_v2_pooling(img, rois, img.new_empty(0), 1.0, 1, 1, True, 1, 1, 1, 0.0)
    assert y.item() == 0.0
    off = torch.tensor([[[[0.5]], [[0.0]]]], dtype=torch.float64)  # x shift 0.5 * roi width 4 = +2 px
    y = dcn_v2_pooling(img, rois, off, 1.0, 1, 1, False, 1, 1, 1, 1.0)
    assert y.item() == pytest.approx(1.5)  # x = -0.5 + 2 = 1.5 -> between pixels 1 and 2 of row 0
    y4 = dcn_v2_pooling(img, rois, img.new_empty(0), 1.0, 1, 1, True, 1, 1, 2, 0.0)
    # samples at (-0.5|1.5) x (-0.5|1.5), clamped: (0,0)=0, (0,1.5)=1.5, (1.5,0)=6, (1.5,1.5)=7.5
    assert y4.item() == pytest.approx((0 + 1.5 + 6 + 7.5) / 4)


@needs_ext
def test_pooling_modules():
    torch.manual_seed(0)
    x, rois, off, out_dim, gs, ps = _pool_inputs(dtype=torch.float32)
    p = DCNv2Pooling(0.9, ps, out_dim, no_trans=False, group_size=gs, sample_per_part=2, trans_std=0.1)
    y = p(x, rois, off)
    assert y.shape == (3, out_dim, ps, ps)
    q = DCNPooling(0.9, ps, out_dim, no_trans=False, group_size=gs, sample_per_part=2, trans_std=0.1,
                   deform_fc_dim=16)
    assert {n.split(".")[0] for n, _ in q.named_parameters()} == {"offset_fc", "mask_fc"}
    z = q(x.requires_grad_(), rois)
    # zero-initialised heads: no shift and mask 0.5
    torch.testing.assert_close(z, 0.5 * DCNv2Pooling(0.9, ps, out_dim, True, gs, None, 2, 0.1)(x, rois, None))
    z.sum().backward()
    assert x.grad is not None


# ---- CUDA (skipped without a GPU) ---------------------------------------------------------------------

@needs_ext
@cuda_only
def test_gradcheck_cuda_float64():
    args = [t.requires_grad_() for t in make_inputs(n=2, c=4, h=5, w=6, co=2, dg=2, seed=8, device="cuda")]
    assert gradcheck(lambda *a: dcn_v2_conv(*a, (2, 1), (1, 2), 1, 2), args, eps=1e-6, atol=1e-5, rtol=1e-4)


@needs_ext
@cuda_only
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-4), (torch.float16, 2e-2),
                                       (torch.bfloat16, 5e-2)])
def test_cuda_matches_cpu(dtype, tol):
    case = dict(n=2, c=8, h=9, w=11, co=5, k=(3, 3), stride=(2, 1), pad=(1, 2), dil=(1, 2), dg=2, scale=3.0)
    args = make_inputs(**case, dtype=dtype, seed=9, device="cuda")
    compare_with_reference(args, case["stride"], case["pad"], case["dil"], case["dg"], tol)


@needs_ext
@cuda_only
def test_cuda_pooling_matches_cpu():
    x, rois, off, out_dim, gs, ps = _pool_inputs(seed=2)
    kw = dict(spatial_scale=0.9, pooled_size=ps, output_dim=out_dim, no_trans=False, group_size=gs,
              part_size=ps, sample_per_part=2, trans_std=0.2)
    ins = [(t.cuda() if dev == "cuda" else t).clone().requires_grad_() for dev in ("cpu", "cuda") for t in (x, off)]
    ys = [dcn_v2_pooling(ins[2 * i], rois.to(ins[2 * i].device), ins[2 * i + 1], **kw) for i in range(2)]
    torch.testing.assert_close(ys[1].cpu(), ys[0])
    for y in ys:
        y.sum().backward()
    torch.testing.assert_close(ins[2].grad.cpu(), ins[0].grad)
    torch.testing.assert_close(ins[3].grad.cpu(), ins[1].grad)


@needs_ext
@cuda_only
def test_cuda_autocast_module():
    m = DCN(8, 8, 3, 1, 1).cuda()
    x = torch.randn(2, 8, 16, 16, device="cuda")
    with torch.autocast("cuda", dtype=torch.float16):
        y = m(x)
    assert y.dtype == torch.float16
    y.float().sum().backward()
    assert m.weight.grad.dtype == torch.float32 and torch.isfinite(m.weight.grad).all()
