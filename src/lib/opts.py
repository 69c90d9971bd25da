"""Command-line options of CenterNet and the settings derived from them (heads, resolution, folders)."""
from __future__ import annotations

import argparse
import os
from types import SimpleNamespace

from models.model import ARCH_CHOICES, VALID_ARCHS
from utils.errors import UserError, warn

TASKS = ("ctdet", "ddd", "multi_pose", "exdet", "centernet2")

COCO_FIGURES = {"mean": [0.408, 0.447, 0.470], "std": [0.289, 0.274, 0.278]}
IMAGENET_FIGURES = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
COCO_FLIP_IDX = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16]]

# What demo.py / opts().init() assume for each task when no dataset class is built (rounded figures,
# as the original: these differ slightly from the dataset classes' own).
DEFAULT_DATASET_INFO = {
    "ctdet": {"default_resolution": [512, 512], "num_classes": 80, **COCO_FIGURES, "dataset": "coco"},
    "exdet": {"default_resolution": [512, 512], "num_classes": 80, **COCO_FIGURES, "dataset": "coco"},
    "multi_pose": {"default_resolution": [512, 512], "num_classes": 1, **COCO_FIGURES, "dataset": "coco_hp",
                   "num_joints": 17, "flip_idx": COCO_FLIP_IDX},
    "ddd": {"default_resolution": [384, 1280], "num_classes": 3, **IMAGENET_FIGURES, "dataset": "kitti"},
    "centernet2": {"default_resolution": [512, 512], "num_classes": 80, **COCO_FIGURES, "dataset": "coco"},
}
# Datasets of the original: init() keeps its behaviour for them (the task's default table above).
ORIGINAL_DATASETS = ("coco", "pascal", "kitti", "coco_hp")


def _flag(group: argparse._ArgumentGroup, name: str, text: str) -> None:
    group.add_argument(name, action="store_true", help=text)


