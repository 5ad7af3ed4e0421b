"""MC-dropout uncertainty: metrics on hand-made probabilities, sampling, and the real CLI."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from resdeep.checkpoint import read_checkpoint, resolve_checkpoint_path, save_checkpoint
from resdeep.cli import main
from resdeep.data import Split
from resdeep.data.splits import resize
from resdeep.errors import ResdeepError
from resdeep.models import build_model
from resdeep.uncertainty import metrics
from resdeep.uncertainty.data import ood_images
from resdeep.uncertainty.sampling import (
    dropout_sampling,
    is_head_only,
    mc_predict,
    require_dropout,
)

LOG2 = math.log(2.0)


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


# --- metrics on hand-made probabilities -------------------------------------------------------


def test_entropies_and_mutual_information_of_two_disagreeing_samples():
    samples = t([[[1.0, 0.0], [0.0, 1.0]], [[0.5, 0.5], [0.5, 0.5]]])  # (N=2, T=2, C=2)
    assert metrics.predictive_entropy(samples).tolist() == pytest.approx([LOG2, LOG2])
    assert metrics.expected_entropy(samples).tolist() == pytest.approx([0.0, LOG2])
    # Confident but contradicting samples: all epistemic. Agreeing coin flips: all aleatoric.
    assert metrics.mutual_information(samples).tolist() == pytest.approx([LOG2, 0.0])
    assert metrics.variation_ratio(samples)[0].item() == 0.5
    assert metrics.entropy(t([0.25] * 4)).item() == pytest.approx(math.log(4))


def test_mutual_information_is_exactly_zero_when_samples_agree_and_never_negative():
    # 0.1/0.2/0.7 have no exact float mean over 3 copies: the subtraction alone leaves ~1e-17.
    same = t([[0.1, 0.2, 0.7]]).repeat(3, 1)[None]  # (1, 3, 3)
    assert metrics.mutual_information(same).item() == 0.0
    samples = torch.distributions.Dirichlet(torch.ones(5)).sample((200, 8)).double()
    information = metrics.mutual_information(samples)
    assert (information >= 0).all()
    expected = metrics.predictive_entropy(samples) - metrics.expected_entropy(samples)
    assert torch.allclose(information, expected.clamp(min=0), atol=1e-12)


def test_accuracy_nll_brier():
    probs, labels = t([[0.8, 0.2], [0.4, 0.6]]), torch.tensor([0, 0])
    assert metrics.accuracy(probs, labels) == 0.5
    assert metrics.nll(probs, labels) == pytest.approx(-(math.log(0.8) + math.log(0.4)) / 2)
    assert metrics.brier(probs, labels) == pytest.approx((0.08 + 0.72) / 2)
    assert math.isfinite(metrics.nll(t([[1.0, 0.0]]), torch.tensor([1])))  # floored, not inf


def test_expected_calibration_error_by_hand():
    # Bin of 0.9: accuracy 1/2, gap 0.4; bin of 0.6: accuracy 1, gap 0.4; each half the data.
    probs = t([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    labels = torch.tensor([0, 1, 0, 0])
    assert metrics.expected_calibration_error(probs, labels, bins=15) == pytest.approx(0.4)
    confidence, accuracy, count = metrics.reliability_bins(probs, labels, bins=15)
    assert count.sum() == 4 and accuracy[13] == 0.5 and confidence[9] == pytest.approx(0.6)


def test_auroc_average_precision_fpr_and_aurc_by_hand():
    scores, positives = t([0.1, 0.4, 0.35, 0.8]), torch.tensor([False, False, True, True])
    assert metrics.auroc(scores, positives) == pytest.approx(0.75)
    assert metrics.average_precision(scores, positives) == pytest.approx(5 / 6)
    assert metrics.auroc(t([1.0, 1.0]), torch.tensor([False, True])) == 0.5  # a tie: half
    assert metrics.auroc(scores, torch.zeros(4, dtype=torch.bool)) is None
    # Tiny scores outside [0, 1] elsewhere must keep their order (no sigmoid merging them).
    assert metrics.auroc(t([1e-12, 2e-12, 5.0]), torch.tensor([False, True, True])) == 1.0
    # All 3 positives need the threshold at 0.3, which lets 1 of 2 negatives through.
    assert metrics.fpr_at_tpr(
        t([0.9, 0.8, 0.3, 0.5, 0.1]), torch.tensor([True, True, True, False, False])
    ) == pytest.approx(0.5)
    # TPR of exactly 19/20 counts as 95 %.
    scores = torch.cat([t(range(10, 29)), t([-1.0]), t(range(10))])
    positives = torch.arange(30) < 20
    assert metrics.fpr_at_tpr(scores, positives) == 0.0
    # Risk at coverage 1..4: 0, 1/2, 1/3, 2/4.
    wrong = torch.tensor([False, True, False, True])
    assert metrics.aurc(t([0.1, 0.2, 0.3, 0.4]), wrong) == pytest.approx((0.5 + 1 / 3 + 0.5) / 4)
    assert metrics.aurc(t([0.2, 0.2]), torch.tensor([False, True])) == 0.5  # order-free ties


# --- sampling ---------------------------------------------------------------------------------


def small_model(**kwargs) -> nn.Module:
    torch.manual_seed(0)
    return build_model("resnet", depth=8, in_channels=1, num_classes=4, **kwargs).eval()


def test_batch_norm_stays_in_eval_mode_and_every_mode_is_restored():
    model = small_model(dropout=0.3, dropout_at="blocks").train()
    seen = []
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d | nn.Dropout):
            module.register_forward_pre_hook(
                lambda m, _: seen.append((type(m).__name__, m.training))
            )
    stats = {k: v.clone() for k, v in model.state_dict().items()}
    mc_predict(model, torch.randn(5, 1, 8, 8), samples=4, batch_rows=7)
    assert {training for name, training in seen if name == "BatchNorm2d"} == {False}
    assert {training for name, training in seen if name == "Dropout"} == {True, False}
    assert all(torch.equal(stats[k], v) for k, v in model.state_dict().items())
    assert all(module.training for module in model.modules())  # train mode came back
    model.eval()
    with pytest.raises(RuntimeError), dropout_sampling(model):
        raise RuntimeError("boom")
    assert not any(module.training for module in model.modules())


def dropout_head_on_repeated_features(model, inputs, samples, seed):
    """The textbook head path: features once, then nn.Dropout sampling in forward_head."""
    torch.manual_seed(seed)
    with torch.no_grad(), dropout_sampling(model):
        repeated = model.features(inputs).repeat_interleave(samples, dim=0)  # image-major
        return model.forward_head(repeated).softmax(dim=1).view(len(inputs), samples, -1)


def test_head_fast_path_samples_the_same_distribution_as_the_full_forward():
    model = small_model(dropout=0.5)
    model.classifier.weight.data *= 2  # spread-out probabilities: a wrong mask law shows
    assert is_head_only(model)
    inputs = torch.randn(3, 1, 8, 8)
    # 1. Full forwards of the repeated batch (nn.Dropout in train mode) draw the head's masks in
    #    the same order as nn.Dropout on repeated features: the very same samples.
    naive = mc_predict(model, inputs, samples=5, seed=3, head_only=False)
    reference = dropout_head_on_repeated_features(model, inputs, 5, seed=3)
    assert torch.allclose(naive.samples, reference, atol=1e-6)
    # 2. The fast path draws its masks its own way: same law, so per image and class the mean
    #    and spread over 20k samples agree to sampling error (here within 0.008), while
    #    p = 0.4 instead of 0.5, or a missing 1/(1-p), moves one of them by 0.04 or more.
    fast = mc_predict(model, inputs, samples=20_000, seed=3)
    reference = dropout_head_on_repeated_features(model, inputs, 20_000, seed=4)
    assert fast.samples.std(dim=1).max() > 0.2
    assert torch.allclose(fast.samples.mean(dim=1), reference.mean(dim=1), atol=0.02)
    assert torch.allclose(fast.samples.std(dim=1), reference.std(dim=1), atol=0.02)
    assert torch.allclose(fast.deterministic, naive.deterministic, atol=1e-6)
    assert torch.allclose(fast.deterministic, model(inputs).softmax(1), atol=1e-6)
    assert torch.allclose(fast.samples.sum(-1), torch.ones(3, 20_000))


def test_seeded_batched_sampling_is_reproducible_and_leaves_the_global_rng_alone():
    model = small_model(dropout=0.3, dropout_at="blocks")
    inputs = torch.randn(5, 1, 8, 8)
    forwards = []
    model.register_forward_pre_hook(lambda _, args: forwards.append(len(args[0])))
    torch.manual_seed(123)
    first = mc_predict(model, inputs, samples=6, seed=1, batch_rows=16)
    after = torch.rand(1)
    torch.manual_seed(123)
    again = mc_predict(model, inputs, samples=6, seed=1, batch_rows=16)
    assert torch.equal(torch.rand(1), after)
    assert torch.equal(first.samples, again.samples)
    assert not torch.equal(first.samples, mc_predict(model, inputs, samples=6, seed=2).samples)
    # 5 images x 6 samples = 30 rows: two batched forwards of 16 and 14, then 1 deterministic.
    assert forwards[:3] == [16, 14, 5]
    assert first.samples.shape == (5, 6, 4)
    assert torch.allclose(first.samples.sum(-1), torch.ones(5, 6))


@pytest.mark.parametrize("head_only", [True, False])
def test_dropout_p0_gives_exactly_zero_mutual_information(head_only):
    model = small_model()
    model.head_dropout = nn.Dropout(0.0)
    samples = mc_predict(model, torch.randn(4, 1, 8, 8), samples=8, head_only=head_only).samples
    assert torch.equal(metrics.mutual_information(samples.double()), torch.zeros(4))


def test_no_dropout_is_a_clear_error():
    zero = small_model(dropout=0.2)
    zero.head_dropout = nn.Dropout(0.0)  # present, but drops nothing
    for model in (small_model(), zero):
        with pytest.raises(ResdeepError, match=r"model\.dropout>0"):
            require_dropout(model)
    require_dropout(small_model(dropout=0.2, dropout_at="blocks"))


# --- out-of-distribution images ---------------------------------------------------------------


def write_fake_cifar10(root, count: int = 8) -> np.ndarray:
    """CIFAR-10's file layout with `count` random images in every batch."""
    images = np.random.default_rng(0).integers(0, 256, (count, 3, 32, 32), dtype=np.uint8)
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        batch = {"data": images.reshape(count, -1), "labels": [k % 10 for k in range(count)]}
        (base / name).write_bytes(pickle.dumps(batch))
    (base / "batches.meta").write_bytes(pickle.dumps({"label_names": list("abcdefghij")}))
    return images


