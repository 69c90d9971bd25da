"""Test-time pipeline shared by all tasks: model set-up, pre-processing, timing and result display."""
from __future__ import annotations

import os
import time

import cv2
import numpy as np
import torch

from deploy.runtime import is_exported_model, load_exported_model
from models.model import checkpoint_options, create_model, load_weights
from utils.amp import autocast, check_amp, resolve_amp, to_float
from utils.debugger import Debugger, debugger_for, denormalize
from utils.image import get_affine_transform
from utils.image_io import read_image
from utils.memory import check_fits, forward_bytes, out_of_memory_as_error, preprocess_bytes
from utils.utils import select_device

TIME_STATS = ["tot", "load", "pre", "net", "dec", "post", "merge"]


def keep_top_scores(results: dict, max_per_image: int, score_col: int = 4) -> dict:
    """Keep the boxes (over all classes) scoring at least the max_per_image-th best score (ties kept)."""
    scores = np.hstack([r[:, score_col] for r in results.values()]) if results else np.zeros(0)
    if len(scores) > max_per_image:
        kth = len(scores) - max_per_image
        thresh = np.partition(scores, kth)[kth]
        for j in results:
            results[j] = results[j][results[j][:, score_col] >= thresh]
    return results


def vis_out_dir(opt) -> str:
    """Folder where visualisations go when there is no display (--demo_out_dir, else <save_dir>/demo)."""
    out = getattr(opt, "demo_out_dir", "") or ""
    return out if out else os.path.join(opt.save_dir, "demo")


