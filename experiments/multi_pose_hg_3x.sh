#!/usr/bin/env bash
# Model-zoo recipe multi_pose_hg_3x: train, then evaluate the last checkpoint.
set -e
cd "$(dirname "$0")/../src"
python main.py multi_pose --exp_id hg_3x --dataset coco_hp --arch hourglass --batch_size 24 --master_batch 4 --lr 2.5e-4 --load_model ../models/ctdet_coco_hg.pth --gpus 0,1,2,3,4 --num_epochs 150 --lr_step 130
python test.py multi_pose --exp_id hg_3x --dataset coco_hp --arch hourglass --keep_res --resume
python test.py multi_pose --exp_id hg_3x --dataset coco_hp --arch hourglass --keep_res --flip_test --resume