def test_ood_noise_and_a_torchvision_set_take_the_models_input_shape(tmp_path):
    colour = torch.from_numpy(write_fake_cifar10(tmp_path))
    info = SimpleNamespace(config={"data": {"root": str(tmp_path)}}, input_shape=(1, 8, 8))
    grey = ood_images("cifar10", info, split="test", count=0, seed=0)
    small = resize(Split(colour, torch.zeros(8, dtype=torch.int64)), 8).images
    assert torch.equal(grey, small.float().mean(dim=1, keepdim=True).round().to(torch.uint8))
    noise = ood_images("noise", info, split="test", count=5, seed=1)
    assert noise.dtype == torch.uint8 and noise.shape == (5, 1, 8, 8)
    assert torch.equal(noise, ood_images("noise", info, split="test", count=5, seed=1))


# --- the command ------------------------------------------------------------------------------


def entropy_np(p: np.ndarray) -> np.ndarray:
    return -np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(-1)


def scores_np(samples: np.ndarray) -> dict[str, np.ndarray | None]:
    mean = samples.mean(1)
    information = np.clip(entropy_np(mean) - entropy_np(samples).mean(1), 0, None)
    information[(samples == samples[:, :1]).all(axis=(1, 2))] = 0.0
    return {
        "max_prob": 1 - mean.max(1),
        "entropy": entropy_np(mean),
        "mutual_information": information if samples.shape[1] > 1 else None,
    }


