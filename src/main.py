"""Train (or, with --test, evaluate through the training loop) a CenterNet model."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
import torch.utils.data

import _init_paths  # noqa: F401
from datasets.dataset_factory import get_dataset
from logger import Logger, NullLogger
from models.model import checkpoint_options, create_model, load_weights, resume_training, save_model
from opts import opts
from trains.optim import build_optimizer
from trains.train_factory import train_factory
from utils import distributed
from utils.amp import check_amp, grad_scaler, resolve_amp
from utils.errors import UserError, run_cli, warn
from utils.experiment import hold_experiment, terminate_on_sigterm
from utils.lr_schedule import lr_at_epoch
from utils.utils import select_device


def main(opt) -> None:
    """Build data, model and trainer from `opt` and run the epochs (saving checkpoints and logs).

    Under torchrun every process runs this with DistributedDataParallel; rank 0 alone writes files.
    """
    # every rank checks, so a bad combination stops them all with the same line
    distributed.check_launch(opt.batch_size, opt.gpus, opt.gpus_str, training=not opt.test)
    uneven = opt.master_batch_size != opt.batch_size // len(opt.gpus)
    if distributed.launched() and distributed.launch_rank() == 0 and uneven and not opt.test:
        warn(f"--master_batch_size {opt.master_batch_size}: ignored under torchrun; every process takes "
             f"--batch_size / world size = {opt.batch_size // distributed.launch_world_size()} images")
    torch.manual_seed(opt.seed)
    torch.backends.cudnn.benchmark = not opt.not_cuda_benchmark and not opt.test
    Dataset = get_dataset(opt.dataset, opt.task)
    opt = opts().update_dataset_info_and_set_heads(opt, Dataset, samples=True)
    print(opt)
    if opt.test and opt.task == "exdet":
        raise UserError("--test: exdet has no evaluation in the training loop; drop --test")
    # Fail on a missing GPU before anything is written to the experiment folder.
    opt.device = select_device(opt)
    opt.amp = resolve_amp(opt.amp, opt.device)
    check_amp(opt.amp, opt.device)
    _check_sync_bn(opt.sync_bn, opt.device, distributed.launched())
    # Bad annotations stop the run here, before the experiment folder is touched.
    val_dataset = Dataset(opt, "val")
    train_dataset = None if opt.test else Dataset(opt, "train")
    with distributed.process_group(opt.device, opt.dist_timeout) as opt.device, _experiment(opt) as logger:
        _train(opt, val_dataset, train_dataset, logger)


def _check_sync_bn(sync_bn: bool, device: torch.device, launched: bool) -> None:
    """Stop when --sync_bn cannot work; it synchronises the batch statistics of DDP processes on GPUs."""
    if not sync_bn:
        return
    if device.type != "cuda":
        raise UserError("--sync_bn: synchronised batch norm needs GPUs (NCCL); drop --sync_bn with --gpus -1")
    if not launched:
        raise UserError("--sync_bn: needs one process per GPU; launch with torchrun, e.g. "
                        "torchrun --nproc_per_node 2 main.py ... --gpus 0,1 --sync_bn")


@contextlib.contextmanager
def _experiment(opt) -> Iterator[Logger | NullLogger]:
    """Hold the experiment folder and its log for the block; under torchrun rank 0 does, the others wait."""
    # The lock comes before opt.txt, the first file written to save_dir: two runs never mix their files.
    if not distributed.is_enabled():
        with hold_experiment(opt.save_dir), Logger(opt) as logger:
            yield logger
        return
    with contextlib.ExitStack() as stack:
        if distributed.is_main():
            try:
                stack.enter_context(hold_experiment(opt.save_dir))
                logger = stack.enter_context(Logger(opt))
            except BaseException as e:
                # the other ranks wait for this answer: tell them why to stop rather than leave them hanging
                distributed.broadcast_object(str(e) if isinstance(e, UserError) else f"rank 0 stopped ({e!r})")
                raise
            distributed.broadcast_object(None)
        else:
            stack.enter_context(terminate_on_sigterm())
            failure = distributed.broadcast_object(None)
            if failure is not None:
                raise UserError(failure)
            logger = stack.enter_context(NullLogger())
        yield logger


def _log_stats(logger: Logger, split: str, stats: dict, epoch: int) -> None:
    """Append `name value | ` per statistic to log.txt's line and send each to TensorBoard as <split>_<name>."""
    for name, value in stats.items():
        logger.scalar_summary(f"{split}_{name}", value, epoch)
        logger.write(f"{name} {value:8f} | ")


