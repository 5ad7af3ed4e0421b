"""`resdeep lesion`: block deletion is exact, routed path gradients add up to the gradient, draws
come from the seed, and the written numbers recompute from a net lesioned by hand."""

from __future__ import annotations

import itertools
import json
import shutil

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resdeep.lesion.paths import routed_input_gradients
from resdeep.lesion.study import LesionSettings, study_run
from resdeep.lesion.surgery import deletion_plan, intact_plan, plan_logits
from resdeep.models import build_model
from tests.conftest import run_main


def _net(arch: str, depth: int = 8, dtype: torch.dtype = torch.float64) -> nn.Module:
    """A small net with batch-norm statistics that are not the identity, in eval mode."""
    torch.manual_seed(0)
    model = build_model(arch=arch, depth=depth, in_channels=1, num_classes=10).to(dtype)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def _zero_branch(block: nn.Module) -> None:
    """Make a block's residual branch output zero, by hand: the last layer of the branch."""
    if block.__class__.__name__ == "BasicBlock":  # post-activation: ...-conv2-bn2 (+ shortcut)
        block.bn2.weight.data.zero_()
        block.bn2.bias.data.zero_()
        return
    last = block.conv3 if hasattr(block, "conv3") else block.conv2  # pre-activation: ends on a conv
    last.weight.data.zero_()


@pytest.mark.parametrize("arch", ["resnet", "preact"])
def test_deleting_a_block_whose_branch_is_zero_leaves_the_logits_unchanged(arch):
    model = _net(arch, depth=14)
    x = torch.randn(5, 1, 8, 8, dtype=torch.float64)
    blocks = model.blocks()
    for index in range(len(blocks)):
        lesioned = _net(arch, depth=14)
        _zero_branch(lesioned.blocks()[index])
        with torch.no_grad():
            zeroed_logits = lesioned(x)
        plans = [intact_plan(len(blocks)), deletion_plan(len(blocks), [index])]
        with torch.no_grad():
            (_, intact), (_, deleted) = sorted(plan_logits(lesioned, lesioned.stem(x), plans))
        torch.testing.assert_close(intact, zeroed_logits, rtol=0, atol=1e-12)
        torch.testing.assert_close(deleted, zeroed_logits, rtol=0, atol=1e-12)
        # ...and on the untouched net, the deletion is not a no-op
        with torch.no_grad():
            ((_, original),) = plan_logits(model, model.stem(x), plans[1:])
        assert (original - model(x)).abs().max() > 1e-6


@pytest.mark.parametrize("arch", ["resnet", "preact"])
def test_routed_path_gradients_over_all_subsets_sum_to_the_gradient(arch):
    model = _net(arch)  # depth 8: three blocks, two of them change shape
    assert len(model.blocks()) == 3
    x = torch.randn(1, 1, 8, 8, dtype=torch.float64)
    y = torch.tensor([3])
    subsets = torch.tensor(list(itertools.product([False, True], repeat=3)))
    routed = routed_input_gradients(model, x.repeat(8, 1, 1, 1), y.repeat(8), subsets)
    start = model.stem(x).detach().requires_grad_(True)
    h = start
    for block in model.blocks():
        h = block(h)
    loss = F.cross_entropy(model.forward_head(model.after_blocks(h)), y, reduction="sum")
    (full,) = torch.autograd.grad(loss, start)
    assert (routed.sum(dim=0) - full[0]).abs().max() <= 1e-6 * max(1.0, full.abs().max())
    # every path carries some of it: no subset is silently the whole gradient
    assert all(routed[i].abs().max() < full.abs().max() for i in range(8))


def _study(model, seed: int, **settings):
    data = torch.Generator().manual_seed(0)  # the same images every call: only `seed` varies
    x = torch.randn(40, 1, 8, 8, generator=data)
    y = torch.randint(10, (40,), generator=data)
    return study_run(
        model,
        inputs=x,
        labels=y,
        train_inputs=x,
        train_labels=y,
        input_shape=(1, 8, 8),
        settings=LesionSettings(seed=seed, **settings),
        about=dict(run="r", checkpoint="c", arch="resnet", depth=20, seed=0, data="d",
                   init="kaiming", norm="batch", shortcut="A", classes=10),
    )  # fmt: skip


