"""Generic training / validation loop shared by all tasks."""
from __future__ import annotations

import time

import torch
from progress.bar import Bar

from utils import distributed
from utils.amp import autocast, to_float
from utils.utils import AverageMeter


class ModelWithLoss(torch.nn.Module):
    """Network plus loss in one module, so DataParallel also spreads the loss computation."""

    def __init__(self, model: torch.nn.Module, loss: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.loss = loss
        self.memory_format = torch.contiguous_format
        # --amp: the network runs under autocast on this device; the losses always run in float32
        self.amp = ""
        self.device = torch.device("cpu")

    def forward(self, batch: dict):
        """Return (last stack's outputs, total loss, loss stats)."""
        with autocast(self.amp, self.device):
            outputs = self.model(batch["input"].contiguous(memory_format=self.memory_format))
        if self.amp:
            outputs = to_float(outputs)
        loss, loss_stats = self.loss(outputs, batch)
        return outputs[-1], loss, loss_stats


def _to_device(batch: dict, device) -> dict:
    # 'meta' holds the numpy/python bookkeeping that debug and save_result read on the host
    return {k: v if k == "meta" else v.to(device=device, non_blocking=True) for k, v in batch.items()}


def _stat_value(v: torch.Tensor) -> float:
    # Every loss term is a tensor (trains.common.zero_terms); several GPUs return one value each.
    return v.mean().item()


class BaseTrainer:
    """Runs epochs of a task; subclasses give the loss (`_get_losses`), `debug` and `save_result`."""

    def __init__(self, opt, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
        self.opt = opt
        self.optimizer = optimizer
        self.loss_stats, self.loss = self._get_losses(opt)
        self.model_with_loss = ModelWithLoss(model, self.loss)
        self.scaler: torch.amp.GradScaler | None = None

    def set_device(self, gpus: list[int], chunk_sizes: list[int], device, amp: str = "",
                   scaler: torch.amp.GradScaler | None = None, sync_bn: bool = False) -> None:
        """Move the model (wrapped for several GPUs) and the optimizer state to `device`.

        Under torchrun each process drives one device and the model is wrapped in DistributedDataParallel
        (with SyncBatchNorm when `sync_bn`). `amp` ('', 'fp16', 'bf16') is the autocast precision of the
        network; `scaler` scales fp16 losses.
        """
        self.model_with_loss.amp = amp
        self.model_with_loss.device = torch.device(device)
        self.scaler = scaler
        if distributed.is_enabled():
            if sync_bn:
                # in place on the children, so the model main.py saves is the converted one
                self.model_with_loss.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model_with_loss.model)
            self.model_with_loss = self.model_with_loss.to(device)
            if torch.device(device).type == "cpu":
                self.model_with_loss.to(memory_format=torch.channels_last)
                self.model_with_loss.memory_format = torch.channels_last
            # DDP copies rank 0's weights to every rank here, so all ranks start from the same model
            self.model_with_loss = torch.nn.parallel.DistributedDataParallel(
                self.model_with_loss, device_ids=[device.index] if torch.device(device).type == "cuda" else None)
        elif len(gpus) > 1:
            if len(set(chunk_sizes)) > 1:
                from models.data_parallel import DataParallel
                self.model_with_loss = DataParallel(
                    self.model_with_loss, device_ids=gpus, chunk_sizes=chunk_sizes).to(device)
            else:
                self.model_with_loss = torch.nn.DataParallel(self.model_with_loss, device_ids=gpus).to(device)
        else:
            self.model_with_loss = self.model_with_loss.to(device)
            if torch.device(device).type == "cpu":
                # oneDNN convolutions run about 20% faster on NHWC tensors; the weights' values are unchanged
                self.model_with_loss.to(memory_format=torch.channels_last)
                self.model_with_loss.memory_format = torch.channels_last
        if self.optimizer is not None:
            for state in self.optimizer.state.values():
                for k, v in state.items():
                    if isinstance(v, torch.Tensor):
                        state[k] = v.to(device=device, non_blocking=True)

    def _suffix(self, phase: str, epoch: int, iter_id: int, num_iters: int, bar: Bar,
                avg_loss_stats: dict, data_time: AverageMeter, batch_time: AverageMeter) -> str:
        text = f"{phase}: [{epoch}][{iter_id}/{num_iters}]|Tot: {bar.elapsed_td} |ETA: {bar.eta_td} "
        for name, meter in avg_loss_stats.items():
            text += f"|{name} {meter.avg:.4f} "
        if not self.opt.hide_data_time:
            text += f"|Data {data_time.val:.3f}s({data_time.avg:.3f}s) |Net {batch_time.avg:.3f}s"
        return text

    def run_epoch(self, phase: str, epoch: int, data_loader) -> tuple[dict, dict]:
        """One pass over `data_loader`; returns (average loss stats + `time` in minutes, predictions)."""
        opt = self.opt
        model_with_loss = self.model_with_loss
        if phase == "train":
            model_with_loss.train()
        else:
            # evaluation needs no gradient synchronisation: run the bare module (on this rank's shard under DDP)
            if isinstance(model_with_loss, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)):
                model_with_loss = model_with_loss.module
            model_with_loss.eval()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

        results: dict = {}
        data_time, batch_time = AverageMeter(), AverageMeter()
        avg_loss_stats = {name: AverageMeter() for name in self.loss_stats}
        num_iters = len(data_loader) if opt.num_iters < 0 else opt.num_iters
        # file None: the bar of a torchrun rank other than 0 keeps its clock but draws nothing
        bar = Bar(f"{opt.task}/{opt.exp_id}", max=num_iters, **({} if distributed.is_main() else {"file": None}))
        tick = time.time()
        # The loader comes first in zip: like the reference loop, it draws one batch past num_iters before
        # stopping, so the random state after an epoch (augmentation with num_workers 0) is the same.
        for batch, iter_id in zip(data_loader, range(num_iters)):
            data_time.update(time.time() - tick)
            batch = _to_device(batch, opt.device)
            output, losses, loss_stats = model_with_loss(batch)
            loss = losses.mean()  # one value per GPU under DataParallel
            if phase == "train":
                self.optimizer.zero_grad()
                if self.scaler is not None:
                    self.scaler.scale(loss).backward()
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    loss.backward()
                    self.optimizer.step()
            batch_time.update(time.time() - tick)
            tick = time.time()

            for name in avg_loss_stats:
                avg_loss_stats[name].update(_stat_value(loss_stats[name]), batch["input"].size(0))
            bar.suffix = self._suffix(phase, epoch, iter_id, num_iters, bar, avg_loss_stats, data_time, batch_time)
            if opt.print_iter <= 0:
                bar.next()
            elif iter_id % opt.print_iter == 0:
                print(f"{opt.task}/{opt.exp_id}| {bar.suffix}", flush=True)
            if opt.debug > 0 and distributed.is_main():
                self.debug(batch, output, iter_id)
            if opt.test:
                self.save_result(output, batch, results)
            # drop this batch's graph and outputs before the loader hands over the next one
            del output, loss, losses, loss_stats

        bar.finish()
        averages = {name: meter.avg for name, meter in avg_loss_stats.items()}
        if distributed.is_enabled():
            if phase == "train":
                # the last step left each rank with the batch-norm statistics of its own shard: validate and
                # save rank 0's on every rank
                distributed.broadcast_buffers(model_with_loss)
            # weighted by samples: the validation shards of the ranks may differ by one image
            samples = next(iter(avg_loss_stats.values())).count if avg_loss_stats else 0
            averages = distributed.all_reduce_mean(averages, weight=samples)
            if opt.test:
                parts = distributed.gather_objects(results)
                results = distributed.interleave(parts) if parts is not None else {}
        averages["time"] = bar.elapsed_td.total_seconds() / 60.0
        return averages, results

    def use_training_set(self, dataset) -> None:
        """Take what the loss needs from the training set before the first epoch (task specific; none here)."""

    def debug(self, batch: dict, output: dict, iter_id: int) -> None:
        """Draw one training sample (task specific)."""
        raise NotImplementedError

    def save_result(self, output: dict, batch: dict, results: dict) -> None:
        """Add this batch's decoded predictions to `results` (task specific)."""
        raise NotImplementedError

    def _get_losses(self, opt):
        """Return (names of the logged loss stats, loss module)."""
        raise NotImplementedError

    def val(self, epoch: int, data_loader) -> tuple[dict, dict]:
        """Run a validation epoch."""
        return self.run_epoch("val", epoch, data_loader)

    def train(self, epoch: int, data_loader) -> tuple[dict, dict]:
        """Run a training epoch."""
        return self.run_epoch("train", epoch, data_loader)