class BaseDetector:
    """Builds and loads the network; subclasses implement process/post_process/merge_outputs/debug/show_results."""

    def __init__(self, opt) -> None:
        opt.device = select_device(opt)
        opt.amp = resolve_amp(getattr(opt, "amp", ""), opt.device)
        check_amp(opt.amp, opt.device)
        print("Creating model...")
        if is_exported_model(opt.load_model):
            # model.onnx from src/tools/export.py, run by --backend; pre/post-processing stay the same
            self.model = load_exported_model(opt.load_model, opt.backend, opt.amp, opt.task)
        else:
            # Weights come from --load_model: nothing is downloaded at test time.
            self.model = create_model(opt.arch, opt.heads, opt.head_conv, pretrained=False)
            self.model = load_weights(self.model, opt.load_model, **checkpoint_options(opt))
            self.model.to(opt.device).eval()  # Module.to moves the parameters in place
            if getattr(opt, "channels_last", False):
                self.model.to(memory_format=torch.channels_last)

        self.opt = opt
        # 1 x 1 x 3: broadcasts over the HWC images pre_process normalises
        self.mean, self.std = (np.array(stat, dtype=np.float32).reshape(1, 1, 3) for stat in (opt.mean, opt.std))
        self.num_classes, self.scales = opt.num_classes, opt.test_scales
        self.max_per_image = 100
        self.pause = True
        # Headless display: where result images go, whether to write them, and the last ones drawn.
        self.vis_dir = vis_out_dir(opt)
        self.save_vis_images = True
        self.last_vis: dict = {}
        self._frame_id = 0

    def _sync(self) -> None:
        # Timings are only meaningful once queued CUDA work has finished; nothing to wait for on CPU.
        if self.opt.device.type == "cuda":
            torch.cuda.synchronize()

    def _network_output(self, images: torch.Tensor) -> dict:
        """The last stack's raw outputs for `images`; queued work is awaited first so the forward is timed alone."""
        self._sync()
        with autocast(self.opt.amp, self.opt.device):
            output = self.model(self.network_input(images))[-1]
        if getattr(self.opt, "channels_last", False):
            # decoding flattens the maps with view(), which needs the default (NCHW) layout
            output = {k: v.contiguous() for k, v in output.items()}
        # decoding, flip merging and thresholds run in float32, as without --amp
        return to_float(output) if self.opt.amp else output

    def network_input(self, images: torch.Tensor) -> torch.Tensor:
        """The batch in the memory format the network was put in (--channels_last: NHWC)."""
        if getattr(self.opt, "channels_last", False) and isinstance(self.model, torch.nn.Module):
            return images.contiguous(memory_format=torch.channels_last)
        return images

    def pre_process(self, image: np.ndarray, scale: float, meta=None) -> tuple[torch.Tensor, dict]:
        """Resize by `scale`, warp to the network input (fixed size or padded original), normalise, CHW."""
        opt = self.opt
        height, width = image.shape[0:2]
        new_height = int(height * scale)
        new_width = int(width * scale)
        if opt.fix_res:
            inp_height, inp_width = opt.input_h, opt.input_w
            c = np.array([new_width / 2., new_height / 2.], dtype=np.float32)
            s = max(height, width) * 1.0
        else:
            # Pad up to the next multiple of pad + 1 (strictly greater when already a multiple).
            inp_height = (new_height | opt.pad) + 1
            inp_width = (new_width | opt.pad) + 1
            c = np.array([new_width // 2, new_height // 2], dtype=np.float32)
            s = np.array([inp_width, inp_height], dtype=np.float32)

        batch = 2 if opt.flip_test else 1
        with self._memory_guard(image.shape, batch, inp_height, inp_width, on_device=False):
            trans_input = get_affine_transform(c, s, 0, [inp_width, inp_height])
            resized_image = cv2.resize(image, (new_width, new_height))
            inp_image = cv2.warpAffine(resized_image, trans_input, (inp_width, inp_height), flags=cv2.INTER_LINEAR)
            inp_image = ((inp_image / 255. - self.mean) / self.std).astype(np.float32)

            images = inp_image.transpose(2, 0, 1).reshape(1, 3, inp_height, inp_width)
            if opt.flip_test:
                images = np.concatenate((images, images[:, :, :, ::-1]), axis=0)
            images = torch.from_numpy(np.ascontiguousarray(images))
        meta = {"c": c, "s": s,
                "out_height": inp_height // opt.down_ratio,
                "out_width": inp_width // opt.down_ratio}
        return images, meta

    def _memory_guard(self, image_shape: tuple, batch: int, height: int, width: int, on_device: bool):
        """Stop with one line, before allocating, when the input of this image will not fit in memory.

        on_device=False checks pre-processing (host memory, safe in a loader worker); True checks the
        forward pass on opt.device. The returned context turns a failed allocation into the same line.
        """
        opt = self.opt
        device = opt.device if on_device else torch.device("cpu")
        needed = preprocess_bytes(batch, height, width) if not on_device else 0
        if on_device or opt.device.type == "cpu":
            needed += forward_bytes(opt.arch, batch, height, width)
        img_h, img_w = image_shape[0], image_shape[1]
        mode = "--keep_res" if opt.keep_res else "fixed-size"
        flip = ", twice with --flip_test" if batch > 1 else ""
        what = f"image {img_w}x{img_h} ({mode} network input {width}x{height}{flip}) with --arch {opt.arch}"
        if opt.keep_res:
            fix = ("drop --keep_res to test at the fixed input size (the --fix_res default, set by --input_res), "
                   "or shrink the image with --test_scales below 1")
        else:
            fix = "pass a smaller --input_res (or --input_h / --input_w)"
        check_fits(needed, device, what, fix)
        where = "GPU memory" if device.type == "cuda" else "memory"
        return out_of_memory_as_error(f"{what} ran out of {where}; {fix}")

    def process(self, images: torch.Tensor, return_time: bool = False):
        """Network forward + decoding; returns (output, dets[, forward_time])."""
        raise NotImplementedError

    def post_process(self, dets, meta: dict, scale: float = 1):
        """Decoded detections of one scale -> original image coordinates."""
        raise NotImplementedError

    def merge_outputs(self, detections: list):
        """Combine the per-scale results into the final result."""
        raise NotImplementedError

    def debug(self, debugger: Debugger, images: torch.Tensor, dets, output: dict, scale: float = 1) -> None:
        """Draw network outputs for one scale (--debug >= 2)."""
        raise NotImplementedError

    def show_results(self, debugger: Debugger, image: np.ndarray, results) -> None:
        """Draw and show the final results (--debug >= 1)."""
        raise NotImplementedError

    def _blend_pred(self, debugger: Debugger, images: torch.Tensor, output: dict, name: str) -> np.ndarray:
        """The first network input as an image, with the predicted `hm` blended over it as `name`; returns it."""
        img = denormalize(images[0], self.mean, self.std)
        pred = debugger.gen_colormap(output["hm"][0].detach().cpu().numpy())
        debugger.add_blend_img(img, pred, name)
        return img

    def _show_class_boxes(self, debugger: Debugger, image: np.ndarray, results: dict, img_id: str) -> None:
        """Show the per-class boxes {class: rows [x1, y1, x2, y2, score]} above vis_thresh on the original image."""
        debugger.add_img(image, img_id=img_id)
        for j in range(1, self.num_classes + 1):
            for bbox in results[j]:
                if bbox[4] > self.opt.vis_thresh:
                    debugger.add_coco_bbox(bbox[:4], j - 1, bbox[4], img_id=img_id)
        debugger.show_all_imgs(pause=self.pause)

    def _make_debugger(self, prefix: str) -> Debugger:
        debugger = debugger_for(self.opt, self.vis_dir, prefix)
        debugger.save_headless = self.save_vis_images
        return debugger

    def run(self, image_or_path_or_tensor, meta=None) -> dict | list[dict]:
        """Detect on an image path, a BGR ndarray or a test.py prefetch dict; returns results and timings.

        A list of those runs the network once per test scale on the whole batch and returns one result
        per item, the same as running them one at a time (`meta`: None or one calibration per item).
        """
        if isinstance(image_or_path_or_tensor, (list, tuple)):
            return self._run_batch(list(image_or_path_or_tensor), meta)
        times = dict.fromkeys(TIME_STATS, 0.0)
        start_time = time.time()
        prefetched = None
        self._frame_id += 1
        prefix = f"{self._frame_id:06d}_"
        if isinstance(image_or_path_or_tensor, np.ndarray):
            image = image_or_path_or_tensor
        elif isinstance(image_or_path_or_tensor, (str, os.PathLike)):
            path = os.fspath(image_or_path_or_tensor)
            image = read_image(path)
            prefix = os.path.splitext(os.path.basename(path))[0] + "_"
        else:
            prefetched = image_or_path_or_tensor
            image = prefetched["image"][0].numpy()
            prefix = prefetched.get("prefix", prefix)
        debugger = self._make_debugger(prefix) if self.opt.debug > 0 else None

        # Each stage's clock stops only after _sync, so queued GPU work is charged to the stage that queued it.
        stage_end = time.time()
        times["load"] = stage_end - start_time
        detections = []
        for scale in self.scales:
            scale_start = time.time()
            if prefetched is None:
                images, meta = self.pre_process(image, scale, meta)
            else:
                images = prefetched["images"][scale][0]
                meta = {k: v.numpy()[0] for k, v in prefetched["meta"][scale].items()}
            images = images.to(self.opt.device)
            self._sync()
            net_start = time.time()
            times["pre"] += net_start - scale_start

            with self._memory_guard(image.shape, images.shape[0], images.shape[2], images.shape[3], on_device=True):
                output, dets, net_end = self.process(images, return_time=True)
            self._sync()
            decoded = time.time()
            times["net"] += net_end - net_start
            times["dec"] += decoded - net_end
            if self.opt.debug >= 2:
                self.debug(debugger, images, dets, output, scale)
            detections.append(self.post_process(dets, meta, scale))
            self._sync()
            stage_end = time.time()
            times["post"] += stage_end - decoded

        results = self.merge_outputs(detections)
        self._sync()
        end_time = time.time()
        times["merge"] = end_time - stage_end
        times["tot"] = end_time - start_time

        if self.opt.debug >= 1:
            self.show_results(debugger, image, results)
            self.last_vis = dict(debugger.imgs)
        return {"results": results, **times}

    def _run_batch(self, items: list, metas=None) -> list[dict]:
        """run() for several inputs: one network forward per scale (and input size), then each item's decoding."""
        metas = [None] * len(items) if metas is None else list(metas)
        if len(metas) != len(items):
            raise ValueError(f"run: {len(items)} images but {len(metas)} calibrations")
        start = time.time()
        packed = [self._pack(item, meta) for item, meta in zip(items, metas)]
        replies: list[list] = [[] for _ in items]  # per item, the network output of each scale in order
        for scale in self.scales:
            groups: dict[tuple, list[int]] = {}
            for i, p in enumerate(packed):
                groups.setdefault(tuple(p["images"][scale].shape[1:]), []).append(i)
            for members in groups.values():
                batch = torch.cat([packed[i]["images"][scale][0] for i in members]).to(self.opt.device)
                with torch.no_grad(), self._memory_guard(packed[members[0]]["image"].shape[1:], batch.shape[0],
                                                         batch.shape[2], batch.shape[3], on_device=True):
                    output = self._network_output(batch)
                first = 0
                for i in members:
                    n = packed[i]["images"][scale].shape[1]
                    replies[i].append({k: v[first:first + n] for k, v in output.items()})
                    first += n
        self._sync()
        shared = (time.time() - start) / len(items)  # reading, pre-processing and the batched forward
        rets = []
        real_model = self.model
        try:
            for p, reply in zip(packed, replies):
                self.model = _Replay(reply)
                ret = self.run(p)
                ret["net"] += shared
                ret["tot"] += shared
                rets.append(ret)
        finally:
            self.model = real_model
        return rets

    def _pack(self, item, meta) -> dict:
        """One input of a batch as a pre-processed prefetch dict (the layout test.py's loader gives run())."""
        if not isinstance(item, (np.ndarray, str, os.PathLike)):
            return item
        packed = {}
        if isinstance(item, np.ndarray):
            image = item
        else:
            image = read_image(os.fspath(item))
            # an array keeps run()'s frame-number prefix; a file its name, as when run one at a time
            packed["prefix"] = os.path.splitext(os.path.basename(os.fspath(item)))[0] + "_"
        images, metas = {}, {}
        for scale in self.scales:
            scaled, meta = self.pre_process(image, scale, meta)
            images[scale] = scaled[None]
            metas[scale] = {k: torch.from_numpy(np.asarray(v)[None]) for k, v in meta.items()}
        return {**packed, "image": torch.from_numpy(image[None]), "images": images, "meta": metas}


class _Replay:
    """Stands in for the network while one item of a batch is decoded: gives that item's slices, scale by scale."""

    def __init__(self, outputs: list[dict]) -> None:
        self.outputs = list(outputs)

    def __call__(self, images: torch.Tensor) -> list[dict]:
        return [self.outputs.pop(0)]
