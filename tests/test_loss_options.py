"""--focal_loss logsigmoid and --gaussian ttfnet: hand-computed values, every task's samples and losses, training."""
import math
import random

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

import datasets.sample.ctdet as ctdet_sample
import datasets.sample.ddd as ddd_sample
import datasets.sample.exdet as exdet_sample
import datasets.sample.multi_pose as multi_pose_sample
from datasets.dataset_factory import get_dataset
from datasets.synthetic import kitti, people, shapes
from models.losses import FocalLoss, LogitFocalLoss, _logit_neg_loss, _neg_loss
from models.model import create_model
from models.utils import _sigmoid
from opts import opts
from trains.train_factory import train_factory
from utils.image import draw_ttf_gaussian, draw_umich_gaussian, gaussian2D_elliptic, ttf_radii

torch.set_num_threads(1)


def _original(logits, gt):
    """The original's heat-map loss: clamped sigmoid (in place, on a copy), then `_neg_loss`."""
    return _neg_loss(_sigmoid(logits.clone()), gt)


def _target(shape=(2, 3, 16, 16), seed=0):
    """Gaussian target maps with a few peaks, as the samples draw them."""
    rs = np.random.RandomState(seed)
    gt = np.zeros(shape, np.float32)
    for b in range(shape[0]):
        for _ in range(4):
            c = rs.randint(shape[1])
            draw_umich_gaussian(gt[b, c], rs.randint(0, shape[3], 2), int(rs.randint(0, 4)))
    return torch.from_numpy(gt)


# ----------------------------------------------------------------------------- focal loss from logits
def test_logit_focal_loss_hand_computed():
    # p = 0.5 everywhere; positive: log(.5) * .5^2; negatives: log(.5) * .5^2 * (1 - gt)^4, one positive
    gt = torch.tensor([1.0, 0.5, 0.0]).view(1, 1, 1, 3)
    expected = math.log(2) * 0.25 * (1 + 0.5 ** 4 + 1)
    assert _logit_neg_loss(torch.zeros(1, 1, 1, 3), gt).item() == pytest.approx(expected, abs=1e-6)
    assert LogitFocalLoss()(torch.zeros(1, 1, 1, 3), gt).item() == pytest.approx(expected, abs=1e-6)
    # no positive: the negative sum alone, not normalised; logit -ln 3 gives p = 1/4
    no_pos = torch.tensor([0.0, 0.5]).view(1, 1, 1, 2)
    x = torch.full((1, 1, 1, 2), -math.log(3.0))
    expected = -math.log(0.75) * 0.25 ** 2 * (1 + 0.5 ** 4)
    assert _logit_neg_loss(x, no_pos).item() == pytest.approx(expected, abs=1e-6)


def test_logit_focal_loss_equals_the_original_on_moderate_logits():
    gt = _target()
    # logits within +-5: the original's clamp (|logit| > 9.2) never acts
    base = torch.rand(gt.shape, generator=torch.Generator().manual_seed(1)) * 10 - 5
    for dtype, tol in ((torch.float64, 1e-9), (torch.float32, 1e-6)):
        logits = base.to(dtype).requires_grad_()
        ref_logits = base.to(dtype).requires_grad_()
        new, ref = _logit_neg_loss(logits, gt), _original(ref_logits * 1, gt.to(dtype))
        assert new.dtype == dtype
        # float32 sums of ~1500 terms near 200 agree to a few ulps, not to 1e-5 absolute
        assert abs(new.item() - ref.item()) < max(1e-5, tol * abs(ref.item())) * (10 if dtype == torch.float32 else 1)
        new.backward()
        ref.backward()
        torch.testing.assert_close(logits.grad, ref_logits.grad, atol=tol, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_logit_focal_loss_finite_on_saturated_logits(dtype):
    # a positive predicted at logit -30 and a negative (gt 0) at +30: each term is -logsigmoid(-30) ~= 30
    gt = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)
    logits = torch.tensor([-30.0, 30.0], dtype=dtype).view(1, 1, 1, 2).requires_grad_()
    loss = _logit_neg_loss(logits, gt)
    assert loss.dtype == torch.float32 and loss.item() == pytest.approx(60.0, abs=1e-3)
    loss.backward()
    assert torch.isfinite(logits.grad).all() and (logits.grad.abs() > 0.5).all()
    # correct saturated predictions cost nothing
    right = torch.tensor([30.0, -30.0], dtype=dtype).view(1, 1, 1, 2)
    assert _logit_neg_loss(right, gt).item() == pytest.approx(0.0, abs=1e-6)
    # random logits up to +-30 on a real target stay finite
    x = (torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 60 - 30).to(dtype)
    assert torch.isfinite(_logit_neg_loss(x, _target()))
    original = _original(logits.detach(), gt)
    if dtype == torch.float32:
        # the clamp keeps it finite in float32, but at -log(1e-4) per pixel and with no gradient
        assert original.item() == pytest.approx(2 * -math.log(1e-4) * (1 - 1e-4) ** 2, rel=1e-4)
    else:
        # half precision rounds the clamp's 1 - 1e-4 to 1: log(0)
        assert not torch.isfinite(original)


