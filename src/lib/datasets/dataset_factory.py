"""Dataset / sample-class registries and get_dataset(dataset, task), which combines the two."""
from __future__ import annotations

import importlib
from collections.abc import Iterator

from utils.errors import UserError


class LazyRegistry(dict):
    """name -> class, imported on first access from a 'module:Class' string.

    A task whose module is missing or broken only fails when it is asked for, so ctdet keeps working
    while, say, the ddd modules are absent. Supports `registry[name]`, `in`, keys(), items(), values().
    """

    def __init__(self, kind: str, entries: dict[str, str]):
        super().__init__(entries)
        self.kind = kind

    def __getitem__(self, name: str):
        if not super().__contains__(name):
            raise UserError(f"{self.kind} '{name}' is unknown; choose one of {', '.join(self.keys())}")
        value = super().__getitem__(name)
        if isinstance(value, str):
            module_name, _, attr = value.partition(":")
            value = getattr(importlib.import_module(module_name), attr)
            super().__setitem__(name, value)
        return value

    def get(self, name: str, default=None):
        return self[name] if name in self else default

    def values(self) -> list:
        return [self[k] for k in self.keys()]

    def items(self) -> list:
        return [(k, self[k]) for k in self.keys()]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.keys()))


dataset_factory = LazyRegistry("dataset", {
    'coco': 'datasets.dataset.coco:COCO',
    'pascal': 'datasets.dataset.pascal:PascalVOC',
    'kitti': 'datasets.dataset.kitti:KITTI',
    'coco_hp': 'datasets.dataset.coco_hp:COCOHP',
    'synth': 'datasets.dataset.synth:Synth',
    'synth_hp': 'datasets.dataset.synth_hp:SynthHP',
    'synth_kitti': 'datasets.dataset.synth_kitti:SynthKITTI',
})

_sample_factory = LazyRegistry("task", {
    'exdet': 'datasets.sample.exdet:EXDetDataset',
    'ctdet': 'datasets.sample.ctdet:CTDetDataset',
    'ddd': 'datasets.sample.ddd:DddDataset',
    'multi_pose': 'datasets.sample.multi_pose:MultiPoseDataset',
})


def get_dataset(dataset: str, task: str) -> type:
    """A class combining the dataset class (paths, tables, run_eval) with the task's sample class (__getitem__)."""
    dataset_cls = dataset_factory[dataset]
    sample_cls = _sample_factory[task]

    class Dataset(dataset_cls, sample_cls):
        pass

    Dataset.__name__ = Dataset.__qualname__ = f"{dataset_cls.__name__}_{sample_cls.__name__}"
    return Dataset
