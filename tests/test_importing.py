"""`resdeep import`: published CIFAR ResNets, checked against independent re-implementations of
each source's network written here from its published code (not from resdeep's)."""

from __future__ import annotations

import hashlib
import json
import pickle

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from resdeep.checkpoint import load_checkpoint
from tests.conftest import run_main

# ---- akamaster/pytorch_resnet_cifar10, resnet.py ---------------------------------------------


class AkamasterBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = stride != 1 or in_planes != planes
        self.planes = planes

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if not self.pad:
            return x
        quarter = self.planes // 4  # option A: zeros half before, half after
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, quarter, quarter), "constant", 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class AkamasterResNet(nn.Module):
    def __init__(self, n: int, num_classes: int = 10) -> None:
        super().__init__()
        self.in_planes = 16
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(16, n, 1)
        self.layer2 = self._make_layer(32, n, 2)
        self.layer3 = self._make_layer(64, n, 2)
        self.linear = nn.Linear(64, num_classes)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for block_stride in [stride] + [1] * (blocks - 1):
            layers.append(AkamasterBlock(self.in_planes, planes, block_stride))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3])
        return self.linear(out.view(out.size(0), -1))


# ---- chenyaofo/pytorch-cifar-models, resnet.py -----------------------------------------------


class ChenyaofoBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ChenyaofoResNet(nn.Module):
    def __init__(self, n: int, num_classes: int = 10) -> None:
        super().__init__()
        self.inplanes = 16
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(16, n)
        self.layer2 = self._make_layer(32, n, stride=2)
        self.layer3 = self._make_layer(64, n, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64, num_classes)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        layers = [ChenyaofoBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [ChenyaofoBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _randomised(model: nn.Module) -> nn.Module:
    """Random weights and batch-norm statistics far from the defaults: a copy in the wrong
    order or a missed buffer changes the logits."""
    torch.manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _write_akamaster(path, model: nn.Module, with_step_counters: bool) -> None:
    state = {
        f"module.{key}": value
        for key, value in model.state_dict().items()
        if with_step_counters or not key.endswith("num_batches_tracked")
    }
    torch.save({"state_dict": state, "best_prec1": 91.25}, path)


def _agree(reference: nn.Module, imported: nn.Module) -> None:
    x = torch.randn(6, 3, 32, 32)
    for train in (False, True):
        reference.train(train)
        imported.train(train)
        with torch.no_grad():
            expected, got = reference(x), imported(x)
        assert (expected - got).abs().max().item() <= 1e-5, f"train={train}"


@pytest.mark.parametrize("n,with_step_counters", [(3, True), (5, False)])
def test_akamaster_files_import_exactly(capsys, tmp_path, n, with_step_counters):
    reference = _randomised(AkamasterResNet(n))
    _write_akamaster(tmp_path / "resnet.th", reference, with_step_counters)
    status, out, err = run_main(capsys, "import", "akamaster", str(tmp_path / "resnet.th"))
    assert status == 0, err
    run_dir = tmp_path / "runs" / "imported" / f"akamaster_resnet{6 * n + 2}_cifar10"
    assert str(run_dir.relative_to(tmp_path)) in out.replace("\n", "")
    model, info = load_checkpoint(run_dir)
    _agree(reference, model)
    assert info.classes[:3] == ["airplane", "automobile", "bird"] and len(info.classes) == 10
    assert info.mean == (0.485, 0.456, 0.406) and info.input_shape == (3, 32, 32)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "imported" and metrics["best_prec1"] == 91.25
    expected_sha = hashlib.sha256((tmp_path / "resnet.th").read_bytes()).hexdigest()
    assert metrics["source_sha256"] == expected_sha
    status, listing, _ = run_main(capsys, "runs", str(tmp_path / "runs"))
    assert status == 0 and "imported" in listing


@pytest.mark.parametrize("num_classes,data", [(10, "cifar10"), (100, "cifar100")])
def test_chenyaofo_state_dicts_import_exactly(capsys, tmp_path, num_classes, data):
    reference = _randomised(ChenyaofoResNet(3, num_classes))
    torch.save(reference.state_dict(), tmp_path / "cifar_resnet20.pt")
    status, _, err = run_main(
        capsys, "import", "chenyaofo", str(tmp_path / "cifar_resnet20.pt"), "--name", "c20"
    )
    assert status == 0, err
    model, info = load_checkpoint(_imported("c20"))
    _agree(reference, model)
    assert info.config["data"]["name"] == data and len(info.classes) == num_classes
    assert info.model_kwargs["shortcut"] == "B"
    assert info.std == (0.2023, 0.1994, 0.2010)


def _imported(name: str):
    from resdeep.runs import DEFAULT_RUNS_ROOT

    return DEFAULT_RUNS_ROOT / "imported" / name


@pytest.fixture(autouse=True)
def _runs_in_tmp(tmp_path, monkeypatch):
    """Imports land under ./runs: keep them in the test's own folder."""
    monkeypatch.chdir(tmp_path)


def test_a_file_of_the_wrong_shape_is_refused_naming_the_first_mismatch(capsys, tmp_path):
    state = AkamasterResNet(3).state_dict()
    state["layer2.0.conv1.weight"] = torch.zeros(32, 8, 3, 3)
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "bad.th")
    status, _, err = run_main(capsys, "import", "akamaster", str(tmp_path / "bad.th"))
    assert status == 1
    assert err.strip().count("\n") == 0
    assert "module.layer2.0.conv1.weight has shape (32, 8, 3, 3)" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.pt"))
    # The other source's file: one line, no traceback, nothing written.
    torch.save(ChenyaofoResNet(3).state_dict(), tmp_path / "other.pt")
    status, _, err = run_main(capsys, "import", "akamaster", str(tmp_path / "other.pt"))
    assert status == 1 and "state_dict" in err and "Traceback" not in err


def test_a_malicious_file_is_refused_without_running_anything(capsys, tmp_path):
    witness = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(witness), "w"))

    with open(tmp_path / "evil.th", "wb") as stream:
        pickle.dump({"state_dict": Payload()}, stream)
    status, _, err = run_main(capsys, "import", "akamaster", str(tmp_path / "evil.th"))
    assert status == 1 and "weights_only=False" not in err
    assert not witness.exists()
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    status, _, err = run_main(capsys, "import", "chenyaofo", str(tmp_path / "notes.txt"))
    assert status == 1 and "notes.txt" in err and err.strip().count("\n") == 0
    status, _, err = run_main(capsys, "import", "timm", str(tmp_path / "notes.txt"))
    assert status == 2 and "akamaster, chenyaofo" in err


