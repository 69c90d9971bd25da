#!/usr/bin/env bash
# Model-zoo recipe exdet_coco_hg: train, then evaluate the last checkpoint.
set -e
cd "$(dirname "$0")/../src"
python main.py exdet --exp_id coco_hg --arch hourglass --batch_size 24 --master_batch 4 --lr 2.5e-4 --gpus 0,1,2,3,4
python test.py exdet --exp_id coco_hg --arch hourglass --keep_res --resume
python test.py exdet --exp_id coco_hg --arch hourglass --keep_res --flip_test --resume
python test.py exdet --exp_id coco_hg --arch hourglass --keep_res --flip_test --test_scales 0.5,0.75,1,1.25,1.5 --resume
