"""`resdeep landscape`: filter-normalised directions, slices, planes, lines between nets and the
Hessian's curvature, checked against independent computations on real checkpoints."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from torch import nn

from resdeep.batch_norm import calibrate_batch_norm
from resdeep.landscape.directions import random_directions, trained_weights
from resdeep.landscape.hessian import extreme_eigenvalues, hessian_vector_product, hutchinson_trace
from resdeep.landscape.study import LandscapeSettings, study_net
from resdeep.landscape.surface import Subset
from resdeep.models import build_model
from tests.conftest import run_main

ABOUT = {"arch": "resnet", "depth": 8, "seed": 0, "classes": 10}


def _net_and_subset(seed: int = 0) -> tuple[nn.Module, Subset]:
    torch.manual_seed(seed)
    model = build_model(arch="resnet", depth=8, in_channels=1, num_classes=10, shortcut="A")
    inputs = torch.randn(96, 1, 8, 8)
    calibrate_batch_norm(model, inputs)
    labels = torch.randint(0, 10, (96,))
    return model, Subset("train", inputs, labels, list(range(96)))


def _slice(model: nn.Module, subset: Subset, normalization: str, stats: str = "running"):
    settings = LandscapeSettings(directions=2, points=7, normalization=normalization,
                                 bn_stats=stats)  # fmt: skip
    study = study_net(model, [subset], settings, ABOUT)
    return torch.tensor([curve["loss"]["train"] for curve in study.slices])


def _rescaled(model: nn.Module, factor: float) -> nn.Module:
    """The same function with stage 1's first conv's filters ×factor: its batch norm's running
    statistics and epsilon scaled to match."""
    other = copy.deepcopy(model)
    block = other.stage1.block1
    with torch.no_grad():
        block.conv1.weight.mul_(factor)
        block.bn1.running_mean.mul_(factor)
        block.bn1.running_var.mul_(factor**2)
    block.bn1.eps *= factor**2
    return other


@pytest.mark.parametrize("stats", ["running", "batch"])
def test_filter_normalised_slices_ignore_a_batch_normalised_convs_scale(stats):
    model, subset = _net_and_subset()
    bigger = _rescaled(model, 10.0)
    same = _slice(model, subset, "filter", stats)
    assert torch.allclose(_slice(bigger, subset, "filter", stats), same, rtol=1e-5, atol=0)
    # Along raw Gaussian directions the ×10 filters barely move: another surface.
    raw, raw_bigger = _slice(model, subset, "none", stats), _slice(bigger, subset, "none", stats)
    assert not torch.allclose(raw, raw_bigger, rtol=1e-2)


def test_a_study_leaves_the_net_as_it_found_it():
    """Slices, a plane, a line and batch statistics move the net in place: afterwards every
    tensor of its state, batch norm's counters and its train/eval mode are as before."""
    from resdeep.landscape.study import Line

    model, subset = _net_and_subset()
    model.train()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    other = {name: tensor.clone() * 0.5 for name, tensor in before.items()}
    settings = LandscapeSettings(directions=1, points=5, plane=True, grid=3, bn_stats="batch",
                                 between="other")  # fmt: skip
    study_net(model, [subset], settings, ABOUT, line=Line("a", before, "b", other))
    assert model.training
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]), name


def test_directions_are_reproducible_and_normalised_filter_by_filter():
    model, _ = _net_and_subset()
    weights = trained_weights(model)
    first = random_directions(weights, 3, seed=5)
    again = random_directions(weights, 2, seed=5)
    other = random_directions(weights, 1, seed=6)
    for a, b in zip(first[:2], again, strict=True):
        assert all(torch.equal(a[name], b[name]) for name in a)
    assert not torch.equal(first[0]["stem.conv.weight"], other[0]["stem.conv.weight"])
    for name, weight in weights.items():
        direction = first[0][name]
        if weight.dim() <= 1:  # biases, batch norm's scale and shift: not moved
            assert torch.count_nonzero(direction) == 0, name
        else:
            assert torch.allclose(direction.flatten(1).norm(dim=1), weight.flatten(1).norm(dim=1),
                                  rtol=1e-5), name  # fmt: skip
    layer = random_directions(weights, 1, seed=5, normalization="layer")[0]
    assert torch.allclose(layer["stem.conv.weight"].norm(), weights["stem.conv.weight"].norm())