def test_the_k_curve_and_the_paths_come_from_their_seed():
    model = _net("resnet", depth=20, dtype=torch.float32)
    first = _study(model, 7, k_max=4, draws=3, reorder=True, paths=True, path_samples=2)
    again = _study(model, 7, k_max=4, draws=3, reorder=True, paths=True, path_samples=2)
    other = _study(model, 8, k_max=4, draws=3, reorder=True, paths=True, path_samples=2)
    assert first.k_curve == again.k_curve and first.reorder == again.reorder
    assert first.paths == again.paths
    assert first.k_curve["points"][1]["draws"] != other.k_curve["points"][1]["draws"]
    points = first.k_curve["points"]
    assert [p["k"] for p in points] == [1, 2, 3, 4]
    assert all(len(p["draws"]) == 3 and all(len(d) == p["k"] for d in p["draws"]) for p in points)
    # a draw's sets are nested: one more deletion (or swap) each step
    swaps = first.reorder["points"]
    # depth 20: pairs of one shape are 1-2 or 2-3 of stage 1, 2-3 of stages 2 and 3: three at most
    assert [p["k"] for p in swaps] == [1, 2, 3]
    for curve in (points, swaps):
        for draw in range(3):
            sets = [set(p["draws"][draw]) for p in curve]
            assert all(a < b for a, b in zip(sets, sets[1:], strict=False))
    # the shape-changing blocks are never among the k-curve's candidates
    assert "stage2.block1" not in first.k_curve["candidates"]
    window = first.paths["window"]
    assert 0 <= window[0] <= window[1] <= 9 and abs(sum(first.paths["distribution"]) - 1) < 1e-9


def _accuracy_and_nll(model, info, split) -> tuple[float, float]:
    from resdeep.data import normalize

    with torch.no_grad():
        logits = model(normalize(split.images, info.mean, info.std)).double()
    accuracy = (logits.argmax(dim=1) == split.labels).double().mean().item()
    return accuracy, F.cross_entropy(logits, split.labels).item()


def test_the_json_recomputes_from_nets_lesioned_by_hand(capsys, tmp_path, train_run):
    from resdeep.checkpoint import load_checkpoint
    from resdeep.config import checkpoint_data

    sweep = tmp_path / "sweep"
    shutil.copytree(train_run(), sweep / "resnet8_s0")
    shutil.copytree(train_run("model=plain", "trainer.dense_first_epoch=true", epochs=1),
                    sweep / "plain8_s0")  # fmt: skip
    code, out, err = run_main(capsys, "lesion", str(sweep), "--draws", "2", "--paths",
                              "--path-samples", "3", "--reorder")  # fmt: skip
    assert code == 0, err
    assert "1 plain net(s) left out" in out and "plain8_s0" in out
    written = json.loads((sweep / "lesion.json").read_text())
    assert {p.name for p in sweep.glob("lesion_*.png")} == {
        "lesion_blocks.png", "lesion_k_curve.png", "lesion_reorder.png", "lesion_paths.png"
    }  # fmt: skip
    for run in written["runs"]:
        model, info = load_checkpoint(run["checkpoint"])
        split = checkpoint_data(info).test
        accuracy, nll = _accuracy_and_nll(model, info, split)
        assert run["intact"]["accuracy"] == pytest.approx(accuracy, abs=1e-12)
        assert run["intact"]["nll"] == pytest.approx(nll, rel=1e-5)
        for block in run["blocks"]:
            lesioned, _ = load_checkpoint(run["checkpoint"])
            position = dict(lesioned.named_modules())[block["name"]]
            if run["arch"] == "plain":
                if block["changes_shape"]:  # no shortcut to pass: kept, with the reason
                    assert not block["deleted"] and "no shortcut" in block["skipped"]
                    continue
                stage, name = block["name"].split(".")
                setattr(getattr(lesioned, stage), name, nn.Identity())
            else:
                _zero_branch(position)
            accuracy, nll = _accuracy_and_nll(lesioned, info, split)
            assert block["deleted"] and block["accuracy"] == pytest.approx(accuracy, abs=1e-12)
            assert block["nll"] == pytest.approx(nll, rel=1e-5)
            assert block["drop"] == pytest.approx(run["intact"]["accuracy"] - accuracy)
        # depth 8 has one block that keeps its shape: the k-curve deletes it alone
        assert [p["k"] for p in run["k_curve"]["points"]] == [1]
        assert run["k_curve"]["points"][0]["draws"] == [["stage1.block1"]] * 2
    resnet = next(r for r in written["runs"] if r["arch"] == "resnet")
    plain = next(r for r in written["runs"] if r["arch"] == "plain")
    assert resnet["paths"]["blocks"] == 3 and plain["paths"] is None
    assert [g["label"] for g in written["groups"]] == ["plain-8", "resnet-8"]
    # The section the report shows from the file beside it (that `resdeep report` includes it
    # is test_report_with_lesion_runs_the_study_first's check).
    from resdeep.report.lesion_section import read_lesion_section

    section = "\n".join(read_lesion_section(sweep).markdown())
    assert "## Lesion study" in section and "lesion_k_curve.png" in section
    assert written["findings"][0] in section