def _train(opt, val_dataset, train_dataset, logger: Logger) -> None:
    """Create the model (resumed if asked) and run the epochs, or the evaluation of --test."""
    print("Creating model...")
    # ImageNet weights only matter when training from scratch; a checkpoint replaces them anyway.
    model = create_model(opt.arch, opt.heads, opt.head_conv, pretrained=not opt.load_model)
    optimizer = build_optimizer(opt, model)
    scaler = grad_scaler(opt.amp, opt.device)
    start_epoch = 0
    if distributed.is_enabled():
        # after the model is built (DDP gives every rank rank 0's weights anyway): augmentation differs per rank
        distributed.seed_rank(opt.seed, train_dataset)
    if opt.load_model != "":
        if opt.resume:
            model, optimizer, start_epoch = resume_training(model, opt.load_model, optimizer, opt.lr, opt.lr_step,
                                                            scaler=scaler, **checkpoint_options(opt))
        else:
            model = load_weights(model, opt.load_model, **checkpoint_options(opt))
    if opt.resume:
        logger.write(f"resumed from {opt.load_model} (epoch {start_epoch}): training continues at epoch "
                     f"{start_epoch + 1}\n")

    trainer = train_factory[opt.task](opt, model, optimizer)
    trainer.set_device(opt.gpus, opt.chunk_sizes, opt.device, amp=opt.amp, scaler=scaler, sync_bn=opt.sync_bn)
    if opt.metric not in list(trainer.loss_stats) + ["time"]:
        raise UserError(f"--metric {opt.metric}: not a validation statistic of {opt.task}; choose one of "
                        f"{', '.join(trainer.loss_stats)}")

    print("Setting up data...")
    if train_dataset is not None:
        trainer.use_training_set(train_dataset)
    pin = opt.device.type == "cuda"
    # a persistent worker: validation then does not pay a worker start (nor repeat its warnings) every time
    # under torchrun each rank validates its own share of the images, each image once
    val_sampler = distributed.ShardSampler(len(val_dataset)) if distributed.is_enabled() else None
    val_loader = torch.utils.data.DataLoader(val_dataset, batch_size=1, shuffle=False, num_workers=1,
                                             pin_memory=pin, persistent_workers=True, sampler=val_sampler)
    if opt.test:
        _, preds = trainer.val(0, val_loader)
        if distributed.is_main():
            val_loader.dataset.run_eval(preds, opt.save_dir)
        return

    if len(train_dataset) < opt.batch_size:
        raise UserError(f"--batch_size {opt.batch_size}: larger than the {len(train_dataset)} training images "
                        "(incomplete batches are dropped); use a smaller --batch_size")
    # persistent workers: restarting them every epoch costs about a second, which adds up on short CPU epochs
    train_sampler = None
    if distributed.is_enabled():
        # the same seed on every rank: the ranks agree on one permutation and take disjoint parts of it
        train_sampler = torch.utils.data.DistributedSampler(train_dataset, shuffle=True, seed=opt.seed, drop_last=True)
    train_loader = torch.utils.data.DataLoader(train_dataset, batch_size=opt.batch_size // distributed.get_world_size(),
                                               shuffle=train_sampler is None, sampler=train_sampler,
                                               num_workers=opt.num_workers, pin_memory=pin, drop_last=True,
                                               persistent_workers=opt.num_workers > 0)

    print("Starting training...")
    best = 1e10
    for epoch in range(start_epoch + 1, opt.num_epochs + 1):
        if train_sampler is not None:
            train_sampler.set_epoch(epoch)
        train_stats, _ = trainer.train(epoch, train_loader)
        main_rank = distributed.is_main()
        if epoch in opt.lr_step and main_rank:
            # before model_last.pth: a resume from this epoch's model_last.pth must find model_<epoch>.pth
            save_model(os.path.join(opt.save_dir, f"model_{epoch}.pth"), epoch, model, optimizer, scaler)
        logger.write(f"epoch: {epoch} |")
        _log_stats(logger, "train", train_stats, epoch)
        validate = opt.val_intervals > 0 and epoch % opt.val_intervals == 0
        # written before validating; --save_all keeps one file per validated epoch instead of model_last.pth
        resume_file = f"model_{epoch}.pth" if validate and opt.save_all else "model_last.pth"
        if main_rank:
            save_model(os.path.join(opt.save_dir, resume_file), epoch, model, optimizer, scaler)
        if validate:
            with torch.no_grad():
                val_stats, _ = trainer.val(epoch, val_loader)
            _log_stats(logger, "val", val_stats, epoch)
            if val_stats[opt.metric] < best:
                best = val_stats[opt.metric]
                if main_rank:
                    save_model(os.path.join(opt.save_dir, "model_best.pth"), epoch, model)
        logger.write("\n")
        if epoch in opt.lr_step:
            lr = lr_at_epoch(opt.lr, opt.lr_step, epoch)
            print("Drop LR to", lr)
            for param_group in optimizer.param_groups:
                param_group["lr"] = lr


def _cli() -> None:
    """Parse the command line and train; under torchrun only rank 0 prints to stdout."""
    with distributed.quiet_unless_main():
        main(opts().parse())


if __name__ == "__main__":
    run_cli(_cli)