class _Toy(nn.Module):
    """A few thousand parameters: small enough for the dense Hessian."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(16, 48)
        self.out = nn.Linear(48, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.hidden(x)))


def test_lanczos_and_hutchinson_against_the_dense_hessian():
    torch.manual_seed(0)
    model = _Toy().double()
    inputs, labels = torch.randn(64, 16, dtype=torch.float64), torch.randint(0, 10, (64,))
    product, size = hessian_vector_product(model, inputs, labels)
    names = [name for name, _ in model.named_parameters()]
    start = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    shapes = [p.shape for p in model.parameters()]

    def loss_of(flat: torch.Tensor) -> torch.Tensor:
        pieces = dict(zip(names, (piece.view(s) for piece, s in
                                  zip(flat.split([math.prod(s) for s in shapes]), shapes, strict=True)),
                          strict=True))  # fmt: skip
        logits = torch.func.functional_call(model, pieces, (inputs,))
        return nn.functional.cross_entropy(logits, labels)

    dense = torch.autograd.functional.hessian(loss_of, start)
    assert size == len(start) > 1000
    exact = torch.linalg.eigvalsh(dense)
    lowest, highest, products = extreme_eigenvalues(product, size, tol=1e-6)
    assert highest == pytest.approx(float(exact[-1]), rel=0.01)
    assert lowest == pytest.approx(float(exact[0]), rel=0.01, abs=1e-3 * float(exact[-1]))
    assert products < size  # far fewer products than a dense Hessian needs columns
    trace, spread = hutchinson_trace(product, size, samples=400)
    assert trace == pytest.approx(float(dense.trace()), rel=0.05)
    assert spread > 0


def _loss_on(run, indices: list[int], data_of=None) -> tuple[float, float]:
    """A run's last checkpoint's loss and accuracy on given training images (of its own
    training split, or of `data_of`'s), computed here from scratch."""
    from resdeep.checkpoint import load_checkpoint
    from resdeep.config import checkpoint_data
    from resdeep.data import normalize

    model, info = load_checkpoint(run, name="last.pt")
    data = checkpoint_data(load_checkpoint(data_of or run, name="last.pt")[1])
    inputs = normalize(data.train.images[indices], info.mean, info.std)
    labels = data.train.labels[indices]
    with torch.no_grad():
        logits = model.eval()(inputs)
    return (float(nn.functional.cross_entropy(logits, labels)),
            float((logits.argmax(1) == labels).float().mean()))  # fmt: skip


SMALL = ("--points", "5", "--directions", "1", "--subset", "64", "--jobs", "1")


def test_slice_centre_and_line_ends_are_the_checkpoints_losses(capsys, train_run, tmp_path):
    """Through the real CLI on two trained runs: the slice's centre is the checkpoint's loss on
    the recorded subset, the line's ends are the two checkpoints' losses, the plane's centre is
    the same point, and the report shows the section."""
    first, second = train_run(), train_run("seed=1")
    out = tmp_path / "landscape"
    code, printed, err = run_main(
        capsys, "landscape", str(first), "--between", str(second), "--2d", "--grid", "3",
        "--test", "--out", str(out), *SMALL,
    )  # fmt: skip
    assert code == 0, err
    written = json.loads((out / "landscape.json").read_text())
    [run] = written["runs"]
    indices = run["subsets"]["train"]
    assert len(indices) == 64 == len(set(indices)) and len(run["subsets"]["test"]) == 64
    loss, accuracy = _loss_on(first, indices)
    assert run["centre"]["train"]["loss"] == pytest.approx(loss, rel=1e-6)
    assert run["centre"]["train"]["accuracy"] == pytest.approx(accuracy)
    [curve] = run["slices"]
    assert curve["steps"] == [-1.0, -0.5, 0.0, 0.5, 1.0]
    # The plane's first row is β = -1: its middle point lies on the second direction alone.
    assert len(run["plane"]["loss"]["train"]) == 3 and run["plane"]["steps"] == [-1.0, 0.0, 1.0]
    line = run["interpolation"]
    ends = dict(zip(line["steps"], line["loss"]["train"], strict=True))
    assert ends[0.0] == pytest.approx(loss, rel=1e-6)
    # The other end on the same images (the first run's: a seed draws its own split).
    assert ends[1.0] == pytest.approx(_loss_on(second, indices, data_of=first)[0], rel=1e-5)
    assert line["steps"][0] == -0.5 and line["steps"][-1] == 1.5
    assert {"landscape_1d.png", "landscape_2d.png", "landscape_interpolation.png"} <= {
        path.name for path in out.iterdir()
    }
    assert "sharpness at ±0.25" in printed and "barrier" in printed

    from resdeep.report.landscape_section import read_landscape_section

    section = read_landscape_section(out)
    assert section is not None and section.rows[0][0] == "resnet-8"
    assert "landscape_2d.png" in "\n".join(section.markdown())


def test_a_sweep_against_its_initial_weights_and_in_the_report(capsys, train_run, tmp_path):
    """`--between init` on a sweep of a plain and a residual run: each line runs from the run's
    kept initial weights to its end, findings compare the twins, and `resdeep report` on the
    sweep shows the landscape section."""
    import shutil

    sweep = tmp_path / "sweep"
    for name, overrides in (("plain8_s0", ("model=plain",)), ("resnet8_s0", ())):
        shutil.copytree(train_run(*overrides), sweep / name)
    code, printed, err = run_main(capsys, "landscape", str(sweep), "--between", "init",
                                  "--hessian", "--trace-samples", "2", *SMALL)  # fmt: skip
    assert code == 0, err
    written = json.loads((sweep / "landscape.json").read_text())
    labels = [group["label"] for group in written["groups"]]
    assert labels == ["plain-8", "resnet-8"]
    for run in written["runs"]:
        line = run["interpolation"]
        assert (line["from"], line["to"]) == ("init", "end")
        ends = dict(zip(line["steps"], line["loss"]["train"], strict=True))
        assert ends[1.0] == pytest.approx(run["centre"]["train"]["loss"], rel=1e-6)
    assert any(finding.startswith("Sharpness") and "plain-8" in finding
               for finding in written["findings"])  # fmt: skip
    [curvature] = [f for f in written["findings"] if f.startswith("Top Hessian eigenvalue")]
    assert "|λmin|/λmax" in curvature and "resnet-8" in curvature
    for run in written["runs"]:
        curvature = run["curvature"]
        assert curvature["eigen_products"] > 0 and curvature["trace_samples"] == 2
        assert curvature["negative_ratio"] == pytest.approx(
            max(-curvature["lambda_min"], 0) / curvature["lambda_max"]
        )
    # The section the report shows from landscape.json (that `resdeep report` includes it is
    # test_report_runs_the_landscape_with_its_defaults's check).
    from resdeep.report.landscape_section import read_landscape_section

    document = "\n".join(read_landscape_section(sweep).markdown())
    assert "## Loss landscape around the trained weights (Li et al. 2018)" in document
    assert "| plain-8 | 1 |" in document


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--points", "4"), "--points must be odd"),
        (("--radius", "2"), "--radius must be in"),
        (("--normalization", "unit"), "--normalization must be one of"),
        (("--between", "seeds"), "--between seeds needs two runs of each setting"),
        (("--between", "seed"), "give init, seeds or a run dir"),
        (("--max-minutes", "0.0001"), "this study would take about"),
    ],
)
def test_bad_input_is_one_line(capsys, train_run, extra, message):
    code, _, err = run_main(capsys, "landscape", str(train_run()), *SMALL, *extra)
    assert code != 0 and message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_a_line_between_different_networks_is_refused(capsys, train_run):
    code, _, err = run_main(capsys, "landscape", str(train_run()), "--between",
                            str(train_run("model=plain")), *SMALL)  # fmt: skip
    assert code != 0 and "not the same network" in err and "arch" in err, err