class opts:  # noqa: N801 - the original's public name
    """The argument parser and the derivation of dependent settings."""

    def __init__(self) -> None:
        p = argparse.ArgumentParser(description="CenterNet: objects as points")
        self.parser = p

        g = p.add_argument_group("experiment")
        g.add_argument("task", default="ctdet", help="ctdet | ddd | multi_pose | exdet | centernet2")
        g.add_argument("--dataset", default="coco",
                       help="coco | kitti | coco_hp | pascal, the built-in synth | synth_hp | synth_kitti, "
                            "or custom (a COCO json: see the custom dataset options)")
        g.add_argument("--exp_id", default="default", help="experiment name: outputs go to exp/<task>/<exp_id>")
        _flag(g, "--test", "main.py: only validate and evaluate, no training")
        g.add_argument("--debug", type=int, default=0,
                       help="0: nothing shown; 1: final detections; 2: network outputs as well; "
                            "3: draw with matplotlib; 4: write the debug images to disk")
        g.add_argument("--demo", default="", help="an image, a folder of images, a video file, or 'webcam'")
        g.add_argument("--demo_out_dir", default="",
                       help="where demo.py writes annotated images/videos when there is no display "
                            "(default <save_dir>/demo)")
        g.add_argument("--load_model", default="", help="checkpoint to start from or to test")
        g.add_argument("--data_dir", default="", help="dataset root (default <repo>/data)")
        g.add_argument("--exp_root", default="", help="experiment root (default <repo>/exp)")
        _flag(g, "--resume", "continue training: restores optimizer and epoch; without --load_model "
                             "reads <save_dir>/model_last.pth")
        _flag(g, "--trust_checkpoint", "load --load_model with full unpickling (runs any code the file holds); "
                                       "only for files you trust that the safe loader refuses")
        _flag(g, "--load_partial", "accept a checkpoint that fills less than half of the model's tensors "
                                   "(e.g. a backbone for another task)")

        g = p.add_argument_group("system")
        g.add_argument("--gpus", default="0", help="comma-separated GPU ids; -1 runs on the CPU")
        g.add_argument("--num_workers", type=int, default=4, help="data loader worker processes")
        _flag(g, "--not_cuda_benchmark", "do not let cuDNN pick algorithms by benchmarking")
        g.add_argument("--seed", type=int, default=317, help="torch random seed")
        g.add_argument("--dist_timeout", type=float, default=30,
                       help="under torchrun: minutes a collective waits for the other processes")
        g.add_argument("--amp", default="", choices=["", "fp16", "bf16", "auto"],
                       help="mixed precision for training and inference: fp16 (CUDA) or bf16 (CUDA, CPU); auto: "
                            "bf16 where the device runs it natively, else fp16 on GPUs, float32 on CPUs; "
                            "default off (float32)")
        _flag(g, "--sync_bn", "training on several GPUs: synchronise batch-norm statistics across them")
        _flag(g, "--channels_last", "test.py, demo.py: run the network on NHWC tensors (faster oneDNN convolutions "
                                    "on CPUs; outputs equal up to float rounding)")
        g.add_argument("--backend", default="onnxruntime", choices=["onnxruntime", "openvino"],
                       help="runtime for an exported --load_model model.onnx (test.py, demo.py)")

        g = p.add_argument_group("custom dataset (--dataset custom)")
        g.add_argument("--custom_dataset_img_path", default="", help="folder of the training images")
        g.add_argument("--custom_dataset_ann_path", default="", help="COCO-format json of the training split")
        g.add_argument("--custom_dataset_val_ann_path", default="", help="COCO-format json of the val split")
        g.add_argument("--custom_dataset_val_img_path", default="",
                       help="folder of the val images (default: the training image folder)")
        g.add_argument("--num_classes", type=int, default=-1, help="number of classes (default: from the json)")
        g.add_argument("--flip_idx", default="",
                       help="multi_pose: keypoint pairs swapped by a flip, e.g. 1-2,3-4 (default: from "
                            "left_/right_ names)")
        g.add_argument("--kpt_sigmas", default="",
                       help="multi_pose: comma-separated COCO OKS sigmas per keypoint (default: uniform)")

        g = p.add_argument_group("log")
        g.add_argument("--print_iter", type=int, default=0,
                       help="if > 0, print one line every N iterations instead of a progress bar")
        _flag(g, "--hide_data_time", "leave data-loading and network times out of the progress line")
        _flag(g, "--save_all", "on validation epochs keep model_<epoch>.pth instead of overwriting model_last.pth")
        g.add_argument("--metric", default="loss", help="validation loss that selects model_best.pth")
        g.add_argument("--vis_thresh", type=float, default=0.3, help="score threshold for drawing detections")
        g.add_argument("--debugger_theme", default="white", choices=["white", "black"])

        g = p.add_argument_group("model")
        g.add_argument("--arch", default="dla_34", help=ARCH_CHOICES)
        g.add_argument("--head_conv", type=int, default=-1,
                       help="channels of the 3x3 conv in each head; 0 for none; -1: 256 for dla, 64 otherwise")
        g.add_argument("--down_ratio", type=int, default=4, help="output stride of the network")

        g = p.add_argument_group("input")
        g.add_argument("--input_res", type=int, default=-1, help="square input size; -1 takes the dataset's")
        g.add_argument("--input_h", type=int, default=-1, help="input height; overrides --input_res")
        g.add_argument("--input_w", type=int, default=-1, help="input width; overrides --input_res")

        g = p.add_argument_group("train")
        g.add_argument("--lr", type=float, default=1.25e-4, help="Adam learning rate (for batch size 32)")
        g.add_argument("--lr_step", type=str, default="90,120", help="epochs after which the lr drops 10x")
        g.add_argument("--num_epochs", type=int, default=140, help="number of training epochs")
        g.add_argument("--batch_size", type=int, default=32, help="total batch size")
        g.add_argument("--master_batch_size", type=int, default=-1, help="batch on the first GPU; -1 splits evenly")
        g.add_argument("--num_iters", type=int, default=-1, help="iterations per epoch; -1 for the whole loader")
        g.add_argument("--val_intervals", type=int, default=5, help="validate every N epochs (<= 0: never)")
        _flag(g, "--trainval", "train on train+val and test on the test split")

        g = p.add_argument_group("test")
        _flag(g, "--flip_test", "average the outputs of the image and its mirror")
        g.add_argument("--test_scales", type=str, default="1", help="comma-separated test scales")
        _flag(g, "--nms", "apply soft-NMS even with one scale")
        g.add_argument("--K", type=int, default=100, help="peaks kept per image")
        _flag(g, "--not_prefetch_test", "test.py: read and pre-process images in the main process")
        _flag(g, "--fix_res", "resize to the fixed input size (the default; see --keep_res)")
        _flag(g, "--keep_res", "keep the image resolution, padded up to a multiple of 32 (128 for hourglass)")

        g = p.add_argument_group("augmentation")
        _flag(g, "--not_rand_crop", "shift/scale augmentation instead of the random crop")
        g.add_argument("--shift", type=float, default=0.1, help="shift range when not random cropping")
        g.add_argument("--scale", type=float, default=0.4, help="scale range when not random cropping")
        g.add_argument("--rotate", type=float, default=0, help="rotation range in degrees (multi_pose)")
        g.add_argument("--flip", type=float, default=0.5, help="probability of a horizontal flip")
        _flag(g, "--no_color_aug", "no colour augmentation")
        g.add_argument("--aug_rot", type=float, default=0, help="probability of rotating (multi_pose)")
        g.add_argument("--aug_ddd", type=float, default=0.5, help="probability of shift/scale augmentation (ddd)")
        _flag(g, "--rect_mask", "ddd: ignored objects blank a rectangle of the heat map")
        g.add_argument("--kitti_split", default="3dop", help="3dop | subcnn")

        g = p.add_argument_group("loss")
        _flag(g, "--mse_loss", "mean squared error instead of the focal loss for heat maps")
        g.add_argument("--reg_loss", default="l1", help="size/offset regression loss: l1 | sl1")
        g.add_argument("--hm_weight", type=float, default=1, help="weight of the centre heat-map loss")
        g.add_argument("--off_weight", type=float, default=1, help="weight of the sub-pixel offset loss")
        g.add_argument("--wh_weight", type=float, default=0.1, help="weight of the box size loss")
        g.add_argument("--hp_weight", type=float, default=1, help="weight of the joint offset loss")
        g.add_argument("--hm_hp_weight", type=float, default=1, help="weight of the joint heat-map loss")
        g.add_argument("--dep_weight", type=float, default=1, help="weight of the depth loss")
        g.add_argument("--dim_weight", type=float, default=1, help="weight of the 3D size loss")
        g.add_argument("--rot_weight", type=float, default=1, help="weight of the orientation loss")
        g.add_argument("--peak_thresh", type=float, default=0.2, help="ddd: score threshold of the detector")
        g.add_argument("--focal_loss", default="original", choices=["original", "logsigmoid"],
                       help="heat-map focal loss: the original's clamped sigmoid, or computed from logits "
                            "with logsigmoid (stable in any precision)")
        g.add_argument("--gaussian", default="original", choices=["original", "ttfnet"],
                       help="object-centre heat-map targets: the original's radius formula, or TTFNet's "
                            "elliptical Gaussians (sigma from box width and height, alpha 0.54); joint and "
                            "extreme-point maps keep the radius")

        g = p.add_argument_group("task")
        _flag(g, "--norm_wh", "ctdet: size loss on pred / gt")
        _flag(g, "--dense_wh", "ctdet: regress sizes around the centre, weighted by the heat map")
        _flag(g, "--cat_spec_wh", "ctdet: one size per category")
        _flag(g, "--not_reg_offset", "no sub-pixel offset head")
        _flag(g, "--agnostic_ex", "exdet: class-agnostic extreme-point heat maps")
        g.add_argument("--scores_thresh", type=float, default=0.1, help="exdet: extreme-point threshold")
        g.add_argument("--center_thresh", type=float, default=0.1, help="exdet: centre threshold")
        g.add_argument("--aggr_weight", type=float, default=0.0, help="exdet: edge aggregation weight")
        _flag(g, "--dense_hp", "multi_pose: regress joint offsets around the centre")
        _flag(g, "--not_hm_hp", "multi_pose: no joint heat maps")
        _flag(g, "--not_reg_hp_offset", "multi_pose: no joint sub-pixel offsets")
        _flag(g, "--not_reg_bbox", "ddd: no 2D box size head")

        g = p.add_argument_group("optimizer (every task; the defaults are the original's Adam recipe)")
        g.add_argument("--optim", default="adam", choices=["adam", "sgd"],
                       help="adam (the original's) or sgd (momentum 0.9, CenterNet2's recipe, e.g. --lr 0.02)")
        g.add_argument("--weight_decay", type=float, default=-1,
                       help="weight decay of conv/linear weights; -1: 1e-4 with --optim sgd, 0 with adam")
        g.add_argument("--warmup_iters", type=int, default=-1,
                       help="linear lr warm-up (from 0.00025 x lr) over the first N iterations of a fresh run; "
                            "-1: 4000 with --optim sgd, 0 with adam")
        g.add_argument("--clip_grad", type=float, default=-1,
                       help="clip each gradient value to +-N before a step; -1: 1 with --optim sgd, off with adam")

        g = p.add_argument_group("centernet2 (CenterNet proposals on FPN levels + cascade RoI heads)")
        g.add_argument("--fpn_levels", default="3,4,5,6,7",
                       help="consecutive FPN levels (3..7) the proposals and RoI pooling use; *_bifpn archs have "
                            "3..5 only, where the default means 3,4,5")
        g.add_argument("--num_proposals_train", type=int, default=2000, help="proposals per image in training")
        g.add_argument("--num_proposals_test", type=int, default=256, help="proposals per image at test time")
        g.add_argument("--cascade_ious", default="0.6,0.7,0.8",
                       help="IoU threshold of each cascade stage (their number is the number of stages)")
        _flag(g, "--lsj", "training: large-scale jitter (image scaled by 0.1-2.0, then a random crop or padding "
                          "to the input size) instead of the random crop")
        g.add_argument("--roi_batch_size", type=int, default=512,
                       help="RoIs sampled per training image for the box heads (at most 25%% foreground)")
        _flag(g, "--more_pos", "training: CenterNet2's MORE_POS; the 3 x 3 cells around each centre (every level) "
                               "whose predicted box already has a low GIoU loss become extra heat-map positives")
        g.add_argument("--more_pos_thresh", type=float, default=0.2,
                       help="with --more_pos: the GIoU loss an extra positive must stay below")
        g.add_argument("--more_pos_topk", type=int, default=9,
                       help="with --more_pos: an extra positive must rank below the object's N-th smallest loss")
        _flag(g, "--sigmoid_ce", "RoI heads: one sigmoid cross-entropy per class instead of the softmax "
                                 "(CenterNet2's USE_SIGMOID_CE); pass it to test.py/demo.py too")
        _flag(g, "--fed_loss", "training: CenterNet2's federated loss for long-tailed data (LVIS): each step's "
                               "classification covers the classes present plus ones drawn by training-image "
                               "frequency, up to --fed_loss_num_cat")
        g.add_argument("--fed_loss_num_cat", type=int, default=50,
                       help="with --fed_loss: the classes in each step's classification loss")
        g.add_argument("--fed_loss_freq_weight", type=float, default=0.5,
                       help="with --fed_loss: classes are drawn with probability image_count ** N")

        g = p.add_argument_group("ground-truth substitution (main.py --test)")
        for name in ("hm", "wh", "offset", "kps", "hmhp", "hp_offset", "dep"):
            _flag(g, f"--eval_oracle_{name}", f"replace the network's {name} output by the ground truth")

    def parse(self, args: list[str] | str = "") -> argparse.Namespace:
        """Parse `args` (sys.argv when '') and derive the settings that depend only on the options."""
        opt = self.parser.parse_args() if args == "" else self.parser.parse_args(args)
        if opt.task not in TASKS:
            raise UserError(f"task '{opt.task}' is unknown; choose one of {', '.join(TASKS)}")
        if opt.arch not in VALID_ARCHS:
            raise UserError(f"--arch {opt.arch} is unknown; choose {ARCH_CHOICES}")

        opt.gpus_str = opt.gpus
        try:
            ids = [int(g) for g in opt.gpus.split(",")]
        except ValueError:
            raise UserError(f"--gpus {opt.gpus}: expected comma-separated integers such as 0,1 (-1 for CPU)") from None
        # CUDA_VISIBLE_DEVICES is set to gpus_str later, so the visible devices are renumbered from 0
        opt.gpus = list(range(len(ids))) if ids[0] >= 0 else [-1]
        opt.lr_step = _int_list(opt.lr_step, "--lr_step")
        opt.test_scales = _float_list(opt.test_scales, "--test_scales")
        parse_centernet2(opt)

        opt.fix_res = not opt.keep_res
        print("Fix size testing." if opt.fix_res else "Keep resolution testing.")
        # each --not_<feature> switch turns off a feature that is on by default
        for feature in ("reg_offset", "reg_bbox", "hm_hp"):
            setattr(opt, feature, not getattr(opt, f"not_{feature}"))
        opt.reg_hp_offset = opt.hm_hp and not opt.not_reg_hp_offset

        if opt.head_conv == -1 and opt.task == "centernet2":  # the width of the RoI box heads' FC layers
            opt.head_conv = 1024
        if opt.head_conv == -1:  # the architecture's own head width
            opt.head_conv = 256 if "dla" in opt.arch else 64
        # hourglass inputs are padded to a multiple of 128 (others of 32), and it has two output stacks
        opt.pad = 127 if "hourglass" in opt.arch else 31
        opt.num_stacks = 2 if opt.arch == "hourglass" else 1

        if opt.trainval:  # the val split is trained on: never validate
            opt.val_intervals = 10 ** 8
        if opt.debug > 0:
            # one sample at a time, loaded in this process on one device, so each drawing matches its batch
            opt.num_workers, opt.batch_size, opt.master_batch_size = 0, 1, -1
            opt.gpus = opt.gpus[:1]
        # after --debug's overrides, so `--debug 1 --batch_size 0` stays as valid as in the original
        check_parsed(opt)

        if opt.master_batch_size == -1:
            opt.master_batch_size = opt.batch_size // len(opt.gpus)
        opt.chunk_sizes = chunk_sizes(opt.batch_size, opt.master_batch_size, len(opt.gpus))
        print("training chunk_sizes:", opt.chunk_sizes)

        opt.root_dir = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
        opt.data_dir = os.path.abspath(opt.data_dir) if opt.data_dir else os.path.join(opt.root_dir, "data")
        opt.exp_root = os.path.abspath(opt.exp_root) if opt.exp_root else os.path.join(opt.root_dir, "exp")
        opt.exp_dir = os.path.join(opt.exp_root, opt.task)
        opt.save_dir = os.path.join(opt.exp_dir, opt.exp_id)
        opt.debug_dir = os.path.join(opt.save_dir, "debug")
        print("The output will be saved to ", opt.save_dir)

        # which option named the checkpoint, for error lines (--resume alone reads model_last.pth)
        opt.load_model_option = "--load_model"
        if opt.resume and opt.load_model == "":
            # a test run named '<exp>TEST' resumes from the '<exp>' training run
            model_dir = opt.save_dir[:-4] if opt.save_dir.endswith("TEST") else opt.save_dir
            opt.load_model = os.path.join(model_dir, "model_last.pth")
            opt.load_model_option = "--resume"
        return opt

    def update_dataset_info_and_set_heads(self, opt: argparse.Namespace, dataset,
                                          samples: bool = False) -> argparse.Namespace:
        """Take mean/std/classes/resolution from `dataset` (a class or a struct) and set the task's heads."""
        resolve = getattr(dataset, "resolve_info", None)
        if resolve is not None:  # a dataset whose figures come from its files (--dataset custom)
            dataset = resolve(opt)
        default_h, default_w = dataset.default_resolution
        given = {"--input_h": opt.input_h, "--input_w": opt.input_w, "--input_res": opt.input_res}
        opt.mean, opt.std = dataset.mean, dataset.std
        opt.num_classes = dataset.num_classes

        # --input_h/--input_w beat --input_res, which beats the dataset's resolution
        res_h = opt.input_res if opt.input_res > 0 else default_h
        res_w = opt.input_res if opt.input_res > 0 else default_w
        opt.input_h = opt.input_h if opt.input_h > 0 else res_h
        opt.input_w = opt.input_w if opt.input_w > 0 else res_w
        opt.output_h = opt.input_h // opt.down_ratio
        opt.output_w = opt.input_w // opt.down_ratio
        opt.input_res = max(opt.input_h, opt.input_w)
        opt.output_res = max(opt.output_h, opt.output_w)

        opt.heads = task_heads(opt, dataset)
        print("heads", opt.heads)
        check_sized(opt, given, samples)
        return opt

    def init(self, args: list[str] | str = "") -> argparse.Namespace:
        """Parse and fill the dataset-dependent settings without building a dataset (demo.py, the API)."""
        opt = self.parse(args)
        if opt.dataset in ORIGINAL_DATASETS:
            # as the original: the task decides the dataset figures, whatever --dataset says
            info = SimpleNamespace(**DEFAULT_DATASET_INFO[opt.task])
            opt.dataset = info.dataset
        else:
            info = _dataset_class(opt.dataset)
        return self.update_dataset_info_and_set_heads(opt, info)


