#!/usr/bin/env bash
# Model-zoo recipe ctdet_pascal_resdcn101_512: train, then evaluate the last checkpoint.
set -e
cd "$(dirname "$0")/../src"
python main.py ctdet --exp_id pascal_resdcn101_512 --arch resdcn_101 --dataset pascal --input_res 512 --num_epochs 70 --lr_step 45,60 --gpus 0,1,2,3
python test.py ctdet --exp_id pascal_resdcn101_512 --arch resdcn_101 --dataset pascal --input_res 512 --resume
python test.py ctdet --exp_id pascal_resdcn101_512 --arch resdcn_101 --dataset pascal --input_res 512 --flip_test --resume
