#!/usr/bin/env bash
# Model-zoo recipe ctdet_coco_resdcn18: train, then evaluate the last checkpoint.
set -e
cd "$(dirname "$0")/../src"
python main.py ctdet --exp_id coco_resdcn18 --arch resdcn_18 --batch_size 114 --master_batch 18 --lr 5e-4 --gpus 0,1,2,3 --num_workers 16
python test.py ctdet --exp_id coco_resdcn18 --arch resdcn_18 --keep_res --resume
python test.py ctdet --exp_id coco_resdcn18 --arch resdcn_18 --keep_res --flip_test --resume
python test.py ctdet --exp_id coco_resdcn18 --arch resdcn_18 --keep_res --flip_test --test_scales 0.5,0.75,1,1.25,1.5 --resume
