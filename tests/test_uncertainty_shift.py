"""`resdeep uncertainty --shift` and `--laplace`: the corruptions, the last-layer Laplace
posterior, and the command's numbers, files and refusals."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from resdeep.checkpoint import (
    load_checkpoint,
    read_checkpoint,
    resolve_checkpoint_path,
    save_checkpoint,
)
from resdeep.config import checkpoint_data
from resdeep.errors import UsageError
from resdeep.models import build_model
from resdeep.uncertainty import metrics
from resdeep.uncertainty.calibration import fit_temperature
from resdeep.uncertainty.laplace import (
    LastLayerLaplace,
    gauss_newton,
    require_linear_classifier,
    with_bias_input,
)
from resdeep.uncertainty.methods import Deterministic
from resdeep.uncertainty.shift import KINDS, corrupt, parse_severities
from tests.conftest import run_main
from tests.test_uncertainty import auroc_np, scores_np, section_np

# tests/test_uncertainty.py's net (the session trains it once): digits 0-4, dropout before the
# classifier, 10 steps at the paper's rate.
SHIFT_TRAINING = (
    "model.dropout=0.2", "data.classes=[0,1,2,3,4]", "optim.lr=0.1", "schedule.warmup_steps=0",
)  # fmt: skip


@pytest.fixture(scope="module")
def dropout_run(train_run):
    return train_run(*SHIFT_TRAINING)


@pytest.fixture(scope="module")
def second_seed(train_run):
    return train_run(*SHIFT_TRAINING, "seed=1")


def random_images(count: int = 6, side: int = 8, channels: int = 1, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, channels, side, side), generator=generator).to(torch.uint8)


# -- corruptions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_corruption_is_the_identity_at_severity_0_and_deterministic_for_a_seed(kind):
    images = random_images(channels=3, side=12)
    assert torch.equal(corrupt(images, kind, 0, seed=5), images)
    top = KINDS[kind].max_severity
    first, again = corrupt(images, kind, top, seed=5), corrupt(images, kind, top, seed=5)
    assert first.dtype == torch.uint8 and first.shape == images.shape
    assert torch.equal(first, again) and not torch.equal(first, images)
    other_seed = corrupt(images, kind, top, seed=6)
    # Only the noise draws anything: every other corruption ignores the seed.
    assert torch.equal(other_seed, first) == (kind != "gaussian_noise")


def test_rotation_by_90_degrees_four_times_returns_the_image():
    # Bilinear, but at a quarter turn every sample lands on a pixel centre: exact, on odd and
    # even sides, and equal to torch.rot90 (counter-clockwise).
    quarter = KINDS["rotation"].parameters.index(90.0) + 1
    for side in (8, 9):
        images = random_images(side=side, channels=3)
        turned = corrupt(images, "rotation", quarter)
        assert torch.equal(turned, torch.rot90(images, 1, dims=(2, 3)))
        for _ in range(3):
            turned = corrupt(turned, "rotation", quarter)
        assert torch.equal(turned, images)
    half = KINDS["rotation"].parameters.index(180.0) + 1
    assert torch.equal(corrupt(images, "rotation", half), images.flip(2, 3))


def test_translation_shifts_right_and_fills_black():
    images = random_images(side=14)
    shifted = corrupt(images, "translation", 7)  # half the width: 7 pixels exactly
    assert torch.equal(shifted[..., 7:], images[..., :7]) and not shifted[..., :7].any()
    one = corrupt(images, "translation", 1)  # 1/14 of 14 pixels
    assert torch.equal(one[..., 1:], images[..., :-1])
    # Between pixels, bilinear with black beyond the edge, blended once: 8/14 px into a flat 200
    # leaves the first column at 200 * (1 - 8/14) = 85.7 (a fill value would darken it to 37).
    flat = torch.full((1, 1, 8, 8), 200, dtype=torch.uint8)
    edge = corrupt(flat, "translation", 1)
    assert (edge[..., 0] == 86).all() and (edge[..., 1:] == 200).all()


def test_blur_noise_and_contrast_follow_cifar_10_c():
    # Blur: a lone bright pixel spreads into the normalised, separable Gaussian of CIFAR-10-C's
    # scikit-image filter (sampled at whole pixels, cut at 4σ), whatever the image's size.
    sigma = KINDS["gaussian_blur"].parameter(5)
    dot = torch.zeros((1, 1, 15, 15), dtype=torch.uint8)
    dot[..., 7, 7] = 255
    offsets = np.arange(-4, 5)
    kernel = np.exp(-(offsets**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    expected = np.zeros((15, 15))
    expected[3:12, 3:12] = np.outer(kernel, kernel) * 255
    blurred = corrupt(dot, "gaussian_blur", 5)[0, 0].double().numpy()
    assert np.abs(blurred - np.round(expected)).max() <= 1
    tiny = random_images(side=2, channels=3)  # smaller than the kernel: edges extended
    assert corrupt(tiny, "gaussian_blur", 5).shape == tiny.shape

    grey = torch.full((1, 1, 64, 64), 128, dtype=torch.uint8)
    std = KINDS["gaussian_noise"].parameter(5)
    noisy = (corrupt(grey, "gaussian_noise", 5, seed=3).double() - 128) / 255
    assert noisy.std().item() == pytest.approx(std, rel=0.05) and abs(noisy.mean()) < 0.01
    # One draw per seed, scaled by each severity's std: stronger severities only scale it.
    weak = (corrupt(grey, "gaussian_noise", 1, seed=3).double() - 128) / 255
    ratio = KINDS["gaussian_noise"].parameter(1) / std
    assert (weak - noisy * ratio).abs().max() <= 1 / 255 + 1e-9

    # Contrast: every channel pulled towards its own mean (colour images keep their cast).
    images = random_images(count=2, side=12, channels=3)
    factor = KINDS["contrast"].parameter(5)
    flat = corrupt(images, "contrast", 5).double()
    mean = images.double().mean(dim=(2, 3), keepdim=True)
    assert (flat - (mean + factor * (images.double() - mean))).abs().max() <= 0.5 + 1e-6


def test_severities_parse_with_the_clean_split_first_and_refuse_what_a_kind_lacks():
    assert parse_severities("6,3", ["rotation"]) == {"rotation": [0, 3, 6]}
    assert parse_severities(None, ["contrast"]) == {"contrast": [0, 1, 2, 3, 4, 5]}
    with pytest.raises(UsageError, match="out of range for contrast: its severities are 0-5"):
        parse_severities("0,6", ["rotation", "contrast"])
    for text in ("a,b", "1_0", "1.5"):
        with pytest.raises(UsageError, match="whole numbers"):
            parse_severities(text, ["rotation"])
    for text in ("0", "", " , "):
        with pytest.raises(UsageError, match="names no shifted severity"):
            parse_severities(text, ["rotation"])
    with pytest.raises(UsageError, match="--severities -1 is out of range for rotation"):
        parse_severities("-1,2", ["rotation"])


# -- last-layer Laplace --------------------------------------------------------------------------


def test_the_gauss_newton_matrix_is_the_exact_hessian_of_the_last_layer():
    # Logits are linear in the last layer's weights, so its GGN is the true Hessian of the
    # summed cross-entropy: autograd's, in the same (class-major) order.
    generator = torch.Generator().manual_seed(0)
    features = with_bias_input(torch.randn(20, 4, generator=generator, dtype=torch.float64))
    labels = torch.randint(0, 3, (20,), generator=generator)
    theta = torch.randn(3, 5, generator=generator, dtype=torch.float64)

    def loss(flat: torch.Tensor) -> torch.Tensor:
        logits = features @ flat.view(3, 5).T
        return nn.functional.cross_entropy(logits, labels, reduction="sum")

    exact = torch.autograd.functional.hessian(loss, theta.flatten())
    probs = torch.softmax(features @ theta.T, dim=1)
    assert torch.allclose(gauss_newton(features, probs), exact, atol=1e-10)


@pytest.fixture(scope="module")
def fitted(dropout_run):
    model, info = load_checkpoint(dropout_run)
    data = checkpoint_data(info)
    laplace = LastLayerLaplace.fit(
        model, info, train_images=data.train.images, val_images=data.val.images,
        val_labels=data.val.labels, samples=16, seed=0,
    )  # fmt: skip
    return model, info, data, laplace


def test_laplace_with_an_infinite_prior_is_the_deterministic_net(fitted):
    model, info, data, laplace = fitted
    features = laplace.features(data.test.images)
    point = laplace.predict(features, math.inf, seed=0)  # (N, T, C): T copies of one answer
    deterministic = Deterministic(model, info)(data.test.images, 0)  # (N, 1, C)
    assert (point - deterministic).abs().max().item() <= 1e-6
    assert metrics.mutual_information(point.double()).max().item() == 0.0


def test_laplace_predictive_entropy_grows_as_the_prior_precision_falls(fitted):
    _, _, data, laplace = fitted
    features = laplace.features(data.test.images)
    entropies = [
        metrics.predictive_entropy(laplace.predict(features, precision, 0).double()).mean()
        for precision in (1e4, 1e2, 1.0, 1e-2)
    ]
    assert all(a < b for a, b in zip(entropies, entropies[1:], strict=False)), entropies


def test_laplace_weight_samples_have_the_posterior_covariance():
    # H of a small head, its weight draws' covariance against (H + δI)^-1: sampling along the
    # wrong axes of H (V instead of Vᵀ) or with the wrong power of the spectrum fails this.
    generator = torch.Generator().manual_seed(1)
    features = with_bias_input(torch.randn(200, 3, generator=generator, dtype=torch.float64))
    probs = torch.softmax(torch.randn(200, 3, generator=generator, dtype=torch.float64), dim=1)
    hessian = gauss_newton(features, probs)
    eigenvalues, eigenvectors = torch.linalg.eigh(hessian)
    laplace = LastLayerLaplace.__new__(LastLayerLaplace)
    laplace.eigenvalues, laplace.eigenvectors = eigenvalues.clamp(min=0), eigenvectors
    laplace.mean, laplace.samples = torch.zeros(3, 4, dtype=torch.float64), 100_000
    draws = laplace.weight_samples(0.5, seed=0).reshape(100_000, -1)
    expected = torch.linalg.inv(hessian + 0.5 * torch.eye(12, dtype=torch.float64))
    gap = torch.linalg.matrix_norm(draws.T @ draws / len(draws) - expected)
    assert gap / torch.linalg.matrix_norm(expected) < 0.03
    # The draws depend on H, not on the basis eigh returns: flipped eigenvectors, same draws.
    signs = torch.tensor([1.0, -1.0] * 6, dtype=torch.float64)
    laplace.eigenvectors = eigenvectors * signs
    flipped = laplace.weight_samples(0.5, seed=0).reshape(100_000, -1)
    assert torch.allclose(flipped, draws, atol=1e-10)


def test_the_marginal_likelihood_prior_is_mackays_fixed_point(fitted):
    # At the evidence's maximum δ = γ / |θ*|², γ = Σ λ / (λ + δ) the well-determined parameters.
    _, _, _, laplace = fitted
    delta = laplace.prior_precision
    gamma = (laplace.eigenvalues / (laplace.eigenvalues + delta)).sum().item()
    assert delta == pytest.approx(gamma / laplace.mean.square().sum().item(), rel=1e-3)
    record = laplace.fit_record
    assert record["prior"] == "marglik" and record["fitted_on"] == "train"
    assert record["parameters"] == laplace.mean.numel()


def test_laplace_without_validation_images(fitted):
    # marglik needs none (its numbers come from the training split); val-nll is refused.
    model, info, data, _ = fitted
    empty = {"val_images": data.val.images[:0], "val_labels": data.val.labels[:0]}
    laplace = LastLayerLaplace.fit(
        model, info, train_images=data.train.images, samples=4, seed=0, **empty
    )
    assert laplace.fit_record["val_nll"] is None and laplace.fit_record["val_n"] == 0
    with pytest.raises(UsageError, match="val-nll needs validation images"):
        LastLayerLaplace.fit(
            model, info, train_images=data.train.images, samples=4, seed=0, prior="val-nll",
            **empty,
        )  # fmt: skip


def test_laplace_refuses_a_net_without_one_linear_classifier():
    model = build_model("resnet", depth=8, num_classes=10, in_channels=1)
    require_linear_classifier(model, "net")  # 10 x 65 parameters: fine
    model.classifier = nn.Sequential(nn.Linear(64, 10))
    with pytest.raises(UsageError, match="classifier is one linear layer; net has Sequential"):
        require_linear_classifier(model, "net")
    model.classifier = nn.Linear(64, 1000)
    with pytest.raises(UsageError, match="at most 8192 parameters; net's classifier has 65000"):
        require_linear_classifier(model, "net")
    model.classifier = nn.Linear(64, 10, bias=False)
    with pytest.raises(UsageError, match="net has a linear layer without a bias"):
        require_linear_classifier(model, "net")


def test_the_gauss_newton_blocks_of_a_many_class_head():
    # Built by class blocks, never as an (N, C, C, F+1) product (21 GB for a chunk of 4,096
    # images of a 100-class head): each block checked by hand, Σ_n (δ_ab p_a - p_a p_b) φ φᵀ.
    generator = torch.Generator().manual_seed(2)
    features = with_bias_input(torch.randn(5000, 32, generator=generator, dtype=torch.float64))
    probs = torch.softmax(torch.randn(5000, 50, generator=generator, dtype=torch.float64), 1)
    hessian = gauss_newton(features, probs)  # two chunks of images
    assert hessian.shape == (50 * 33, 50 * 33)
    for a, b in ((3, 7), (12, 12)):
        weights = (a == b) * probs[:, a] - probs[:, a] * probs[:, b]
        block = (features * weights[:, None]).T @ features
        rows, columns = slice(a * 33, (a + 1) * 33), slice(b * 33, (b + 1) * 33)
        assert torch.allclose(hessian[rows, columns], block, atol=1e-9)


# -- the command -----------------------------------------------------------------------------------

NUMBERS = (
    "accuracy", "nll", "brier", "ece", "mean_predictive_entropy", "mean_expected_entropy",
    "mean_mutual_information", "auroc_misclassification", "aurc",
)  # fmt: skip


def shift_json(directory) -> dict:
    return json.loads((directory / "shift.json").read_text())


def test_severity_0_reproduces_todays_numbers_and_temperature_comes_from_clean_val(
    dropout_run, tmp_path, capsys
):
    common = ["uncertainty", "--checkpoint", str(dropout_run), "-T", "8", "--calibrate",
              "temperature", "--laplace"]  # fmt: skip
    assert run_main(capsys, *common, "--json", str(tmp_path / "today.json"))[0] == 0
    today = json.loads((tmp_path / "today.json").read_text())
    for kinds, out in (("rotation", "a"), ("contrast,gaussian_noise", "b")):
        code, stdout, stderr = run_main(
            capsys, *common, "--shift", kinds, "--severities", "0,2", "--out", str(tmp_path / out)
        )
        assert code == 0, stderr
    shifted = shift_json(tmp_path / "a")
    clean = [r for r in shifted["records"] if r["kind"] == "clean"]
    assert {r["method"] for r in clean} == {
        "deterministic", "mc_dropout", "temperature_scaled", "mc_dropout_temperature_scaled",
        "laplace",
    }  # fmt: skip
    for record in clean:
        for key in NUMBERS:
            assert record[key] == today[record["method"]][key], (record["method"], key)
    # The temperatures: today's, the same whichever shifts are scored (they choose nothing), and
    # the ones fitted on the clean validation split's probabilities.
    other = shift_json(tmp_path / "b")
    fitted = shifted["temperature"][0]
    assert fitted["fitted_on"] == "val"
    for name in ("deterministic", "mc_dropout"):
        assert fitted[name] == today["temperature"][name] == other["temperature"][0][name]
    model, info = load_checkpoint(dropout_run)
    val = checkpoint_data(info).val
    val_probs = Deterministic(model, info)(val.images, 0).double()
    assert fitted["deterministic"] == pytest.approx(fit_temperature(val_probs, val.labels))
    assert shifted["laplace"][0]["prior_precision"] == today["laplace"]["prior_precision"]


def test_shift_numbers_recompute_from_saved_probs_with_tables_and_a_figure(
    dropout_run, tmp_path, capsys
):
    out, probs_file = tmp_path / "shift", tmp_path / "p.npz"
    code, stdout, stderr = run_main(
        capsys, "uncertainty", "--checkpoint", str(dropout_run), "-T", "4", "--shift",
        "rotation,translation", "--severities", "0,1,6", "--laplace", "--laplace-prior", "val-nll",
        "--out", str(out), "--save-probs", str(probs_file),
    )  # fmt: skip
    assert code == 0, stderr
    assert "rotation: digits test" in stdout and "translation: digits test" in stdout
    assert "90°" in stdout and "43% of width" in stdout
    assert (out / "shift.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = shift_json(out)
    saved = np.load(probs_file)
    labels = saved["labels"]
    assert report["kinds"]["rotation"]["parameters"] == [0.0, 15.0, 90.0]
    assert len(report["records"]) == 5 * 3  # (clean + 2 severities x 2 kinds) x 3 methods
    clean_probs = {}
    for record in report["records"]:
        key = f"{record['run']}/{record['kind']}/{record['severity']}/{record['method']}"
        probs = saved[key].astype(np.float64)
        samples = probs[:, None] if probs.ndim == 2 else probs
        expected = section_np(samples, labels, report["bins"])
        assert record["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-12), key
        for name in ("nll", "brier", "ece", "mean_mutual_information"):
            assert record[name] == pytest.approx(expected[name], abs=1e-6), (key, name)
        if record["kind"] == "clean":
            clean_probs[record["method"]] = samples
        else:  # telling shifted from clean by entropy, as the table's last column
            ood = shift_auroc_np(clean_probs[record["method"]], samples)
            assert record["shift_detection"]["entropy"]["auroc"] == pytest.approx(ood, abs=1e-6)
    curve = report["curves"]["rotation"]["deterministic"]["accuracy"]
    assert curve["mean"][2] == curve["min"][2] == curve["max"][2] and curve["std"][2] == 0
    assert report["laplace"][0]["chosen_by"] == "validation NLL over a log grid"
    # The summary table: each method's ECE averaged over a kind's shifted severities.
    assert "ECE: clean, and averaged over each kind's shifted severities" in " ".join(
        stdout.split()
    )
    for kind in ("rotation", "translation"):
        for method, values in report["curves"][kind].items():
            shifted = values["ece"]["mean"][1:]
            average = report["averages"][kind][method]["ece"]
            assert average == pytest.approx(sum(shifted) / len(shifted), abs=1e-12)


def shift_auroc_np(clean: np.ndarray, shifted: np.ndarray) -> float:
    """Predictive entropy telling shifted (positive) from clean images, by pair counting."""
    scores = np.concatenate([scores_np(clean)["entropy"], scores_np(shifted)["entropy"]])
    return auroc_np(scores, np.r_[np.zeros(len(clean)), np.ones(len(shifted))].astype(bool))


def test_an_ensemble_gives_each_methods_spread_over_its_seeds(
    dropout_run, second_seed, tmp_path, capsys
):
    code, stdout, stderr = run_main(
        capsys, "uncertainty", "--checkpoint", str(dropout_run / "checkpoints" / "best.pt"),
        "--ensemble", str(dropout_run), "--ensemble", str(second_seed), "-T", "4", "--shift",
        "contrast", "--severities", "0,5", "--out", str(tmp_path),
    )  # fmt: skip
    assert code == 0, stderr
    assert "mean of 2 runs" in stdout
    report = shift_json(tmp_path)
    # The checkpoint is the first member under another path: two runs, not three.
    assert len(report["runs"]) == 2 and len(report["ensemble"]) == 2
    runs = {(r["run"], r["method"]) for r in report["records"]}
    assert runs == {("run0", "deterministic"), ("run0", "mc_dropout"), ("run1", "deterministic"),
                    ("run1", "mc_dropout"), ("ensemble", "ensemble")}  # fmt: skip
    curve = report["curves"]["contrast"]["deterministic"]["ece"]
    per_run = [r["ece"] for r in report["records"]
               if r["method"] == "deterministic" and r["kind"] == "contrast"]  # fmt: skip
    assert curve["min"][1] == min(per_run) and curve["max"][1] == max(per_run)
    assert curve["mean"][1] == pytest.approx(sum(per_run) / 2) and curve["std"][1] > 0
    assert report["curves"]["contrast"]["ensemble"]["runs"] == 1


def test_laplace_scores_a_net_without_dropout(dropout_run, tmp_path, capsys):
    payload = read_checkpoint(resolve_checkpoint_path(dropout_run))
    payload["model_kwargs"]["dropout"] = 0.0
    save_checkpoint(tmp_path / "plain.pt", payload)
    code, stdout, stderr = run_main(
        capsys, "uncertainty", "--checkpoint", str(tmp_path / "plain.pt"), "-T", "4",
        "--laplace", "--json", str(tmp_path / "u.json"),
    )  # fmt: skip
    assert code == 0, stderr
    assert "has no dropout, so MC dropout is left out" in " ".join(stdout.split())
    report = json.loads((tmp_path / "u.json").read_text())
    assert "mc_dropout" not in report and report["laplace"]["mean_mutual_information"] > 0
    code, _, stderr = run_main(capsys, "uncertainty", "--checkpoint", str(tmp_path / "plain.pt"))
    assert code == 2 and "train with model.dropout>0" in stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["--shift", "fog"], "unknown --shift kind 'fog'; choose from rotation, gaussian_noise"),
        (["--shift", "contrast", "--severities", "0,9"], "--severities 9 is out of range for"),
        (["--shift", "rotation", "--split", "val"], "--shift corrupts the test split"),
        (["--shift", "rotation", "--ood-data", "noise"], "--shift and --ood-data are separate"),
        (["--shift", "rotation", "--json", "x.json"], "go to --out (shift.json, shift.png)"),
        (["--severities", "0,1"], "--severities belongs to --shift"),
        (["--laplace", "--laplace-prior", "-1"], "--laplace-prior takes marglik or val-nll"),
        (["--shift", "rotation", "IMG.png"], "--shift corrupts the test split; drop the images"),
        (["--laplace-prior", "val-nll"], "--laplace-prior belongs to --laplace; add --laplace"),
        (["--laplace", "IMG.png"], "--laplace scores a data set; drop it when giving images"),
        (["--laplace", "--laplace-prior", "val-nll", "--split", "val"], "chooses its prior on the"),
        (["--shift", "all,rotation"], "--shift all stands alone"),
        (["--shift", "rotation", "--split", "tset"], "--split must be one of test, val"),
        (["--shift", "rotation", "--out", "a_file.txt"], "--out a_file.txt is a file, not a fold"),
    ],
)
def test_shift_and_laplace_refusals_are_one_line(
    dropout_run, capsys, tmp_path, monkeypatch, args, message
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file.txt").write_text("a file, not a folder")
    code, stdout, stderr = run_main(capsys, "uncertainty", "--checkpoint", str(dropout_run), *args)
    assert code == 2 and stderr.startswith("error: ") and message in stderr, stderr
    assert stderr.count("\n") == 1 and "acc." not in stdout


@pytest.mark.slow
def test_an_imported_cifar_net_gets_laplace_and_shift_without_dropout(
    tmp_path, capsys, monkeypatch
):
    # A published ResNet-20 in akamaster's format (random weights: only the path is tested) and
    # CIFAR-10's file layout with 1,001 images a batch, so 5 training images remain beside the
    # 5,000 the run's config holds out for validation.
    from tests.test_importing import AkamasterResNet, _randomised, _write_akamaster
    from tests.test_uncertainty import write_fake_cifar10

    monkeypatch.chdir(tmp_path)
    write_fake_cifar10(tmp_path / "data", count=1001)
    _write_akamaster(tmp_path / "resnet.th", _randomised(AkamasterResNet(3)), True)
    assert run_main(capsys, "import", "akamaster", str(tmp_path / "resnet.th"))[0] == 0
    run_dir = tmp_path / "runs" / "imported" / "akamaster_resnet20_cifar10"
    code, stdout, stderr = run_main(
        capsys, "uncertainty", "--checkpoint", str(run_dir), "--laplace", "-T", "4",
        "--shift", "rotation", "--severities", "0,6", "--out", str(tmp_path / "shift"),
    )  # fmt: skip
    assert code == 0, stderr
    assert "MC dropout is left out" in " ".join(stdout.split()) and "last-layer Laplace" in stdout
    report = shift_json(tmp_path / "shift")
    assert set(report["methods"]) == {"deterministic", "laplace"}
    assert report["n"] == 1001 and report["laplace"][0]["train_n"] == 5


def test_without_out_the_files_go_to_the_checkpoints_run_dir(dropout_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(dropout_run, run)
    args = ("uncertainty", "--checkpoint", str(run), "-T", "2", "--shift", "rotation")
    code, stdout, stderr = run_main(capsys, *args, "--severities", "0,6")
    assert code == 0, stderr
    assert {"shift.json", "shift.png"} <= {path.name for path in run.iterdir()}
    assert shift_json(run)["kinds"]["rotation"]["shown"] == ["clean", "90°"]
