"""Run a trained model on an image, a folder of images, a video file or the webcam.

With a display the results are shown in windows (as the original). Without one (no $DISPLAY, or an
OpenCV without GUI support) annotated images, or an annotated video for video input, are written to
--demo_out_dir (default <save_dir>/demo).
"""
from __future__ import annotations

import os
import sys

import cv2

import _init_paths  # noqa: F401
from detectors.base_detector import TIME_STATS, vis_out_dir
from detectors.detector_factory import detector_factory
from opts import inference_batch_size, opts
from utils.debugger import display_available
from utils.errors import UserError, run_cli, warn
from utils.image_io import ImageReadError

image_ext = ["jpg", "jpeg", "png", "webp"]
video_ext = ["mp4", "mov", "avi", "mkv"]
time_stats = TIME_STATS
# The image drawn by each task's show_results that goes into the annotated video.
RESULT_IMG_ID = {"ctdet": "ctdet", "exdet": "exdet", "multi_pose": "multi_pose", "ddd": "add_pred",
                 "centernet2": "centernet2"}


def time_string(ret: dict) -> str:
    """`tot 0.123s |load 0.001s |...` for one frame."""
    extra = [k for k in ret if k not in time_stats and k != "results"]  # per-stage times (centernet2)
    return "".join(f"{stat} {ret[stat]:.3f}s |" for stat in [*time_stats, *extra])


def _extension(path: str) -> str:
    return path[path.rfind(".") + 1:].lower()


def _show_input(img) -> bool:
    """Show the raw frame in window 'input'; False when no window can be opened."""
    if not display_available():
        return False
    try:
        cv2.imshow("input", img)
    except cv2.error:
        return False
    return True


def _result_frame(detector, task: str):
    vis = detector.last_vis
    if not vis:
        return None
    return vis.get(RESULT_IMG_ID.get(task), list(vis.values())[-1])


def demo_video(opt, detector) -> None:
    """Webcam or video file: frame by frame until Esc (window) or the end of the video."""
    source = 0 if opt.demo == "webcam" else opt.demo
    if source != 0 and not os.path.isfile(source):
        raise UserError(f"--demo {opt.demo}: no such video file; check the path")
    cam = cv2.VideoCapture(source)
    if not cam.isOpened():
        what = "no webcam could be opened" if source == 0 else "cannot be opened as a video"
        raise UserError(f"--demo {opt.demo}: {what}; pass an image, a folder, a video file or webcam")
    detector.pause = False
    # Frames go into one video file when headless, not one PNG per frame.
    detector.save_vis_images = False
    out_dir = vis_out_dir(opt)
    stem = "webcam" if source == 0 else os.path.splitext(os.path.basename(opt.demo))[0]
    out_path = os.path.join(out_dir, f"{stem}_{opt.task}.mp4")
    fps = cam.get(cv2.CAP_PROP_FPS) or 25.0
    writer = None
    frames = 0
    try:
        while True:
            ok, img = cam.read()
            if not ok or img is None:
                break
            shown = _show_input(img)
            ret = detector.run(img)
            print(time_string(ret))
            if shown and display_available():
                if cv2.waitKey(1) == 27:
                    break
                continue
            frame = _result_frame(detector, opt.task)
            if frame is None:
                continue
            if writer is None:
                os.makedirs(out_dir, exist_ok=True)
                size = (frame.shape[1], frame.shape[0])
                writer = cv2.VideoWriter(out_path, cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
                if not writer.isOpened():
                    raise UserError(f"--demo_out_dir {out_dir}: cannot write {out_path}; pass a writable folder")
            if (frame.shape[1], frame.shape[0]) != size:
                frame = cv2.resize(frame, size)
            writer.write(frame)
            frames += 1
    finally:
        cam.release()
        if writer is not None:
            writer.release()
    if writer is not None:
        print(f"Annotated video ({frames} frames) written to {out_path}")


def image_list(demo: str) -> list[str]:
    """The image files named by --demo: a folder's images (sorted) or the single path."""
    if os.path.isdir(demo):
        names = [os.path.join(demo, f) for f in sorted(os.listdir(demo)) if _extension(f) in image_ext]
        if not names:
            raise UserError(f'--demo {demo}: no {"/".join(image_ext)} images in this folder')
        return names
    if not os.path.isfile(demo):
        raise UserError(f"--demo {demo}: no such file or folder; pass an image, a folder, a video file or webcam")
    return [demo]


def demo(opt) -> None:
    """Detect on the --demo input and show (or, headless, save) the results."""
    if not opt.demo:
        raise UserError("--demo: no input given; pass an image, a folder of images, a video file or webcam")
    opt.debug = max(opt.debug, 1)
    is_video = opt.demo == "webcam" or _extension(opt.demo) in video_ext
    names = None if is_video else image_list(opt.demo)
    detector = detector_factory[opt.task](opt)
    if is_video:
        demo_video(opt, detector)
        return
    skipped = 0
    batch = inference_batch_size(opt, sys.argv[1:])
    for first in range(0, len(names), batch):
        chunk = names[first:first + batch]
        try:
            rets = detector.run(chunk) if len(chunk) > 1 else [detector.run(chunk[0])]
        except ImageReadError:
            if len(chunk) == 1 and not os.path.isdir(opt.demo):
                raise  # the one image asked for
            rets = None
        if rets is None:  # a file of this chunk could not be read: the others one by one
            rets = []
            for image_name in chunk:
                try:
                    rets.append(detector.run(image_name))
                except ImageReadError as e:
                    # one bad file in a folder should not cost the results of all the others
                    warn(f"{e.path}: {e.reason}; skipped" if e.path else f"{e}; skipped")
                    skipped += 1
        for ret in rets:
            print(time_string(ret))
    if skipped == len(names):
        raise UserError(f"--demo {opt.demo}: none of its {len(names)} images could be read; "
                        "check the files (see the warnings above)")
    if not display_available():
        print(f"No display: annotated images written to {detector.vis_dir}")


if __name__ == "__main__":
    run_cli(lambda: demo(opts().init()))
