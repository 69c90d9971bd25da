"""Dataset / sample-class registries and get_dataset(dataset, task), which combines the two."""
from __future__ import annotations

from utils.registry import LazyRegistry

dataset_factory = LazyRegistry("dataset", {
    "coco": "datasets.dataset.coco:COCO",
    "pascal": "datasets.dataset.pascal:PascalVOC",
    "kitti": "datasets.dataset.kitti:KITTI",
    "coco_hp": "datasets.dataset.coco_hp:COCOHP",
    "synth": "datasets.dataset.synth:Synth",
    "synth_hp": "datasets.dataset.synth_hp:SynthHP",
    "synth_kitti": "datasets.dataset.synth_kitti:SynthKITTI",
    "custom": "datasets.dataset.custom:Custom",
})

_sample_factory = LazyRegistry("task", {
    "exdet": "datasets.sample.exdet:EXDetDataset",
    "ctdet": "datasets.sample.ctdet:CTDetDataset",
    "ddd": "datasets.sample.ddd:DddDataset",
    "multi_pose": "datasets.sample.multi_pose:MultiPoseDataset",
    "centernet2": "datasets.sample.centernet2:CenterNet2Dataset",
})


def get_dataset(dataset: str, task: str) -> type:
    """A class combining the dataset class (paths, tables, run_eval) with the task's sample class (__getitem__)."""
    dataset_cls = dataset_factory[dataset]
    sample_cls = _sample_factory[task]

    class Dataset(dataset_cls, sample_cls):
        pass

    Dataset.__name__ = Dataset.__qualname__ = f"{dataset_cls.__name__}_{sample_cls.__name__}"
    return Dataset