def auroc_np(scores, positives):
    pos, neg = scores[positives], scores[~positives]
    if not len(pos) or not len(neg):
        return None
    return ((pos[:, None] > neg[None]) + 0.5 * (pos[:, None] == neg[None])).mean()


def curve_np(scores, positives):
    thresholds = np.unique(scores)[::-1]
    tp = np.array([(scores[positives] >= th).sum() for th in thresholds])
    fp = np.array([(scores[~positives] >= th).sum() for th in thresholds])
    return tp, fp


def aupr_np(scores, positives):
    tp, fp = curve_np(scores, positives)
    recall = tp / positives.sum()
    return (np.diff(recall, prepend=0) * tp / (tp + fp)).sum()


def fpr95_np(scores, positives):
    tp, fp = curve_np(scores, positives)
    return (fp / (~positives).sum())[tp / positives.sum() >= 0.95 - 1e-6].min()


def aurc_np(scores, wrong):
    values, group = np.unique(scores, return_inverse=True)
    size = np.bincount(group, minlength=len(values))
    errors = np.bincount(group, weights=wrong, minlength=len(values))
    return (size / len(scores) * np.cumsum(errors) / np.cumsum(size)).sum()


def ece_np(mean, labels, bins):
    confidence = mean.max(1).astype(np.float32).astype(np.float64)
    correct = mean.argmax(1) == labels
    index = np.searchsorted(np.linspace(0, 1, bins + 1), confidence, side="right") - 1
    return sum(
        abs((correct[index == b] - confidence[index == b]).sum()) for b in range(bins + 1)
    ) / len(labels)


