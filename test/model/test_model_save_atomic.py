"""Saving a trained model and loading training checkpoints: a save replaces the model folder whole
(an interrupted one leaves the previous model as it was), and checkpoints load with
``torch.load(weights_only=True)`` (no code runs on load)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from focus_ros.core.config import ModelConfig
from focus_ros.core.models import load_adapter
from focus_ros.training.gates import SETTINGS_FILE
from focus_ros.training.recipe import RECIPES
from focus_ros.training.trainer import Trainer

pytestmark = pytest.mark.model


def _trainer(tmp_path, out_name="model"):
    tiny = tuple(
        replace(s, steps=1, scenes_per_step=1, crops_per_scene=2, max_sequences=8)
        for s in RECIPES["reuse-fp32"].stages[:1]
    )
    cfg = replace(RECIPES["reuse-fp32"], stages=tiny, train_short_side=(400, 500))
    return Trainer(cfg, tmp_path / "work", tmp_path / out_name, progress=False, shape_gate_scenes=2, gate_scenes=2)


def _leftovers(folder):
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}-"))


def test_a_save_replaces_the_model_folder_whole_and_keeps_its_search_settings(tmp_path):
    trainer = _trainer(tmp_path)
    out = trainer.out
    out.mkdir(parents=True)
    (out / "stale.bin").write_bytes(b"from an older model")
    (out / SETTINGS_FILE).write_text(json.dumps({"search": {"s_min": 1, "s_max": 1}}))
    assert trainer.save_model() == out
    assert not (out / "stale.bin").exists()  # nothing of the old folder mixes into the new model
    assert json.loads((out / SETTINGS_FILE).read_text())["search"] == {"s_min": 1, "s_max": 1}
    assert _leftovers(out) == []
    adapter = load_adapter(ModelConfig(path=str(out), device="cpu", local_files_only=True))
    assert adapter.family == "llava"


def test_an_interrupted_save_leaves_the_previous_model_as_it_was(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path)
    out = trainer.save_model()
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(trainer.processor, "save_pretrained", disk_full)  # the fault, not the code under test
    with pytest.raises(OSError, match="No space left"):
        trainer.save_model()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _leftovers(out) == []


def test_checkpoints_load_without_running_code(tmp_path):
    trainer = _trainer(tmp_path)
    trainer._save()
    data = torch.load(trainer.ckpt, map_location="cpu", weights_only=True)  # what resuming does
    assert {"model", "heads", "state", "optimizer", "config"} <= set(data)
    again = _trainer(tmp_path)  # resumes from that checkpoint
    assert again.state == trainer.state