def test_a_checkpoint_without_its_data_is_refused(capsys, train_run, tmp_path):
    from resdeep.checkpoint import read_checkpoint, save_checkpoint

    payload = read_checkpoint(train_run() / "checkpoints" / "last.pt")
    payload["config"] = {}
    bare = tmp_path / "bare" / "checkpoints" / "last.pt"
    save_checkpoint(bare, payload)
    code, _, err = run_main(capsys, "landscape", str(bare), *SMALL)
    assert code != 0 and "holds no data config" in err and "Traceback" not in err, err


def test_report_runs_the_landscape_with_its_defaults(capsys, train_run, tmp_path):
    import shutil

    sweep = tmp_path / "sweep"
    shutil.copytree(train_run(), sweep / "resnet8_s0")
    code, _, err = run_main(capsys, "report", str(sweep), "--landscape")
    assert code == 0, err
    written = json.loads((sweep / "landscape.json").read_text())
    assert written["settings"]["points"] == 21 and len(written["runs"][0]["slices"]) == 2
    assert "## Loss landscape around the trained weights" in (sweep / "report.md").read_text()


def test_the_initial_weights_of_an_imported_net_are_not_made_up(capsys, train_run, tmp_path):
    """A run without init.pt is rebuilt from its seed, but an imported net's training started
    elsewhere: --between init refuses it in one line."""
    import shutil

    run = tmp_path / "imported"
    shutil.copytree(train_run(), run)
    (run / "checkpoints" / "init.pt").unlink()
    metrics = json.loads((run / "metrics.json").read_text()) | {"status": "imported"}
    (run / "metrics.json").write_text(json.dumps(metrics))
    code, _, err = run_main(capsys, "landscape", str(run), "--between", "init", *SMALL)
    assert code != 0 and "is an imported net" in err and "Traceback" not in err, err


def test_two_seeds_are_joined_by_one_line(capsys, train_run, tmp_path):
    import shutil

    sweep = tmp_path / "sweep"
    for name, overrides in (("resnet8_s0", ()), ("resnet8_s1", ("seed=1",))):
        shutil.copytree(train_run(*overrides), sweep / name)
    code, _, err = run_main(capsys, "landscape", str(sweep), "--between", "seeds", *SMALL)
    assert code == 0, err
    runs = json.loads((sweep / "landscape.json").read_text())["runs"]
    lines = [run["interpolation"] for run in runs if run["interpolation"]]
    assert len(runs) == 2 and len(lines) == 1  # the same segment is not measured twice
    assert lines[0]["from"].endswith("resnet8_s0/checkpoints/last.pt")
    assert lines[0]["to"].endswith("resnet8_s1/checkpoints/last.pt")