def section_np(samples, labels, bins):
    mean = samples.mean(1)
    wrong = mean.argmax(1) != labels
    scores = scores_np(samples)
    information = scores["mutual_information"]
    return {
        "accuracy": (~wrong).mean(),
        "nll": -np.log(np.maximum(mean[np.arange(len(labels)), labels], 1e-12)).mean(),
        "brier": ((mean - np.eye(mean.shape[1])[labels]) ** 2).sum(1).mean(),
        "ece": ece_np(mean, labels, bins),
        "mean_predictive_entropy": entropy_np(mean).mean(),
        "mean_expected_entropy": entropy_np(samples).mean(1).mean(),
        "mean_mutual_information": 0.0 if information is None else information.mean(),
        "auroc_misclassification": {
            k: None if s is None else auroc_np(s, wrong) for k, s in scores.items()
        },
        "aurc": {k: None if s is None else aurc_np(s, wrong) for k, s in scores.items()},
    }


def ood_np(inside, outside):
    is_ood = np.r_[np.zeros(len(inside), bool), np.ones(len(outside), bool)]
    result = {}
    for name, score in scores_np(inside).items():
        if score is not None:
            both = np.r_[score, scores_np(outside)[name]]
            result[name] = {
                "auroc": auroc_np(both, is_ood),
                "aupr": aupr_np(both, is_ood),
                "fpr_at_95_tpr": fpr95_np(both, is_ood),
            }
    return result


def assert_close(reported, expected, where=""):
    if isinstance(expected, dict):
        assert set(reported) >= set(expected), where
        for key, value in expected.items():
            assert_close(reported[key], value, f"{where}.{key}")
    elif expected is None:
        assert reported is None, where
    else:
        assert reported == pytest.approx(float(expected), abs=1e-5), where


def command(checkpoint, *args) -> list[str]:
    return ["uncertainty", "--checkpoint", str(checkpoint), *map(str, args)]


