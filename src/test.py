"""Evaluate a trained model on a dataset split (val, or test with --trainval) and write the results."""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import numpy as np
import torch
import torch.utils.data
from progress.bar import Bar

import _init_paths  # noqa: F401
from datasets.dataset_factory import dataset_factory
from datasets.sample.common import read_image
from detectors.base_detector import TIME_STATS
from detectors.detector_factory import detector_factory
from logger import Logger, NullLogger
from opts import inference_batch_size, opts
from utils import distributed
from utils.errors import UserError, run_cli
from utils.utils import AverageMeter, select_device


class PrefetchDataset(torch.utils.data.Dataset):
    """Reads and pre-processes the test images (every test scale) in a loader worker."""

    def __init__(self, opt, dataset, pre_process_func) -> None:
        self.images = dataset.images
        self.load_image_func = dataset.coco.loadImgs
        self.img_dir = dataset.img_dir
        self.pre_process_func = pre_process_func
        self.opt = opt

    def __getitem__(self, index: int):
        img_id = self.images[index]
        img_info = self.load_image_func(ids=[img_id])[0]
        image = read_image(os.path.join(self.img_dir, img_info["file_name"]))
        images, meta = {}, {}
        for scale in self.opt.test_scales:
            if self.opt.task == "ddd":
                images[scale], meta[scale] = self.pre_process_func(image, scale, img_info["calib"])
            else:
                images[scale], meta[scale] = self.pre_process_func(image, scale)
        return img_id, {"images": images, "image": image, "meta": meta}

    def __len__(self) -> int:
        return len(self.images)


@contextlib.contextmanager
def _session(opt) -> Iterator[tuple]:
    """(opt, device, dataset, detector) shared by both test loops, with the experiment's log open meanwhile.

    Under torchrun every process joins the group and later tests its share of the images (`_shard`).
    """
    Dataset = dataset_factory[opt.dataset]
    opt = opts().update_dataset_info_and_set_heads(opt, Dataset)
    print(opt)
    # before the Logger writes opt.txt: a missing GPU stops the run with nothing written
    device = select_device(opt)
    distributed.check_launch(1, opt.gpus, opt.gpus_str, training=False)
    split = "val" if not opt.trainval else "test"
    dataset = Dataset(opt, split)
    # whatever --val_intervals says: an empty split would "evaluate" to nothing and exit 0
    dataset.require_samples()
    # one process per GPU under torchrun: the detector's "cuda" is this process's GPU, set by process_group
    with distributed.process_group(device, opt.dist_timeout) as device, \
            (Logger(opt) if distributed.is_main() else NullLogger()):
        detector = detector_factory[opt.task](opt)
        yield opt, device, dataset, detector


def _shard(dataset) -> distributed.ShardSampler:
    """The image indices this process tests: all of them, or every world-size-th under torchrun."""
    return distributed.ShardSampler(len(dataset))


def _worker_error(e: UserError) -> UserError:
    """A UserError re-raised from a loader worker carries the worker's traceback: keep its message only."""
    last = str(e).strip().splitlines()[-1] if str(e).strip() else ""
    marker = "UserError: "
    return UserError(last.split(marker, 1)[1] if marker in last else last)


def _evaluate(opt, dataset, runs, show_last: bool) -> None:
    """Collect the (img_id, detector.run result) pairs of `runs` under a progress bar, then evaluate them.

    show_last: the bar shows each time's last value and average (prefetch loop) or the average only.
    """
    results = {}
    num_iters = len(_shard(dataset))
    # file None: the bar of a torchrun rank other than 0 keeps its clock but draws nothing
    bar = Bar(f"{opt.exp_id}", max=num_iters, **({} if distributed.is_main() else {"file": None}))
    avg_time_stats = {t: AverageMeter() for t in TIME_STATS}
    for ind, (img_id, ret) in enumerate(runs):
        results[img_id] = ret["results"]
        # stage timings some detectors add (centernet2: backbone, proposals, roi_heads) follow the usual ones
        for t in [t for t in ret if t not in avg_time_stats and t != "results"]:
            avg_time_stats[t] = AverageMeter()
        suffix = f"[{ind}/{num_iters}]|Tot: {bar.elapsed_td} |ETA: {bar.eta_td} "
        for t, meter in avg_time_stats.items():
            meter.update(ret[t])
            suffix += f"|{t} {meter.val:.3f}s ({meter.avg:.3f}s) " if show_last else f"|{t} {meter.avg:.3f} "
        bar.suffix = suffix
        bar.next()
    bar.finish()
    if distributed.is_enabled():
        parts = distributed.gather_objects(results)
        if not distributed.is_main():
            return
        results = distributed.interleave(parts)  # the single-process order of the images
    dataset.run_eval(results, opt.save_dir)


def prefetch_test(opt) -> None:
    """Test with image loading and pre-processing in a DataLoader worker."""
    with _session(opt) as (opt, device, dataset, detector):
        data_loader = torch.utils.data.DataLoader(
            PrefetchDataset(opt, dataset, detector.pre_process), batch_size=1, shuffle=False, num_workers=1,
            pin_memory=device.type == "cuda", sampler=_shard(dataset))

        def items():
            it = iter(data_loader)
            for _ in range(len(data_loader)):
                try:
                    img_id, pre_processed_images = next(it)
                except UserError as e:
                    raise _worker_error(e) from None
                yield img_id.numpy().astype(np.int32)[0], pre_processed_images, None

        def runs():
            if opt.test_batch == 1:
                for img_id, item, _ in items():
                    yield img_id, detector.run(item)
            else:
                yield from _batched_runs(detector, items(), opt.test_batch)

        _evaluate(opt, dataset, runs(), show_last=True)


def test(opt) -> None:
    """Test image by image in this process (--not_prefetch_test)."""
    with _session(opt) as (opt, _device, dataset, detector):

        def items():
            for ind in _shard(dataset):
                img_id = dataset.images[ind]
                img_info = dataset.coco.loadImgs(ids=[img_id])[0]
                img_path = os.path.join(dataset.img_dir, img_info["file_name"])
                yield img_id, img_path, img_info["calib"] if opt.task == "ddd" else None

        def runs():
            if opt.test_batch == 1:
                for img_id, img_path, calib in items():
                    yield img_id, detector.run(img_path, calib) if calib is not None else detector.run(img_path)
            else:
                yield from _batched_runs(detector, items(), opt.test_batch)

        _evaluate(opt, dataset, runs(), show_last=False)


def _batched_runs(detector, items: Iterator[tuple], batch_size: int) -> Iterator[tuple]:
    """(img_id, result) pairs with the network run on `batch_size` images at a time (detector.run on a list)."""
    chunk: list[tuple] = []

    def flush():
        calibs = [c for _, _, c in chunk]
        rets = detector.run([x for _, x, _ in chunk], None if all(c is None for c in calibs) else calibs)
        return [(img_id, ret) for (img_id, _, _), ret in zip(chunk, rets)]

    for item in items:
        chunk.append(item)
        if len(chunk) == batch_size:
            yield from flush()
            chunk = []
    if chunk:
        yield from flush()


def main() -> None:
    """Parse the command line and run the chosen test loop; under torchrun only rank 0 prints to stdout."""
    with distributed.quiet_unless_main():
        opt = opts().parse()
        opt.test_batch = inference_batch_size(opt, sys.argv[1:])
        if opt.not_prefetch_test:
            test(opt)
        else:
            prefetch_test(opt)


if __name__ == "__main__":
    run_cli(main)
