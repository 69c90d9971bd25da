"""Task name -> trainer class."""
from __future__ import annotations

from utils.registry import LazyRegistry

train_factory = LazyRegistry("task", {
    "exdet": "trains.exdet:ExdetTrainer",
    "ctdet": "trains.ctdet:CtdetTrainer",
    "multi_pose": "trains.multi_pose:MultiPoseTrainer",
    "ddd": "trains.ddd:DddTrainer",
    "centernet2": "trains.centernet2:CenterNet2Trainer",
})