# ----------------------------------------------------------------------------- TTFNet gaussian
def test_ttf_gaussian_hand_computed():
    # 20 x 10 box: sigma_x = 0.54 * 20 / 6 = 1.8, sigma_y = 0.9; window half-widths int(5.4) = 5, int(2.7) = 2
    assert ttf_radii(20, 10) == (5, 2)
    hm = np.zeros((32, 32), np.float32)
    assert draw_ttf_gaussian(hm, (15.7, 15.2), 20, 10) is hm
    assert hm[15, 15] == 1 and hm.max() == 1
    assert hm[15, 16] == pytest.approx(math.exp(-1 / (2 * 1.8 ** 2)), rel=1e-6)
    assert hm[16, 15] == pytest.approx(math.exp(-1 / (2 * 0.9 ** 2)), rel=1e-6)
    assert hm[17, 18] == pytest.approx(math.exp(-9 / (2 * 1.8 ** 2) - 4 / (2 * 0.9 ** 2)), rel=1e-6)
    # the sigmas read back from the profile through the peak
    assert math.sqrt(-4 / (2 * math.log(hm[15, 17]))) == pytest.approx(1.8, rel=1e-5)
    assert math.sqrt(-4 / (2 * math.log(hm[17, 15]))) == pytest.approx(0.9, rel=1e-5)
    rows, cols = np.nonzero(hm)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (13, 17, 10, 20)
    # symmetric about the peak
    np.testing.assert_array_equal(hm[13:18, 10:21], hm[13:18, 10:21][::-1, ::-1])
    # the shape helper on its own
    g = gaussian2D_elliptic((5, 11), 1.8, 0.9)
    np.testing.assert_allclose(hm[13:18, 10:21], g, rtol=1e-6)


def test_ttf_gaussian_max_merge_border_and_degenerate_boxes():
    hm = np.zeros((16, 16), np.float32)
    draw_ttf_gaussian(hm, (8, 8), 12, 12)
    big = hm.copy()
    # a smaller box next to it: each pixel keeps the larger value, the peaks stay 1
    draw_ttf_gaussian(hm, (10, 8), 4, 8, k=0.8)
    small = draw_ttf_gaussian(np.zeros((16, 16), np.float32), (10, 8), 4, 8, k=0.8)
    np.testing.assert_array_equal(hm, np.maximum(big, small))
    assert hm[8, 8] == 1 and hm[8, 10] == pytest.approx(max(big[8, 10], 0.8))
    # clipped at the map border, peak in the corner
    corner = draw_ttf_gaussian(np.zeros((8, 8), np.float32), (0, 0), 20, 10)
    assert corner[0, 0] == 1 and corner[0, 1] == pytest.approx(math.exp(-1 / (2 * 1.8 ** 2)), rel=1e-6)
    assert np.count_nonzero(corner) == 6 * 3
    # a box thinner than a pixel (or of zero width) still gets its single peak
    thin = draw_ttf_gaussian(np.zeros((8, 8), np.float32), (3, 3), 0, 1)
    assert np.count_nonzero(thin) == 1 and thin[3, 3] == 1


# ----------------------------------------------------------------------------- every task's training samples
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("loss_options")
    shapes.generate(str(base / "synth"), n_train=4, n_val=1, seed=1)
    people.generate(str(base / "synth_hp"), n_train=2, n_val=1, seed=1)
    kitti.generate(str(base / "synth_kitti"), n_train=2, n_val=1, seed=1)
    return base