def run_main(*args: str) -> int:
    """The real entry point in-process; returns its exit code."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
        raise SystemExit(0)  # a command that succeeds may simply return
    return exit_info.value.code or 0


@pytest.fixture(scope="module")
def heldout_run(train_run):
    # 10 steps in all: a shallow net at the paper's rate, no warm-up, so it learns enough for
    # its uncertainty to mean something (the default warm-up alone lasts 40 steps).
    return train_run(
        "model.dropout=0.2",
        "data.classes=[0,1,2,3,4]",
        "optim.lr=0.1",
        "schedule.warmup_steps=0",
    )


def test_cli_numbers_recompute_from_saved_probs_and_repeat_with_the_seed(
    capsys, heldout_run, tmp_path
):
    args = [*command(heldout_run), "-T", "8", "--seed", "1", "--ood-data", "heldout"]
    saved_to = ["--save-probs", str(tmp_path / "p.npz"), "--plot", str(tmp_path / "plots")]
    torch.manual_seed(7)
    assert run_main(*args, "--json", str(tmp_path / "a.json"), *saved_to) == 0
    first = capsys.readouterr()
    assert "mutual information" in first.out and "AUROC" in first.out, first.err
    # Again, from another global random state: the masks depend on --seed alone.
    torch.manual_seed(99)
    assert run_main(*args, "--json", str(tmp_path / "b.json")) == 0
    first, second = (json.loads((tmp_path / name).read_text()) for name in ("a.json", "b.json"))
    first.pop("cost"), second.pop("cost")  # measured milliseconds: the one thing that varies
    assert first == second

    report = json.loads((tmp_path / "a.json").read_text())
    saved = np.load(tmp_path / "p.npz")
    probs, labels = saved["probs"].astype(np.float64), saved["labels"]
    assert saved["probs"].dtype == np.float32 and labels.dtype == np.int64
    assert probs.shape == (report["n"], 8, 5) and report["samples"] == 8
    deterministic = saved["deterministic_probs"].astype(np.float64)[:, None]
    assert_close(report["deterministic"], section_np(deterministic, labels, 15), "deterministic")
    assert_close(report["mc_dropout"], section_np(probs, labels, 15), "mc_dropout")
    assert report["mc_dropout"]["mean_mutual_information"] > 0
    assert (scores_np(probs)["mutual_information"] >= 0).all()

    ood = report["ood"]
    assert ood["data"] == "heldout" and ood["n"] == len(saved["ood_probs"])
    assert report["n"] + ood["n"] == 359  # digits 5-9 are exactly the rest of the test split
    ood_probs = saved["ood_probs"].astype(np.float64)
    ood_deterministic = saved["ood_deterministic_probs"].astype(np.float64)[:, None]
    assert_close(ood["mc_dropout"], ood_np(probs, ood_probs), "ood.mc_dropout")
    assert_close(ood["deterministic"], ood_np(deterministic, ood_deterministic), "ood.det")
    assert 0.5 < ood["mc_dropout"]["entropy"]["auroc"] <= 1.0
    plots = {"reliability.png", "entropy_correct_vs_wrong.png", "entropy_in_vs_ood.png"}
    assert {p.name for p in (tmp_path / "plots").iterdir()} == plots


def test_cli_noise_ood_and_image_mode(heldout_run, tmp_path, capsys):
    noise_json = tmp_path / "noise.json"
    assert (
        run_main(*command(heldout_run, "-T", "4", "--ood-data", "noise", "--json", noise_json)) == 0
    )
    ood = json.loads(noise_json.read_text())["ood"]
    assert ood["data"] == "noise" and 0.0 <= ood["mc_dropout"]["entropy"]["auroc"] <= 1.0

    image = tmp_path / "digit.png"
    Image.fromarray((np.eye(8) * 255).astype(np.uint8)).save(image)
    assert run_main(*command(heldout_run, image, "-T", "4", "--json", tmp_path / "image.json")) == 0
    scored = json.loads((tmp_path / "image.json").read_text())["images"][0]
    assert len(scored["top"]) == 3 and scored["mutual_information"] >= 0
    assert 0 <= scored["variation_ratio"] <= 0.75
    assert "variation ratio" in capsys.readouterr().out
    # One missing image among good ones: reported, the rest still scored, exit 1 at the end.
    status = run_main(*command(heldout_run, image, tmp_path / "gone.png", "-T", "4"))
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert status == 1 and "digit.png" in captured.out
    assert len(errors) == 2 and "gone.png: no such file" in errors[0]
    assert "1 input(s) could not be processed" in errors[1]


@pytest.mark.parametrize(
    "args,code,message",
    [
        (["--samples", "0"], 2, "--samples must be at least 1"),
        (["--ood-data", "imagenet"], 2, "unknown --ood-data 'imagenet'"),
        (["--split", "train"], 2, "--split must be one of test, val"),
        (["MISSING.png"], 1, "MISSING.png: no such file"),
        (["NOT_AN_IMAGE"], 1, "not an image file"),
    ],
)
def test_cli_errors_are_one_line(heldout_run, tmp_path, capsys, monkeypatch, args, code, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "NOT_AN_IMAGE").write_text("hello")
    assert run_main(*command(heldout_run, *args)) == code
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error and error.count("\n") == 1


def test_an_output_path_that_cannot_be_written_is_refused_before_scoring(
    heldout_run, tmp_path, capsys
):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("a file, not a folder")
    cases = [
        (("--json", tmp_path), f"--json {tmp_path} is a folder; give a file"),
        (("--save-probs", a_file / "p.npz"), f"--save-probs {a_file / 'p.npz'}: {a_file} is a"),
        (("--plot", a_file), f"--plot {a_file} is a file, not a folder"),
    ]
    for extra, message in cases:
        assert run_main(*command(heldout_run, "-T", "2", *extra)) == 2
        captured = capsys.readouterr()
        assert message in captured.err and captured.err.count("\n") == 1, captured.err
        assert "accuracy" not in captured.out  # refused before scoring


def test_cli_refuses_a_checkpoint_without_dropout(heldout_run, tmp_path, capsys):
    payload = read_checkpoint(resolve_checkpoint_path(heldout_run))
    payload["model_kwargs"]["dropout"] = 0.0  # dropout has no weights: the state dict still fits
    save_checkpoint(tmp_path / "plain.pt", payload)
    assert run_main(*command(tmp_path / "plain.pt")) == 2  # sound, but not for MC dropout
    error = capsys.readouterr().err
    assert "train with model.dropout>0" in error and error.count("\n") == 1
    assert run_main(*command(heldout_run, "--ood-data", "noise", "extra.png")) == 2


def test_without_a_checkpoint_the_latest_trained_run_is_scored_and_foreign_images_warned(
    heldout_run, tmp_path, capsys, monkeypatch
):
    import os
    import shutil
    import time

    from tests.test_importing import ChenyaofoResNet

    monkeypatch.chdir(tmp_path)
    shutil.copytree(heldout_run, tmp_path / "runs" / "digits")
    torch.save(ChenyaofoResNet(3).state_dict(), tmp_path / "c.pt")
    assert run_main("import", "chenyaofo", str(tmp_path / "c.pt"), "--name", "cifar") == 0
    stamp = time.time() - 60  # trained before the import
    os.utime(tmp_path / "runs" / "digits" / "checkpoints" / "best.pt", (stamp, stamp))
    capsys.readouterr()
    photo = Path(__file__).parent.parent / "examples" / "photos" / "cat.png"
    assert run_main("uncertainty", str(photo), "-T", "2", "--json", "u.json") == 0
    captured = capsys.readouterr()
    [picked] = [line for line in captured.out.splitlines() if line.startswith("checkpoint:")]
    assert "runs/digits/checkpoints/best.pt" in picked and "latest trained run" in picked
    [warning] = captured.err.strip().splitlines()
    assert warning.startswith(f"warning: {photo}: a colour image") and "8x8 greyscale" in warning
    report = json.loads(Path("u.json").read_text())
    assert report["checkpoint"].startswith("runs/digits/")
    assert warning.endswith(report["images"][0]["warning"])


# ---- temperature scaling ----------------------------------------------------------------------


def test_temperature_is_one_for_a_calibrated_set_and_scaling_matches_the_logits():
    from resdeep.uncertainty.calibration import fit_temperature, scale

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(20_000, 5, generator=generator, dtype=torch.float64) * 2
    probs = logits.softmax(dim=1)
    labels = torch.multinomial(probs, 1, generator=generator).squeeze(1)  # drawn from probs
    assert fit_temperature(probs.unsqueeze(1), labels) == pytest.approx(1.0, abs=0.05)
    # Overconfident by a factor of 2 in the logits: T finds it.
    sharp = (logits * 2).softmax(dim=1)
    assert fit_temperature(sharp.unsqueeze(1), labels) == pytest.approx(2.0, rel=0.05)
    # On probabilities, exactly the scaling of the logits.
    torch.testing.assert_close(scale(probs, 1.7), (logits / 1.7).softmax(dim=1))


def test_temperature_comes_from_val_only():
    from resdeep.uncertainty.calibration import TemperatureScaled, scale
    from resdeep.uncertainty.methods import UncertaintyMethod

    generator = torch.Generator().manual_seed(1)
    table = torch.rand(256, 4, 3, generator=generator).softmax(dim=2)  # (image id, T, C)

    class Lookup(UncertaintyMethod):
        """Samples of a fixed net: looked up by the image's first pixel."""

        name = label = column = "lookup"

        def __call__(self, images, seed):
            return table[images[:, 0, 0, 0].long()]

    def images(n):
        return torch.randint(0, 256, (n, 1, 2, 2), generator=generator, dtype=torch.uint8)

    val, labels = images(50), torch.randint(0, 3, (50,), generator=generator)
    temperatures = []
    for scored in (images(30), images(80)):  # another split to score each time
        method = TemperatureScaled.fit(Lookup(), val, labels, seed=0)
        torch.testing.assert_close(
            method(scored, 0), scale(table[scored[:, 0, 0, 0].long()], method.temperature)
        )
        temperatures.append(method.temperature)
    assert temperatures[0] == temperatures[1]