def chunk_sizes(batch_size: int, master_batch_size: int, num_gpus: int) -> list[int]:
    """Per-GPU batch sizes: the master's, then the rest spread evenly (earlier GPUs take the remainder)."""
    rest = batch_size - master_batch_size
    sizes = [master_batch_size]
    for i in range(num_gpus - 1):
        sizes.append(rest // (num_gpus - 1) + (1 if i < rest % (num_gpus - 1) else 0))
    return sizes


def inference_batch_size(opt: argparse.Namespace, argv: list[str]) -> int:
    """Images per network forward in test.py/demo.py: --batch_size only when given on the command line (its
    default, 32, is the training batch), so a plain run goes one image at a time as the original does."""
    given = any(a == "--batch_size" or a.startswith("--batch_size=") for a in argv)
    return max(1, opt.batch_size) if given else 1


def task_heads(opt: argparse.Namespace, dataset) -> dict[str, int]:
    """Output heads (name -> channels) of the task; insertion order is the network's output order."""
    if opt.task == "exdet":
        num_hm = 1 if opt.agnostic_ex else opt.num_classes
        heads = {"hm_t": num_hm, "hm_l": num_hm, "hm_b": num_hm, "hm_r": num_hm, "hm_c": opt.num_classes}
        if opt.reg_offset:
            heads.update({"reg_t": 2, "reg_l": 2, "reg_b": 2, "reg_r": 2})
    elif opt.task == "ddd":
        heads = {"hm": opt.num_classes, "dep": 1, "rot": 8, "dim": 3}
        if opt.reg_bbox:
            heads["wh"] = 2
        if opt.reg_offset:
            heads["reg"] = 2
    elif opt.task == "ctdet":
        heads = {"hm": opt.num_classes, "wh": 2 * opt.num_classes if opt.cat_spec_wh else 2}
        if opt.reg_offset:
            heads["reg"] = 2
    elif opt.task == "centernet2":
        # agnostic heat map, box distances, class logits (+ background), cascade stages
        heads = {"agn_hm": 1, "reg": 4, "cls": opt.num_classes + 1, "stages": len(opt.cascade_ious)}
    elif opt.task == "multi_pose":
        opt.flip_idx = dataset.flip_idx
        num_joints = getattr(dataset, "num_joints", 17)
        heads = {"hm": opt.num_classes, "wh": 2, "hps": 2 * num_joints}
        if opt.reg_offset:
            heads["reg"] = 2
        if opt.hm_hp:
            heads["hm_hp"] = num_joints
        if opt.reg_hp_offset:
            heads["hp_offset"] = 2
    else:
        raise UserError(f"task '{opt.task}' is unknown; choose one of {', '.join(TASKS)}")
    return heads



# Validation: a value that cannot work stops the run here, with its fix, before data or models are built.

def network_stride(arch: str) -> int:
    """Total stride of the network: fixed input sizes must be multiples of it."""
    # Measured by building the models: res/resdcn/dla/dlav0 give maps of exactly input / 4 only for
    # multiples of 32 (48, 80, 100, 112 do not line up); hourglass needs 128 (64, 96, 192 fail).
    return 128 if arch == "hourglass" else 32


def check_parsed(opt: argparse.Namespace) -> None:
    """Reject option values that cannot work, as soon as the command line is parsed."""
    _at_least(opt.batch_size, 1, "--batch_size", "the images per training step, e.g. --batch_size 32")
    _at_least(opt.num_workers, 0, "--num_workers", "0 to load the data in the main process")
    _at_least(opt.num_epochs, 1, "--num_epochs", "the number of training epochs, e.g. --num_epochs 140")
    _at_least(opt.K, 1, "--K", "the peaks kept per image, e.g. --K 100")
    if opt.num_iters == 0 or opt.num_iters < -1:
        raise UserError(f"--num_iters {opt.num_iters}: pass the iterations per epoch (at least 1), "
                        "or -1 for the whole training set")
    if opt.down_ratio != 4:
        # every network ends with up-sampling to a quarter of the input; another ratio mismatches the targets
        raise UserError(f"--down_ratio {opt.down_ratio}: the networks output a quarter of the input size; "
                        "drop --down_ratio (or pass 4)")
    if opt.head_conv < -1:
        raise UserError(f"--head_conv {opt.head_conv}: pass the channels of the head convolution, 0 for none, "
                        "or -1 for the architecture's default")
    for name in ("flip", "aug_rot", "aug_ddd"):
        value = getattr(opt, name)
        if not 0 <= value <= 1:
            raise UserError(f"--{name} {value:g}: a probability; pass a value from 0 to 1")
    if opt.reg_loss not in ("l1", "sl1"):
        raise UserError(f"--reg_loss {opt.reg_loss}: unknown loss; use l1 or sl1")
    if any(s <= 0 for s in opt.test_scales):
        raise UserError(f"--test_scales {_csv(opt.test_scales)}: every scale must be above 0; "
                        "pass positive scales, e.g. --test_scales 0.5,1,1.5")
    steps = opt.lr_step
    if any(later <= earlier for earlier, later in zip(steps, steps[1:])):
        # each step divides the lr by 10 once more, so a step out of order would raise it again
        raise UserError(f"--lr_step {_csv(steps)}: the epochs must be strictly increasing; "
                        f"pass e.g. --lr_step {_csv(sorted(set(steps)))}")
    master, batch = opt.master_batch_size, opt.batch_size
    if master != -1 and not 1 <= master <= batch:
        raise UserError(f"--master_batch_size {master}: the first GPU's share must be between 1 and "
                        f"--batch_size {batch}; pass at most {batch}, or -1 to split the batch evenly")
    if opt.demo_out_dir and os.path.isfile(opt.demo_out_dir):
        raise UserError(f"--demo_out_dir {opt.demo_out_dir}: an existing file, not a folder; "
                        "pass a folder path (it is created when missing)")


def check_sized(opt: argparse.Namespace, given: dict[str, int], samples: bool) -> None:
    """Checks that need the input size, known once the dataset is set.

    samples: the run builds training samples (main.py, training or --test), not only detector inputs.
    """
    trains = samples
    late = [step for step in opt.lr_step if step > opt.num_epochs]
    if trains and not opt.test and late:
        warn(f"--lr_step {_csv(opt.lr_step)}: epoch {_csv(late)} comes after the last epoch "
             f"(--num_epochs {opt.num_epochs}), so the lr never drops there; lower --lr_step or raise --num_epochs")
    if not _uses_fixed_input(opt, trains):
        return
    stride = network_stride(opt.arch)
    for side in ("input_h", "input_w"):
        size = getattr(opt, side)
        if size % stride == 0:
            continue
        if given[f"--{side}"] > 0:
            source = f"--{side} {size}"
        elif given["--input_res"] > 0:
            source = f"--input_res {size}"
        else:
            source = f"the input size {opt.input_h}x{opt.input_w} of --dataset {opt.dataset}"
        below = size // stride * stride
        choices = " or ".join(str(v) for v in (below, below + stride) if v > 0)
        option = f"--{side}" if given[f"--{side}"] > 0 else "--input_res"
        raise UserError(f"{source}: not a multiple of {stride}, the total stride of --arch {opt.arch} "
                        f"(its feature maps would not line up); pass {option} {choices}")


def _uses_fixed_input(opt: argparse.Namespace, trains: bool) -> bool:
    """Whether the network sees input_h x input_w images (--keep_res pads each image instead)."""
    if not opt.keep_res:
        return True
    # with --keep_res, ddd still warps to the fixed size, and multi_pose / exdet training samples
    # are input_res squares; only the detectors and ctdet samples pad to a multiple of pad + 1
    return opt.task == "ddd" or (trains and opt.task in ("multi_pose", "exdet"))


def _at_least(value: int, low: int, option: str, hint: str) -> None:
    if value < low:
        raise UserError(f"{option} {value}: must be at least {low}; pass {hint}")


def _csv(values: list) -> str:
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)

