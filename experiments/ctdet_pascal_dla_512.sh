#!/usr/bin/env bash
# Model-zoo recipe ctdet_pascal_dla_512: train, then evaluate the last checkpoint.
set -e
cd "$(dirname "$0")/../src"
python main.py ctdet --exp_id pascal_dla_512 --dataset pascal --input_res 512 --num_epochs 70 --lr_step 45,60 --gpus 0,1
python test.py ctdet --exp_id pascal_dla_512 --dataset pascal --input_res 512 --resume
python test.py ctdet --exp_id pascal_dla_512 --dataset pascal --input_res 512 --flip_test --resume
