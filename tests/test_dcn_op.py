"""DCNv2 as a registered torch operator: schema, fake kernel, autograd, torch.export, the GridSample form."""
import pytest
import torch
from dcn_reference import dcn_v2_conv_ref

from deploy.dcn_decompose import deform_conv_gridsample
from models.networks.DCNv2 import dcn_v2
from models.networks.DCNv2.dcn_v2 import DCN

pytestmark = pytest.mark.skipif(not dcn_v2.extension_available(), reason="DCNv2 extension not built")
torch.set_num_threads(1)


def _operands(dtype=torch.float64, n=2, c=4, h=6, w=7, co=3, dg=2, stride=(2, 1), pad=(1, 2), dil=(1, 2), seed=0):
    g = torch.Generator().manual_seed(seed)
    ho = (h + 2 * pad[0] - (dil[0] * 2 + 1)) // stride[0] + 1
    wo = (w + 2 * pad[1] - (dil[1] * 2 + 1)) // stride[1] + 1
    x = torch.randn(n, c, h, w, generator=g, dtype=dtype)
    off = (torch.rand(n, 2 * dg * 9, ho, wo, generator=g, dtype=dtype) * 2 - 1) * 3  # past every border
    msk = torch.rand(n, dg * 9, ho, wo, generator=g, dtype=dtype)
    wt = torch.randn(co, c, 3, 3, generator=g, dtype=dtype)
    b = torch.randn(co, generator=g, dtype=dtype)
    return (x, off, msk, wt, b), (list(stride), list(pad), list(dil), dg)


def test_operator_passes_opcheck():
    tensors, args = _operands(n=1, c=2, h=4, w=4, co=2, dg=1)
    tensors = tuple(t.requires_grad_() for t in tensors)
    # fake kernel and autograd registration (AOT dispatch is covered by the torch.compile test; opcheck's
    # schema test takes 20 s and the schema is exercised by every call)
    torch.library.opcheck(torch.ops.dcn_v2.modulated_deform_conv.default, (*tensors, *args),
                          test_utils=("test_faketensor", "test_autograd_registration"))


def test_gridsample_form_equals_kernel():
    tensors, args = _operands()
    want = torch.ops.dcn_v2.modulated_deform_conv(*tensors, *args)
    torch.testing.assert_close(deform_conv_gridsample(*tensors, *args), want, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(dcn_v2_conv_ref(*tensors, *args), want, rtol=1e-10, atol=1e-10)


def test_dcn_module_goes_through_torch_export():
    torch.manual_seed(0)
    m = DCN(4, 4, 3, 1, 1).eval()
    with torch.no_grad():
        m.conv_offset_mask.weight.normal_(0, 0.3)
    x = torch.randn(1, 4, 8, 8)
    ep = torch.export.export(m, (x,))
    targets = [n.target for n in ep.graph.nodes if n.op == "call_function"]
    assert torch.ops.dcn_v2.modulated_deform_conv.default in targets
    torch.testing.assert_close(ep.module()(x), m(x))


def test_dcn_module_under_torch_compile():
    torch.manual_seed(1)
    m = DCN(2, 2, 3, 1, 1)
    with torch.no_grad():
        m.conv_offset_mask.weight.normal_(0, 0.3)
    x = torch.randn(1, 2, 5, 5, requires_grad=True)
    got = torch.compile(m, backend="aot_eager", fullgraph=True)(x)
    torch.testing.assert_close(got, m(x))
    got.sum().backward()
    assert x.grad is not None and m.conv_offset_mask.weight.grad is not None