def _dataset_class(name: str):
    from datasets.dataset_factory import dataset_factory

    if name not in dataset_factory:
        raise UserError(f"--dataset {name} is unknown; choose one of {', '.join(sorted(dataset_factory))}")
    return dataset_factory[name]


def _int_list(text: str, option: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise UserError(f"{option} {text}: expected comma-separated integers such as 90,120") from None


def _float_list(text: str, option: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise UserError(f"{option} {text}: expected comma-separated numbers such as 0.5,1,1.5") from None


def parse_centernet2(opt: argparse.Namespace) -> None:
    """Lists and recipe defaults of the optimizer / centernet2 options; an arch that does not fit the task stops."""
    sgd = opt.optim == "sgd"
    for name, sgd_value, adam_value in (("weight_decay", 1e-4, 0.0), ("warmup_iters", 4000, 0),
                                        ("clip_grad", 1.0, 0.0)):
        if getattr(opt, name) == -1:
            setattr(opt, name, sgd_value if sgd else adam_value)
    opt.fpn_levels = _int_list(opt.fpn_levels, "--fpn_levels")
    levels = opt.fpn_levels
    if not levels or levels[0] < 3 or levels[-1] > 7 or levels != list(range(levels[0], levels[-1] + 1)):
        raise UserError(f"--fpn_levels {_csv(levels)}: pass consecutive levels from 3 to 7, "
                        "e.g. --fpn_levels 3,4,5,6,7")
    opt.cascade_ious = _float_list(opt.cascade_ious, "--cascade_ious")
    if not opt.cascade_ious or any(not 0 < v < 1 for v in opt.cascade_ious):
        raise UserError(f"--cascade_ious {_csv(opt.cascade_ious)}: IoU thresholds between 0 and 1, one per stage, "
                        "e.g. --cascade_ious 0.6,0.7,0.8")
    _at_least(opt.num_proposals_train, 1, "--num_proposals_train", "the proposals per training image, e.g. 2000")
    _at_least(opt.num_proposals_test, 1, "--num_proposals_test", "the proposals per test image, e.g. 256")
    _at_least(opt.roi_batch_size, 4, "--roi_batch_size", "the RoIs sampled per training image, e.g. 512")
    if not opt.more_pos_thresh > 0:
        raise UserError(f"--more_pos_thresh {opt.more_pos_thresh:g}: must be above 0; pass a GIoU loss such as 0.2")
    _at_least(opt.more_pos_topk, 1, "--more_pos_topk", "the candidates ranked per object, e.g. 9")
    _at_least(opt.fed_loss_num_cat, 1, "--fed_loss_num_cat", "the classes per step's loss, e.g. 50")
    if opt.fed_loss_freq_weight < 0:
        raise UserError(f"--fed_loss_freq_weight {opt.fed_loss_freq_weight:g}: must be 0 or above; pass e.g. 0.5")
    if opt.task != "centernet2" and (opt.fed_loss or opt.sigmoid_ce):
        flag = "--fed_loss" if opt.fed_loss else "--sigmoid_ce"
        raise UserError(f"{flag}: an option of the centernet2 RoI heads; drop it for {opt.task}")
    fpn_arch = opt.arch.endswith(("_fpn", "_bifpn"))
    if opt.task == "centernet2" and not fpn_arch:
        raise UserError(f"--arch {opt.arch}: centernet2 runs on an FPN backbone; pass --arch res_18_fpn, res_50_fpn, "
                        "res_101_fpn, dla_34_fpn or dla_34_bifpn")
    if opt.task != "centernet2" and fpn_arch:
        raise UserError(f"--arch {opt.arch}: the FPN networks carry the two-stage detector; use task centernet2, "
                        f"or an arch such as res_18 for {opt.task}")
    if opt.arch.endswith("_bifpn"):  # the BiFPN computes P3-P5 only (CenterNet2's real-time DLA-BiFPN-P3)
        if levels == [3, 4, 5, 6, 7]:  # the default: all of the backbone's levels
            opt.fpn_levels = [3, 4, 5]
        elif levels[-1] > 5:
            raise UserError(f"--fpn_levels {_csv(levels)}: {opt.arch} has levels 3 to 5 only; "
                            "pass e.g. --fpn_levels 3,4,5")
