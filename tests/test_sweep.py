"""The W&B sweep: every parameter, with sample values, parses through the CLI (no run)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from crgan_lightning.callbacks.rendering import ContextRenderingCallback
from crgan_lightning.app.cli import main

REPO = Path(__file__).resolve().parents[1]
SWEEP = yaml.safe_load((REPO / "experiments" / "sweep.yaml").read_text())


def samples(spec: dict) -> list:
    if "values" in spec:
        return spec["values"]
    if "value" in spec:
        return [spec["value"]]
    return [spec["min"], spec["max"]]


def command(args: list[str]) -> list[str]:
    """The sweep's command as the agent would run it, minus the program name."""
    out = []
    for part in SWEEP["command"]:
        if part == "${env}":
            continue
        if part == "${args}":
            out += args
        else:
            out.append(part)
    assert out[0] == SWEEP["program"] == "crgan"
    return out[1:]


def test_sweep_targets_a_metric_the_module_logs():
    assert SWEEP["metric"]["name"] in {"val/mAP", "val/rank1"}


@pytest.mark.parametrize("name", sorted(SWEEP["parameters"]))
def test_every_sweep_parameter_parses(name, capsys, monkeypatch):
    for value in samples(SWEEP["parameters"][name]):
        with pytest.raises(SystemExit) as exc:
            main(command([f"--{name}={value}", "--print_config"]))
        assert exc.value.code == 0, capsys.readouterr().err
        config = yaml.safe_load(capsys.readouterr().out)
        node = config
        keys = name.split(".")
        if keys[0] == "rendering":
            node = config["rendering"]
            keys = keys[1:]
            # the value must also be valid together with the config's other callback arguments
            assert node["class_path"].endswith("ContextRenderingCallback")
            ContextRenderingCallback(**node["init_args"])
        for key in keys:
            node = node[key]
        assert node == value
        assert config["trainer"]["logger"]["class_path"].endswith("WandbLogger")