DATASETS = {"ctdet": "synth", "exdet": "synth", "multi_pose": "synth_hp", "ddd": "synth_kitti"}
CENTRE_MAP = {"ctdet": "hm", "exdet": "hm_c", "multi_pose": "hm", "ddd": "hm"}


def _dataset(data_dir, task, *extra):
    dataset = DATASETS[task]
    opt = opts().parse([task, "--dataset", dataset, "--gpus", "-1", "--data_dir", str(data_dir),
                        "--exp_root", str(data_dir / "exp"), *extra])
    Dataset = get_dataset(dataset, task)
    opt = opts().update_dataset_info_and_set_heads(opt, Dataset)
    return opt, Dataset(opt, "train")


def _sample(ds, index=0, seed=0):
    """Sample `index` with the augmentation's random draws (numpy and python's, for colour jitter) seeded."""
    np.random.seed(seed)
    random.seed(seed)
    return ds[index]


def _sizes_from_targets(task, ret):
    """(w, h) of every drawn object as the sample's regression targets give them."""
    if task == "exdet":
        mask = ret["reg_mask"] > 0
        out_w = ret["hm_c"].shape[2]
        pts = {p: np.stack([ret[f"ind_{p}"] % out_w, ret[f"ind_{p}"] // out_w], 1) + ret[f"reg_{p}"] for p in "tlbr"}
        return np.stack([pts["r"][:, 0] - pts["l"][:, 0], pts["b"][:, 1] - pts["t"][:, 1]], 1)[mask]
    mask = ret["rot_mask"] if task == "ddd" else ret["wh"].any(axis=1)
    return ret["wh"][mask > 0]


@pytest.mark.parametrize("task", ["ctdet", "exdet", "multi_pose", "ddd"])
def test_ttfnet_training_samples_have_elliptical_centre_maps(data_dir, task, monkeypatch):
    module = {"ctdet": ctdet_sample, "exdet": exdet_sample, "multi_pose": multi_pose_sample, "ddd": ddd_sample}[task]
    calls = []

    def spy(heatmap, center, w, h, *args, **kwargs):
        calls.append((int(center[0]), int(center[1]), float(w), float(h)))
        return draw_ttf_gaussian(heatmap, center, w, h, *args, **kwargs)

    monkeypatch.setattr(module, "draw_ttf_gaussian", spy)
    _, ds = _dataset(data_dir, task, "--gaussian", "ttfnet")
    ret = _sample(ds)
    assert calls, "no TTFNet gaussian drawn"
    centre = ret[CENTRE_MAP[task]].max(axis=0)
    # the centre map is exactly the max-merge of the drawn elliptical gaussians (ddd's ignore marks aside)
    expected = np.zeros_like(centre)
    for x, y, w, h in calls:
        draw_ttf_gaussian(expected, (x, y), w, h)
    keep = centre != ddd_sample.IGNORE_VALUE if task == "ddd" else np.ones(centre.shape, bool)
    np.testing.assert_allclose(centre[keep], expected[keep], rtol=1e-6)
    # the sizes are those of the objects' boxes (kept in the order drawn, ddd's ignored regions aside)
    sizes = _sizes_from_targets(task, ret)
    drawn = np.array([c[2:] for c in calls])
    if task == "ddd":
        drawn = np.array([s for s in drawn if np.isclose(sizes, s, atol=1e-3).all(axis=1).any()])
    np.testing.assert_allclose(drawn, sizes, atol=1e-3)
    # elliptical: some object's spread differs between x and y
    radii = np.array([ttf_radii(w, h) for w, h in drawn])
    assert (radii[:, 0] != radii[:, 1]).any()
    # and the same sample with the original radius differs only in the centre map's spread
    _, ds_orig = _dataset(data_dir, task)
    orig = _sample(ds_orig)
    assert not np.array_equal(orig[CENTRE_MAP[task]], ret[CENTRE_MAP[task]])
    np.testing.assert_array_equal(orig[CENTRE_MAP[task]] == 1, ret[CENTRE_MAP[task]] == 1)
    np.testing.assert_array_equal(orig["input"], ret["input"])
    for key in set(orig) - {CENTRE_MAP[task], "input", "meta"}:
        np.testing.assert_array_equal(orig[key], ret[key], err_msg=key)


# ----------------------------------------------------------------------------- every task's loss
def _batch_and_outputs(opt, ds, seed=0):
    ret = _sample(ds)
    batch = default_collate([{k: v for k, v in ret.items() if k != "meta"}])
    _, _, height, width = batch[CENTRE_MAP[opt.task]].shape
    gen = torch.Generator().manual_seed(seed)
    # heat-map logits in -6 .. 0, as a trained network's background mostly is; other heads within +-4
    outputs = {head: torch.rand(1, ch, height, width, generator=gen) * (6 if head.startswith("hm") else 8)
               - (6 if head.startswith("hm") else 4) for head, ch in opt.heads.items()}
    return batch, outputs


@pytest.mark.parametrize("task", ["ctdet", "exdet", "multi_pose", "ddd"])
def test_logsigmoid_option_matches_the_original_loss_of_every_task(data_dir, task):
    opt, ds = _dataset(data_dir, task)
    opt_logits, _ = _dataset(data_dir, task, "--focal_loss", "logsigmoid")
    batch, outputs = _batch_and_outputs(opt, ds)
    trainer = train_factory[task]
    ref_out = {k: v.clone() for k, v in outputs.items()}
    new_out = {k: v.clone().requires_grad_() for k, v in outputs.items()}
    _, ref_stats = trainer(opt, torch.nn.Identity()).loss([ref_out], batch)
    loss, new_stats = trainer(opt_logits, torch.nn.Identity()).loss([new_out], batch)
    assert list(new_stats) == list(ref_stats)
    for name in ref_stats:
        assert new_stats[name].item() == pytest.approx(ref_stats[name].item(), rel=1e-6, abs=1e-5), name
    # the heat maps left for decoding and debug drawing are the same clamped sigmoids
    for key in (k for k in ref_out if k.startswith("hm")):
        torch.testing.assert_close(new_out[key].detach(), ref_out[key], atol=1e-6, rtol=0)
    loss.backward()


def test_logsigmoid_multi_pose_joint_maps_and_focal_choice(data_dir):
    opt, _ = _dataset(data_dir, "multi_pose", "--focal_loss", "logsigmoid")
    crit = train_factory["multi_pose"](opt, torch.nn.Identity()).loss
    assert isinstance(crit.crit, LogitFocalLoss) and isinstance(crit.crit_hm_hp, LogitFocalLoss)
    opt, _ = _dataset(data_dir, "multi_pose")
    crit = train_factory["multi_pose"](opt, torch.nn.Identity()).loss
    assert isinstance(crit.crit, FocalLoss) and not isinstance(crit.crit, LogitFocalLoss)


# ----------------------------------------------------------------------------- training with both options
def test_ctdet_trains_with_both_options(data_dir):
    opt, ds = _dataset(data_dir, "ctdet", "--focal_loss", "logsigmoid", "--gaussian", "ttfnet",
                       "--arch", "res_18", "--input_res", "64", "--lr", "1e-3")
    opt.device = torch.device("cpu")
    batch = default_collate([{k: v for k, v in _sample(ds, i, seed=i).items() if k != "meta"} for i in range(4)])
    torch.manual_seed(0)
    model = create_model(opt.arch, opt.heads, opt.head_conv)
    trainer = train_factory["ctdet"](opt, model, torch.optim.Adam(model.parameters(), opt.lr))
    trainer.set_device(opt.gpus, opt.chunk_sizes, opt.device)
    losses = []
    for epoch in range(1, 7):
        ret, _ = trainer.train(epoch, [{k: v.clone() for k, v in batch.items()}])
        assert all(np.isfinite(v) for v in ret.values())
        losses.append((ret["loss"], ret["hm_loss"]))
    (first, first_hm), (last, last_hm) = losses[0], losses[-1]
    # overfitting one batch: the loss falls steadily (3.57 -> 2.19 here)
    assert last < 0.8 * first and last_hm < first_hm
    assert sum(b[0] < a[0] for a, b in zip(losses, losses[1:])) >= 4