def test_cli_temperature_scaling_recomputes_from_the_saved_probs(heldout_run, tmp_path, capsys):
    report, probs = tmp_path / "t.json", tmp_path / "t.npz"
    args = ("-T", "4", "--calibrate", "temperature", "--json", report, "--save-probs", probs)
    assert run_main(*command(heldout_run, *args)) == 0
    assert "temp. scaled" in capsys.readouterr().out
    summary, saved = json.loads(report.read_text()), np.load(probs)
    t_det = summary["temperature"]["deterministic"]
    assert summary["temperature"]["fitted_on"] == "val"
    # Independent code: a dense grid over log T on the saved val probabilities, in numpy.
    val, val_labels = saved["val_deterministic_probs"].astype(np.float64), saved["val_labels"]
    grid = np.exp(np.linspace(np.log(1 / 20), np.log(20), 4001))

    def nll(temperature):
        logp = np.log(np.clip(val, 1e-30, None)) / temperature
        logp -= np.log(np.exp(logp - logp.max(1, keepdims=True)).sum(1, keepdims=True)) + logp.max(
            1, keepdims=True
        )
        return -logp[np.arange(len(val_labels)), val_labels].mean()

    best = grid[np.argmin([nll(t) for t in grid])]
    assert t_det == pytest.approx(best, rel=0.01)
    scaled = np.clip(saved["deterministic_probs"].astype(np.float64), 1e-30, None) ** (1 / t_det)
    scaled /= scaled.sum(1, keepdims=True)
    np.testing.assert_allclose(saved["temperature_scaled_probs"], scaled, rtol=1e-6, atol=1e-9)
    labels = saved["labels"]
    expected_nll = -np.log(np.clip(scaled[np.arange(len(labels)), labels], 1e-12, None)).mean()
    assert summary["temperature_scaled"]["nll"] == pytest.approx(expected_nll, rel=1e-6)
    assert saved["mc_dropout_temperature_scaled_probs"].shape == saved["probs"].shape


