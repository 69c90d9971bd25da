#!/usr/bin/env bash
# Model-zoo recipe ctdet_pascal_resdcn101_384: train, then evaluate the last checkpoint.
set -e
cd "$(dirname "$0")/../src"
python main.py ctdet --exp_id pascal_resdcn101_384 --arch resdcn_101 --dataset pascal --num_epochs 70 --lr_step 45,60 --gpus 0,1
python test.py ctdet --exp_id pascal_resdcn101_384 --arch resdcn_101 --dataset pascal --resume
python test.py ctdet --exp_id pascal_resdcn101_384 --arch resdcn_101 --dataset pascal --flip_test --resume
