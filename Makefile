# CenterNet port: `make demo` (synthetic data -> train -> evaluate -> demo images) and `make test`.
# Everything goes through `make setup`, which is idempotent.

PYTHON      ?= python3
VENV        ?= .venv
VENV_FLAGS  ?=
TORCH_SPEC  ?= torch==2.13.0
PY          := $(VENV)/bin/python
DCN_DIR     := src/lib/models/networks/DCNv2
NMS_DIR     := src/lib/external
STAMP_REQ   := $(VENV)/.requirements.stamp
STAMP_NMS   := $(VENV)/.nms.stamp
STAMP_DCN   := $(VENV)/.dcn.stamp

# make demo settings (the defaults fit 2 CPU cores and 15 minutes)
DEMO_EXP    ?= synth_res18
# res_18 from random init (no ImageNet weights offline) at 128x128: 2100 iterations of batch 8 (0.23-1.0 s each by CPU)
# at lr 2e-3 after a 200-iteration warm-up (as accurate as 3000 at 1e-3; batch 8 learns the classes sooner than
# batch 16 for the same samples and time); --amp auto: bf16 on CPUs that compute it natively (about 1.6x faster
# steps there), float32 elsewhere
DEMO_NET    ?= --arch res_18 --gpus -1 --input_res 128 --amp auto
DEMO_ARGS   ?= $(DEMO_NET) --num_workers 1 --batch_size 8 --lr 2e-3 --warmup_iters 200 \
               --num_epochs 21 --lr_step 18 \
               --val_intervals 10 --print_iter 100
# test-time augmentation of the original (flipped input, two scales merged): about +0.03 AP here
DEMO_TEST   ?= --flip_test --test_scales 1,1.25
SYNTH_ARGS  ?= --train 800 --val 100 --seed 0
SYNTH_JSON  := data/synth/annotations/instances_val.json

.PHONY: setup demo test lint data clean-build gpu-check

setup: $(STAMP_REQ) $(STAMP_NMS) $(STAMP_DCN)

$(PY):
	$(PYTHON) -m venv $(VENV_FLAGS) $(VENV)

$(STAMP_REQ): requirements.txt | $(PY)
	@$(PY) -c "import torch" 2>/dev/null && echo "torch already present: $$($(PY) -c 'import torch; print(torch.__version__)')" \
	  || $(PY) -m pip install $(TORCH_SPEC)
	$(PY) -m pip install -r requirements.txt
	@touch $@

$(STAMP_NMS): $(STAMP_REQ) $(NMS_DIR)/nms.pyx $(NMS_DIR)/setup.py
	cd $(NMS_DIR) && $(abspath $(PY)) setup.py build_ext --inplace
	@touch $@

$(STAMP_DCN): $(STAMP_REQ) $(wildcard $(DCN_DIR)/setup.py $(DCN_DIR)/src/*.* $(DCN_DIR)/src/*/*.*)
	cd $(DCN_DIR) && $(abspath $(PY)) setup.py build develop
	@touch $@

data: setup $(SYNTH_JSON)

# regenerated when the generator changes, so an old data/synth never meets a newer demo recipe
$(SYNTH_JSON): src/lib/datasets/synthetic/shapes.py src/tools/gen_synthetic.py | $(STAMP_REQ)
	$(PY) src/tools/gen_synthetic.py --kind det --out data/synth $(SYNTH_ARGS)

demo: data
	cd src && ../$(PY) main.py ctdet --dataset synth --exp_id $(DEMO_EXP) $(DEMO_ARGS)
	cd src && ../$(PY) demo.py ctdet --dataset synth --exp_id $(DEMO_EXP) $(DEMO_NET) --resume \
	  --demo ../data/synth/images/val --demo_out_dir ../exp/ctdet/$(DEMO_EXP)/demo > /dev/null
	@echo "annotated demo images: exp/ctdet/$(DEMO_EXP)/demo"
	cd src && ../$(PY) test.py ctdet --dataset synth --exp_id $(DEMO_EXP) $(DEMO_NET) --resume $(DEMO_TEST) \
	  | tee ../exp/ctdet/$(DEMO_EXP)/test.log
	@grep "IoU=0.50:0.95 | area=   all | maxDets=100" exp/ctdet/$(DEMO_EXP)/test.log | head -1 \
	  | sed 's/.*= /COCO AP@[.5:.95] on the synthetic val split: /'

test: setup
	$(PY) -m ruff check src tests
	$(PY) -m pytest tests

lint: setup
	$(PY) -m ruff check src tests

clean-build:
	rm -rf $(DCN_DIR)/build $(NMS_DIR)/build $(STAMP_NMS) $(STAMP_DCN)
	find src -name '*.so' -delete

# on a GPU machine: every CUDA path in under 8 minutes, report in exp/gpu_check/report.md (see the script)
gpu-check: setup
	VENV=$(VENV) TORCH_SPEC=$(TORCH_SPEC) bash src/tools/gpu_check.sh