@pytest.mark.parametrize(
    "args,message",
    [
        (["--calibrate", "platt"], "--calibrate knows temperature"),
        (["--calibrate", "temperature", "--split", "val"], "fits its temperature on the val"),
    ],
)
def test_calibration_refusals(heldout_run, capsys, args, message):
    assert run_main(*command(heldout_run, *args)) == 2
    assert message in capsys.readouterr().err


# ---- deep ensembles ---------------------------------------------------------------------------


def test_members_of_another_data_setting_are_refused(heldout_run, train_run, tmp_path, capsys):
    args = ("--ensemble", heldout_run, "--ensemble", train_run())  # classes 0-4 vs all ten
    assert run_main(*command(heldout_run, *args)) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "members must share data, split and classes" in error
    # The first key that differs, with both values; not two whole configs.
    assert "has data.classes=None where" in error and "has [0, 1, 2, 3, 4]" in error
    assert len(error) < 300, error
    assert run_main(*command(heldout_run, "--ensemble", heldout_run)) == 2
    assert "at least two members" in capsys.readouterr().err


def test_an_ensemble_alone_is_scored_and_members_given_as_images_say_what_to_type(
    heldout_run, tmp_path, capsys, monkeypatch
):
    import shutil

    twin = shutil.copytree(heldout_run, tmp_path / "twin")
    monkeypatch.chdir(tmp_path)  # no runs/ here: nothing else to fall back on
    args = ("--ensemble", heldout_run, "--ensemble", twin, "-T", "2", "--json", "e.json")
    assert run_main("uncertainty", *map(str, args)) == 0
    out = capsys.readouterr().out
    [picked] = [line for line in out.splitlines() if line.startswith("checkpoint:")]
    assert "the ensemble's first member" in picked and "ensemble (M=2)" in out
    summary = json.loads(Path("e.json").read_text())
    assert summary["checkpoint"] == str(heldout_run / "checkpoints" / "best.pt")
    assert summary["ensemble"]["members"] == [
        str(run / "checkpoints" / "best.pt") for run in (heldout_run, twin)
    ]
    # `--ensemble A B` reads B as an image: the line says what to type instead.
    assert run_main("uncertainty", "--ensemble", str(heldout_run), str(twin)) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"--ensemble {heldout_run} --ensemble {twin}" in error
    assert run_main("uncertainty", str(twin)) == 2  # a run dir where an image goes
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"--checkpoint {twin}" in error
    # A member folder without a run: a missing file, exit 1 (as a --checkpoint folder's is).
    (tmp_path / "empty").mkdir()
    assert run_main("uncertainty", "--ensemble", "empty", "--ensemble", str(twin)) == 1
    assert "--ensemble empty: no run with checkpoints/best.pt" in capsys.readouterr().err


