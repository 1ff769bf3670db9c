"""Which model loads, and from where: a hub id is a download only when allowed (at a pinned
revision), ``~`` is expanded, the empty path finds the package's own embedded model before the
working directory's, and pickled weights are refused (docs/reliability.md, "Model identity")."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from focus_ros.core.config import (
    ModelConfig,
    build_configs,
    default_model_path,
    download_refusal,
    hub_kwargs,
    is_hub_id,
)
from focus_ros.core.models import load_adapter
from focus_ros.core.models.base import PICKLED_WEIGHTS, check_safetensors_only

REPO = Path(__file__).resolve().parents[2]
HUB_ID = "llava-hf/llava-1.5-7b-hf-typo"


def _plant_embedded(root: Path) -> Path:
    """A ``models/embedded`` with a config.json under ``root`` (what default_model_path looks for)."""
    planted = root / "models" / "embedded"
    planted.mkdir(parents=True)
    (planted / "config.json").write_text(json.dumps({"model_type": "llava"}))
    return planted


def test_defaults_load_local_files_only_and_never_download():
    cfg = ModelConfig(path="x")
    assert cfg.local_files_only is True and cfg.allow_download is False and cfg.revision == ""


@pytest.mark.parametrize("path", ["llava-hf/llava-1.5-7b-hf", "Qwen/Qwen2.5-VL-7B-Instruct", "some-model"])
def test_a_name_that_is_not_there_and_not_written_as_a_path_is_a_hub_id(path):
    assert is_hub_id(path)


@pytest.mark.parametrize("path", ["/no/such/dir", "./no_such_dir", "../no_such_dir", "~/no_such_dir", ""])
def test_a_path_written_as_a_path_is_never_a_hub_id(path):
    assert not is_hub_id(path)


def test_an_existing_relative_directory_is_local_not_a_hub_id(tmp_path, monkeypatch):
    (tmp_path / "org" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert not is_hub_id("org/name") and download_refusal("org/name", allow_download=False) is None


def test_a_hub_id_without_allow_download_is_refused_naming_the_id_and_how_to_allow_it():
    reason = download_refusal(HUB_ID, allow_download=False)
    assert reason is not None and repr(HUB_ID) in reason
    for how in ("model.allow_download true", "allow_download:=true", "--set model.allow_download=true"):
        assert how in reason
    assert "model.revision" in reason  # and says to pin it
    with pytest.raises(ValueError, match="downloads are off"):
        build_configs({"model.path": HUB_ID})  # the command-line tools' path: refused before any hub look-up
    with pytest.raises(ValueError, match="downloads are off"):
        hub_kwargs(ModelConfig(path=HUB_ID))


def test_an_allowed_hub_id_downloads_at_its_revision_whatever_local_files_only_says():
    cfg = ModelConfig(path=HUB_ID, allow_download=True, revision="0123456789abcdef", local_files_only=True)
    assert hub_kwargs(cfg) == {"local_files_only": False, "revision": "0123456789abcdef"}
    assert hub_kwargs(ModelConfig(path=HUB_ID, allow_download=True))["revision"] is None  # the default branch


def test_a_local_directory_loads_with_local_files_only_as_set_even_with_allow_download(miniature_root):
    path = str(miniature_root / "llava")
    assert hub_kwargs(ModelConfig(path=path)) == {"local_files_only": True}
    assert hub_kwargs(ModelConfig(path=path, allow_download=True, revision="abc")) == {"local_files_only": True}


def test_a_home_relative_path_is_expanded_before_it_is_checked_and_loaded(tmp_path, monkeypatch, miniature_root):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "llava").symlink_to(miniature_root / "llava")
    assert ModelConfig(path="~/models/llava").path == str(tmp_path / "models" / "llava")
    model, _ = build_configs({"model.path": "~/models/llava"})  # reads config.json from the expanded path
    assert model.path == str(tmp_path / "models" / "llava") and model.family == "llava"


def test_the_command_line_tools_take_home_relative_model_and_image_paths(tmp_path, monkeypatch, miniature_root):
    import argparse

    import cv2

    from focus_ros.cli.common import add_model_flags, configs_from_args, load_image

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "llava").symlink_to(miniature_root / "llava")
    cv2.imwrite(str(tmp_path / "frame.png"), np.full((6, 8, 3), (10, 20, 30), np.uint8))
    parser = argparse.ArgumentParser()
    add_model_flags(parser)
    model, _ = configs_from_args(parser.parse_args(["--model", "~/llava"]))  # quoted: the shell left the ~
    assert model.path == str(tmp_path / "llava") and model.family == "llava"
    assert load_image("~/frame.png")[0, 0].tolist() == [30, 20, 10]  # BGR on disk, RGB back


def test_the_share_folder_wins_over_a_models_embedded_planted_in_the_working_directory(tmp_path, monkeypatch):
    prefix = tmp_path / "prefix"
    shipped = _plant_embedded(prefix / "share" / "focus_ros")
    cwd = tmp_path / "cwd"
    planted = _plant_embedded(cwd)
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(prefix))
    assert default_model_path() == str(shipped)
    # without an installed share the source checkout's own model still comes before the working directory
    monkeypatch.setenv("AMENT_PREFIX_PATH", "")
    assert default_model_path() == str(REPO / "models" / "embedded") != str(planted)


def test_the_places_are_looked_at_share_first_and_the_working_directory_last(tmp_path, monkeypatch):
    import focus_ros.core.config as config

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path / "prefix"))
    monkeypatch.setattr(config, "EMBEDDED_MODEL", "models/no_such_model")  # found nowhere: the error lists the order
    with pytest.raises(FileNotFoundError) as err:
        default_model_path()
    places = str(err.value).split(" is not in ", 1)[1].split(", ")
    assert places == [str(tmp_path / "prefix" / "share" / "focus_ros"), str(REPO), str(tmp_path)]


def test_the_shipped_models_are_safetensors_without_pickled_weights(miniature_root):
    for folder in [
        REPO / "models" / "embedded",
        *(miniature_root / f for f in ("llava", "llava_onevision", "qwen2_5_vl")),
    ]:
        assert list(folder.glob("*.safetensors")), folder
        assert not [f for pattern in PICKLED_WEIGHTS for f in folder.glob(pattern)], folder
        check_safetensors_only(str(folder))


def test_a_directory_with_only_a_pytorch_model_bin_is_refused_with_the_reason(tmp_path, miniature_root):
    src = miniature_root / "llava"
    bad = tmp_path / "bin_only"
    shutil.copytree(src, bad, ignore=shutil.ignore_patterns("*.safetensors"))
    torch.save(load_file(src / "model.safetensors"), bad / "pytorch_model.bin")  # the same weights, pickled
    with pytest.raises(ValueError, match=r"pickled weights only \(pytorch_model.bin\)"):
        load_adapter(ModelConfig(path=str(bad), device="cpu"))