@pytest.mark.parametrize(
    "args,message",
    [
        (("--split", "train"), "unknown --split 'train'; choose one of test, val"),
        (("--k", "2"), "--k 2: "),
        (("--draws", "0"), "--draws must be at least 1, got 0"),
        (("--jobs", "0"), "--jobs must be at least 1, got 0"),
    ],
)
def test_bad_options_are_one_line_errors(capsys, train_run, args, message):
    code, out, err = run_main(capsys, "lesion", str(train_run()), "--jobs", "1", *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0], err


def test_no_checkpoint_and_paths_on_a_plain_net_are_refused(capsys, tmp_path, train_run):
    code, _, err = run_main(capsys, "lesion", str(tmp_path))
    assert code == 2 and "no checkpoint (checkpoints/best.pt) at or below" in err
    plain = train_run("model=plain", "trainer.dense_first_epoch=true", epochs=1)
    code, _, err = run_main(capsys, "lesion", str(plain), "--paths", "--out", str(tmp_path / "o"))
    assert code == 2 and "no distribution of path lengths" in err.strip().splitlines()[0]
    assert not (tmp_path / "o").exists()  # refused before any work or output


def test_report_with_lesion_runs_the_study_first(capsys, tmp_path, train_run):
    sweep = tmp_path / "sweep"
    shutil.copytree(train_run(), sweep / "resnet8_s0")
    code, out, err = run_main(capsys, "report", str(sweep), "--lesion", "--html")
    assert code == 0, err
    written = json.loads((sweep / "lesion.json").read_text())
    assert [run["arch"] for run in written["runs"]] == ["resnet"]
    assert written["settings"]["paths"] is True  # the net has shortcuts, so its paths are measured
    assert written["runs"][0]["paths"]["blocks"] == 3
    for page in ("report.md", "report.html"):
        text = (sweep / page).read_text()
        assert "Lesion study" in text and written["findings"][0] in text
    assert "Deleting blocks at test time" in out  # the lesion table is printed too


def test_the_gradient_window_is_the_shortest_range_holding_the_share():
    from resdeep.lesion.paths import shortest_window

    assert shortest_window([0, 1, 8, 1, 0], 0.9) == (1, 2)  # 9 of 10 in two lengths, not three
    assert shortest_window([0, 1, 8, 1, 0], 0.8) == (2, 2)
    assert shortest_window([1, 1, 1, 1], 1.0) == (0, 3)
    assert shortest_window([5, 0, 0, 6], 0.5) == (3, 3)  # of equally short ones, the fuller