def test_one_comparison_of_every_method_with_its_cost(heldout_run, tmp_path, capsys):
    import shutil

    twin = tmp_path / "twin"
    shutil.copytree(heldout_run, twin)
    report, plots_dir, probs = tmp_path / "c.json", tmp_path / "plots", tmp_path / "c.npz"
    args = (
        "-T", "3", "--calibrate", "temperature", "--ensemble", heldout_run, "--ensemble", twin,
        "--ood-data", "heldout", "--plot", plots_dir, "--json", report, "--save-probs", probs,
    )  # fmt: skip
    assert run_main(*command(heldout_run, *args)) == 0
    out = capsys.readouterr().out
    assert "methods compared" in out and "OOD AUROC (heldout)" in out
    summary = json.loads(report.read_text())
    sections = ("deterministic", "mc_dropout", "temperature_scaled",
                "mc_dropout_temperature_scaled", "ensemble")  # fmt: skip
    for section in sections:
        assert set(summary["ood"][section]) >= {"max_prob", "entropy"}, section
        cost = summary["cost"][section]
        assert cost["forward_passes"] >= 1 and cost["ms_per_image"] > 0, section
    assert summary["cost"]["ensemble"]["forward_passes"] == 2
    assert summary["cost"]["mc_dropout"]["head_samples"] == 3  # head-only dropout
    # The ensemble of two identical nets ranks OOD inputs exactly as the net itself does.
    assert summary["ood"]["ensemble"]["entropy"]["auroc"] == pytest.approx(
        summary["ood"]["deterministic"]["entropy"]["auroc"], abs=1e-6
    )
    assert (plots_dir / "reliability_methods.png").is_file()
    # An ensemble of one net twice is that net; its numbers recompute from the saved members.
    ensemble, single = summary["ensemble"], summary["deterministic"]
    for key in ("accuracy", "nll", "brier", "ece"):
        assert ensemble[key] == pytest.approx(single[key], abs=1e-6), key
    assert ensemble["mean_mutual_information"] == pytest.approx(0.0, abs=1e-9)
    saved = np.load(probs)
    members = saved["ensemble_probs"]
    assert members.shape == (len(saved["labels"]), 2, saved["probs"].shape[2])
    accuracy = (members.mean(axis=1).argmax(axis=1) == saved["labels"]).mean()
    assert ensemble["accuracy"] == pytest.approx(accuracy)


def test_a_temperature_fitted_on_too_few_mistakes_comes_with_a_warning():
    from resdeep.uncertainty.calibration import fit_warning

    labels = torch.arange(40) % 4
    right = torch.nn.functional.one_hot(labels, 4).double() * 0.7 + 0.075  # all correct
    warning = fit_warning(right, labels, 0.05)
    assert "40 validation images hold 0 mistake(s)" in warning and "bound" in warning
    wrong = right.roll(1, dims=1)  # every one a mistake
    assert fit_warning(wrong, labels, 1.3) is None
