"""Catalogue cases: checkpoints (code in pickles, wrong networks, resume, broken files)."""
import argparse

import torch
from catalogue import Case
from payloads import VARIANTS, write_payload


def _payload(variant):
    def prepare(w):
        write_payload(w.base / "evil.pth", w.base / "ran", variant)
    return prepare


def _never_ran(w, res):
    assert not (w.base / "ran").exists(), "the checkpoint's code ran"


def _demo_image(w):
    return str(sorted((w.synth / "images" / "val").iterdir())[0])


def _evil(w):
    return ["--load_model", str(w.base / "evil.pth")]


def _with_object(w):
    ckpt = torch.load(w.checkpoint, weights_only=True)
    ckpt["opt"] = argparse.Namespace(lr=1.0)
    torch.save(ckpt, w.base / "odd.pth")


def _other_classes(w):
    ckpt = torch.load(w.checkpoint, weights_only=True)
    sd = ckpt["state_dict"]
    sd["hm.2.weight"] = torch.zeros(80, *sd["hm.2.weight"].shape[1:])
    sd["hm.2.bias"] = torch.zeros(80)
    torch.save({"epoch": 140, "state_dict": sd}, w.base / "coco80.pth")


def _summary_names_hm(w, res):
    assert "kept at their initialisation: heads hm" in res.stdout
    assert "Skip loading parameter" not in res.stdout


def _truncated(w):
    (w.base / "cut.pth").write_bytes(w.checkpoint.read_bytes()[:4096])


CASES = [
    *[Case(f"checkpoint_payload_{v}_test", "test", _evil, prepare=_payload(v), check=_never_ran,
           error=("evil.pth", "--trust_checkpoint")) for v in VARIANTS],
    Case("checkpoint_payload_main", "main", _evil, prepare=_payload("zip"), check=_never_ran,
         error=("--load_model", "evil.pth", "--trust_checkpoint")),
    Case("checkpoint_payload_resume_main", "main", ["--resume"], check=_never_ran,
         prepare=lambda w: (w.save_dir.mkdir(parents=True),
                            write_payload(w.save_dir / "model_last.pth", w.base / "ran", "legacy")),
         error=("model_last.pth", "--trust_checkpoint")),
    Case("checkpoint_payload_demo", "demo", lambda w: [*_evil(w), "--demo", _demo_image(w)],
         prepare=_payload("nested"), check=_never_ran, error=("evil.pth", "--trust_checkpoint")),
    Case("checkpoint_python_object_trusted", "demo",
         lambda w: ["--load_model", str(w.base / "odd.pth"), "--trust_checkpoint", "--demo", _demo_image(w),
                    "--demo_out_dir", str(w.base / "vis")],
         prepare=_with_object, exit=0, warnings=("odd.pth", "--trust_checkpoint")),
    Case("checkpoint_python_object_untrusted", "demo",
         lambda w: ["--load_model", str(w.base / "odd.pth"), "--demo", _demo_image(w)],
         prepare=_with_object, error=("odd.pth", "argparse.Namespace", "--trust_checkpoint")),
    Case("checkpoint_other_arch_test", "test", lambda w: ["--arch", "res_50", "--load_model", str(w.checkpoint)],
         error=("--load_model", "model.pth", "--load_partial")),
    Case("checkpoint_other_arch_partial_demo", "demo",
         lambda w: ["--arch", "res_50", "--load_model", str(w.checkpoint), "--load_partial", "--demo", _demo_image(w),
                    "--demo_out_dir", str(w.base / "vis")], exit=0),
    Case("checkpoint_other_classes_fine_tune", "main", lambda w: ["--load_model", str(w.base / "coco80.pth")],
         prepare=_other_classes, check=_summary_names_hm, exit=0),
    Case("checkpoint_resume_without_model_last_main", "main", ["--resume"],
         error=("--resume", "model_last.pth", "ctdet/cat", "--load_model")),
    Case("checkpoint_resume_without_model_last_test", "test", ["--resume"],
         error=("--resume", "model_last.pth", "ctdet/cat")),
    Case("checkpoint_missing_load_model", "test", lambda w: ["--load_model", str(w.base / "none.pth")],
         error=("--load_model", "none.pth", "no such file")),
    Case("checkpoint_truncated", "main", lambda w: ["--load_model", str(w.base / "cut.pth")], prepare=_truncated,
         error=("--load_model", "cut.pth", "not a readable PyTorch checkpoint")),
    Case("checkpoint_not_a_checkpoint", "demo",
         lambda w: ["--load_model", str(w.synth / "annotations" / "instances_val.json"), "--demo", _demo_image(w)],
         error=("--load_model", "instances_val.json", "not a readable")),
]