def test_an_existing_run_dir_is_never_overwritten(capsys, tmp_path):
    torch.save(ChenyaofoResNet(3).state_dict(), tmp_path / "c.pt")
    assert run_main(capsys, "import", "chenyaofo", str(tmp_path / "c.pt"))[0] == 0
    status, _, err = run_main(capsys, "import", "chenyaofo", str(tmp_path / "c.pt"))
    assert status == 2 and "already exists" in err  # a target that exists: exit 2


@pytest.mark.parametrize("name", ["../../x", "a/b", "a\\b", "..", ".hidden", ""])
def test_a_name_that_is_not_a_plain_folder_name_is_refused(capsys, tmp_path, name):
    torch.save(ChenyaofoResNet(3).state_dict(), tmp_path / "c.pt")
    before = sorted(tmp_path.rglob("*"))
    status, _, err = run_main(capsys, "import", "chenyaofo", str(tmp_path / "c.pt"), "--name", name)
    assert status == 2 and "plain folder name" in err and err.count("\n") == 1, err
    assert sorted(tmp_path.rglob("*")) == before  # nothing written, inside runs/ or beside it


def test_a_directory_to_import_is_named_as_such(capsys, tmp_path):
    folder = tmp_path / "downloads"
    folder.mkdir()
    _write_akamaster(folder / "resnet20.th", AkamasterResNet(3), True)
    status, _, err = run_main(capsys, "import", "akamaster", str(folder))
    assert status == 1 and err.count("\n") == 1, err
    assert "is a directory" in err and str(folder / "resnet20.th") in err


@pytest.mark.parametrize("command", ["cam", "uncertainty"])
def test_a_published_file_given_as_a_checkpoint_points_at_import(capsys, tmp_path, command):
    _write_akamaster(tmp_path / "resnet20.th", AkamasterResNet(3), True)
    torch.save(ChenyaofoResNet(3).state_dict(), tmp_path / "c.pt")
    Image.new("RGB", (32, 32)).save(tmp_path / "x.png")
    for source, file in (("akamaster", "resnet20.th"), ("chenyaofo", "c.pt")):
        status, _, err = run_main(
            capsys, command, str(tmp_path / "x.png"), "--checkpoint", str(tmp_path / file)
        )
        assert status == 1 and err.count("\n") == 1, err
        assert f"resdeep import {source} {tmp_path / file}" in err
        assert f"runs/imported/{source}_resnet20_cifar10" in err


def test_fine_tuning_starts_from_the_imported_weights(capsys, tmp_path):
    from resdeep.config import compose_train_config
    from resdeep.train.build import build_training

    reference = _randomised(ChenyaofoResNet(3))
    torch.save(reference.state_dict(), tmp_path / "c.pt")
    assert run_main(capsys, "import", "chenyaofo", str(tmp_path / "c.pt"), "--name", "c")[0] == 0
    imported, _ = load_checkpoint(_imported("c"))
    common = [
        "data=synthetic", "data.canvas_size=32", "model=resnet", "model.depth=20",
        "trainer.device=cpu", f"trainer.init_from={_imported('c')}",
    ]  # fmt: skip
    # Same net: every weight, the classifier included, starts as imported.
    training = build_training(compose_train_config([*common, "model.shortcut=B"]), tmp_path / "a")
    for key, value in imported.state_dict().items():
        torch.testing.assert_close(training.model.state_dict()[key], value, msg=key)
    training.loop.close()
    # Five classes instead of ten: all but the classifier.
    training = build_training(
        compose_train_config([*common, "model.shortcut=B", "data.num_classes=5"]), tmp_path / "b"
    )
    started = training.model.state_dict()
    torch.testing.assert_close(
        started["stem.conv.weight"], imported.state_dict()["stem.conv.weight"]
    )
    assert started["classifier.weight"].shape == (5, 64)
    training.loop.close()
    capsys.readouterr()  # only what the command below prints
    # Another shortcut is another network: one line that says what to set.
    status, _, err = run_main(capsys, "train", *common, f"hydra.run.dir={tmp_path / 'wrong'}")
    assert status == 2 and "set model.shortcut=B" in err and err.strip().count("\n") == 0
