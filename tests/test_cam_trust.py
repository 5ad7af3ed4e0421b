"""Can the maps be trusted: sanity checks (randomisation) and faithfulness (deletion, insertion,
ROAD) against baselines, from the maths on hand-made models to the real CLI on trained runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from resdeep.cam.baselines import BASELINES, baseline_maps, sobel_maps
from resdeep.cam.faithfulness import (
    ROAD_FRACTIONS,
    canvases,
    relevance_ranks,
    road_keep,
    road_removed_count,
    road_scores,
    score_maps,
    target_probabilities,
)
from resdeep.cam.randomize import cascading, independent, model_parts, randomized
from resdeep.cam.similarity import rank_correlation, structural_similarity
from tests.conftest import run_main


def _trained(train_run, *overrides):
    from resdeep.checkpoint import load_checkpoint

    return load_checkpoint(train_run(*overrides))


def _fresh(info, seed=1_000_003):
    from resdeep.config import fresh_model

    with torch.random.fork_rng(devices=[]):
        return fresh_model(info.model_kwargs, seed).eval()


# --- randomisation ------------------------------------------------------------------------------


def test_randomising_changes_exactly_the_parts_named_and_restores_the_net(train_run):
    model, info = _trained(train_run)
    fresh = _fresh(info)
    fresh_state = fresh.state_dict()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    parts = model_parts(model)
    assert list(parts) == ["classifier", "stage3", "stage2", "stage1", "stem"]
    steps = cascading(model)
    assert [s.label for s in steps] == ["classifier", "+ stage3", "+ stage2", "+ stage1", "+ stem"]
    for step in [*steps, *independent(model)]:
        with randomized(model, fresh, step.modules):
            for name, value in model.state_dict().items():
                inside = name.split(".")[0] in step.modules
                if not inside:
                    assert torch.equal(value, before[name]), (step.label, name)
                elif value.is_floating_point():
                    # Every entry of every randomised tensor is a new draw (or a fresh BN's 1/0).
                    assert (value != before[name]).all(), (step.label, name)
                    assert torch.equal(value, fresh_state[name]), (step.label, name)
        after = model.state_dict()
        assert all(torch.equal(after[k], before[k]) for k in before), step.label
    # The cascade reaches everything: the last step leaves no trained tensor.
    assert set(steps[-1].modules) == {m for modules in parts.values() for m in modules}


def test_an_image_only_map_keeps_similarity_one_under_every_randomisation(train_run):
    """The control: Sobel edges are computed from the image alone, so whatever is randomised
    they stay identical, and every measure reports 1; the methods' maps do not."""
    from resdeep.cam.sanity import CONTROL, randomization_tests
    from resdeep.config import checkpoint_data
    from resdeep.data import normalize

    model, info = _trained(train_run)
    test = checkpoint_data(info).test.subset(torch.arange(64))
    x = normalize(test.images, info.mean, info.std)
    targets = model(x).argmax(dim=1)
    result = randomization_tests(
        model, _fresh(info), x, test.images, targets, ("cam", "gradcam"),
        layer=None, batch_size=32, seed=0, fresh_seed=1_000_003,
    )  # fmt: skip
    edges = sobel_maps(test.images)
    for randomization in result.randomizations:
        for step in randomization.steps:
            with randomized(model, _fresh(info), step.modules):
                assert torch.equal(sobel_maps(test.images), edges)
        for measure, estimates in randomization.estimates[CONTROL].items():
            assert all(abs(v - 1.0) <= 1e-6 for e in estimates for v in (e.mean, e.low, e.high)), (
                measure
            )
    cascade = result.randomizations[0]
    # CAM with a random classifier is a random mix of the feature maps: no longer the same map.
    assert cascade.estimates["cam"]["rank_signed"][0].mean < 0.9
    assert cascade.estimates["cam"]["rank_signed"][0].high < 1.0


def test_similarity_measures_on_hand_made_maps():
    generator = torch.Generator().manual_seed(0)
    maps = torch.rand(5, 16, 16, generator=generator)
    assert torch.allclose(rank_correlation(maps, maps), torch.ones(5))
    assert torch.allclose(rank_correlation(maps, 3 * maps + 1), torch.ones(5))  # ranks only
    assert torch.allclose(rank_correlation(maps, -maps), -torch.ones(5))
    flat = torch.zeros(5, 16, 16)
    assert rank_correlation(flat, flat).tolist() == [1.0] * 5
    assert rank_correlation(flat, maps).tolist() == [0.0] * 5
    assert torch.allclose(structural_similarity(maps, maps), torch.ones(5))
    assert (structural_similarity(maps, torch.rand(5, 16, 16, generator=generator)) < 0.5).all()


# --- faithfulness -------------------------------------------------------------------------------


class RegionLogit(nn.Module):
    """Two classes: logit 0 is the sum of the pixels in a known region, logit 1 is 0, so the
    probability of class 0 is sigmoid(sum over the region)."""

    def __init__(self, region: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("region", region.float())
        self.unused = nn.Parameter(torch.zeros(1))  # a device to read, as every net has

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = (x[:, 0] * self.region).sum(dim=(1, 2))
        return torch.stack([score, torch.zeros_like(score)], dim=1)


def test_deletion_and_insertion_on_a_model_that_uses_a_known_region():
    side, steps = 8, 64  # one pixel per step
    region = torch.zeros(side, side, dtype=torch.bool)
    region[1:4, 4:7] = True  # 9 pixels, off centre: Sobel ranks its rim, not its centre, first
    model = RegionLogit(region).eval()
    level = 0.4  # the region's pixel value: the probability stays far from 1, so maps separate
    x = level * region.float()[None, None].repeat(3, 1, 1, 1)  # (3, 1, 8, 8): the region lit
    targets = torch.zeros(3, dtype=torch.long)
    canvas = canvases(x)
    ends = tuple(
        target_probabilities(model, c, targets, 8) for c in (x, canvas.deletion, canvas.insertion)
    )
    # Inside the region the map falls off in a known order, so the curves are known exactly.
    ramp = torch.arange(side * side, dtype=torch.float32).view(side, side) / 1000
    true_map = (region.float() * (1 - ramp))[None].repeat(3, 1, 1)
    settings = dict(steps=steps, road=False, order_seed=0, noise_seed=1, batch_size=64, ends=ends)
    truth = score_maps(model, x, true_map, targets, canvas, **settings)
    # Deletion in the true order: each step removes one pixel's share of the region's sum.
    size = int(region.sum())
    expected = torch.sigmoid(
        level * torch.tensor([size - min(k, size) for k in range(steps + 1)]).float()
    )
    assert torch.allclose(truth.deletion, expected.expand(3, -1), atol=1e-6)
    # Insertion: the region's pixels come back first, in the map's order, onto the blurred canvas.
    blurred = canvas.insertion[0, 0][region]  # raster order = the map's order inside the region
    sums = [blurred.sum() + (level - blurred[:k]).sum() for k in range(size + 1)]
    sums += [torch.tensor(level * size)] * (steps - size)
    assert torch.allclose(
        truth.insertion, torch.sigmoid(torch.stack(sums)).expand(3, -1), atol=1e-6
    )
    baselines = baseline_maps(x, (2, 2), torch.Generator().manual_seed(0))
    assert list(baselines) == list(BASELINES)
    for name, maps in baselines.items():
        scored = score_maps(model, x, maps, targets, canvas, **settings)
        assert (truth.deletion_area < scored.deletion_area).all(), name
        assert (truth.insertion_area > scored.insertion_area).all(), name


def test_deletion_and_insertion_areas_match_an_independent_implementation(train_run):
    from resdeep.config import checkpoint_data
    from resdeep.data import normalize

    model, info = _trained(train_run)
    test = checkpoint_data(info).test.subset(torch.arange(6))
    x = normalize(test.images, info.mean, info.std)
    targets = model(x).argmax(dim=1)
    maps = torch.rand(6, 8, 8, generator=torch.Generator().manual_seed(3))  # no ties
    canvas = canvases(x)
    steps = 8
    ends = tuple(
        target_probabilities(model, c, targets, 8) for c in (x, canvas.deletion, canvas.insertion)
    )
    scored = score_maps(
        model,
        x,
        maps,
        targets,
        canvas,
        steps=steps,
        road=False,
        order_seed=0,
        noise_seed=1,
        batch_size=4,
        ends=ends,
    )

    def probability(image: np.ndarray, target: int) -> float:
        with torch.no_grad():
            logits = model.eval()(torch.from_numpy(image)[None].float())
        return float(logits.softmax(dim=1)[0, target])

    for index in range(6):
        image = x[index].numpy()
        order = np.argsort(-maps[index].numpy().ravel())
        counts = [round(64 * k / steps) for k in range(steps + 1)]
        deletion, insertion = [], []
        for count in counts:
            chosen = np.zeros(64, dtype=bool)
            chosen[order[:count]] = True
            chosen = chosen.reshape(1, 8, 8)
            deletion.append(probability(np.where(chosen, 0.0, image), int(targets[index])))
            insertion.append(
                probability(
                    np.where(chosen, image, canvas.insertion[index].numpy()), int(targets[index])
                )
            )
        widths = np.diff(np.array(counts) / 64)
        for curve, areas in ((deletion, scored.deletion_area), (insertion, scored.insertion_area)):
            trapezoid = float(np.sum((np.array(curve[1:]) + curve[:-1]) / 2 * widths))
            assert abs(trapezoid - areas[index].item()) <= 1e-6


def test_ties_are_broken_at_random_not_in_raster_order():
    flat = torch.zeros(2, 4, 4)
    ranks = relevance_ranks(flat, torch.Generator().manual_seed(0))
    assert sorted(ranks[0].tolist()) == list(range(16))
    assert ranks[0].tolist() != list(range(16)) and ranks[0].tolist() != ranks[1].tolist()
    again = relevance_ranks(flat, torch.Generator().manual_seed(0))
    assert torch.equal(ranks, again)
    peaked = flat.clone()
    peaked[:, 3, 3] = 1.0
    assert (relevance_ranks(peaked, torch.Generator().manual_seed(0))[:, 15] == 0).all()


# Its imputer hands torch tensors to numpy functions, which numpy 2 warns about.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_road_equals_pytorch_grad_cams_road_combined(train_run, monkeypatch):
    """Same pixels removed (its percentile rule), same imputation; its noise is fixed inside its
    classes at 0.01 with the global generator, so both run without noise to compare exactly."""
    road = pytest.importorskip("pytorch_grad_cam.metrics.road")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    from resdeep.config import checkpoint_data
    from resdeep.data import normalize

    model, info = _trained(train_run)
    model.eval()
    test = checkpoint_data(info).test.subset(torch.arange(10))
    x = normalize(test.images, info.mean, info.std)
    targets = model(x).argmax(dim=1)
    maps = torch.rand(10, 8, 8, generator=torch.Generator().manual_seed(5))
    monkeypatch.setattr(
        road.NoisyLinearImputer.__init__, "__defaults__", (0.0, road.neighbors_weights)
    )
    theirs = road.ROADCombined(percentiles=[round(100 * (1 - f)) for f in ROAD_FRACTIONS])(
        x, maps.numpy(), [ClassifierOutputSoftmaxTarget(int(t)) for t in targets], model
    )
    common = dict(fractions=ROAD_FRACTIONS, generator=torch.Generator(), noise=0.0, batch_size=8)
    ranks = relevance_ranks(maps, torch.Generator().manual_seed(0))  # no ties: order is the map's
    morf = road_scores(model, x, ranks, targets, most_relevant_first=True, **common)
    lerf = road_scores(model, x, ranks, targets, most_relevant_first=False, **common)
    ours = ((lerf - morf) / 2).mean(dim=1)
    assert np.allclose(ours.numpy(), theirs, atol=1e-5), (ours, theirs)
    # With noise, a seed gives the same scores; the noise moves them only a little.
    noisy = dict(common, noise=0.01)
    first = road_scores(model, x, ranks, targets, most_relevant_first=True,
                        **{**noisy, "generator": torch.Generator().manual_seed(1)})  # fmt: skip
    second = road_scores(model, x, ranks, targets, most_relevant_first=True,
                         **{**noisy, "generator": torch.Generator().manual_seed(1)})  # fmt: skip
    assert torch.equal(first, second) and not torch.equal(first, morf)
    assert (first - morf).abs().max() < 0.05


# --- data randomisation and the command ---------------------------------------------------------


def test_road_removes_the_same_number_of_pixels_from_a_map_with_ties():
    """A ReLU'd map is 0 over much of the image; a threshold on it would remove that whole part
    at once. Counting ranks removes as many pixels as from a map without ties."""
    pixels = 64
    tied = torch.zeros(3, 8, 8)
    tied[:, :2] = torch.rand(3, 2, 8, generator=torch.Generator().manual_seed(0))  # 48 zeros
    plain = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(1))
    for fraction in ROAD_FRACTIONS:
        removed = road_removed_count(pixels, fraction)
        # pytorch-grad-cam's rule on a map without ties removes exactly that many:
        threshold = torch.quantile(plain.flatten(1), 1 - fraction, dim=1)[:, None]
        assert ((plain.flatten(1) >= threshold).sum(dim=1) == removed).all(), fraction
        for maps in (tied, plain):
            ranks = relevance_ranks(maps, torch.Generator().manual_seed(2))
            for most_relevant_first in (True, False):
                kept = road_keep(ranks, fraction, most_relevant_first)
                assert (kept.sum(dim=1) == pixels - removed).all(), (fraction, most_relevant_first)
        # Most relevant first removes the top of the map: every kept value is at most every
        # removed one.
        ranks = relevance_ranks(plain, torch.Generator().manual_seed(2))
        kept = road_keep(ranks, fraction, True)
        values = plain.flatten(1)
        for row in range(3):
            assert values[row][kept[row]].max() <= values[row][~kept[row]].min()


def test_permute_labels_shuffles_only_the_training_labels():
    from resdeep.data import build_data

    true = build_data("digits", seed=3)
    permuted = build_data("digits", seed=3, permute_labels=True)
    assert torch.equal(permuted.train.images, true.train.images)
    assert torch.equal(permuted.train.labels.sort().values, true.train.labels.sort().values)
    assert (permuted.train.labels != true.train.labels).float().mean() > 0.8
    assert torch.equal(permuted.val.labels, true.val.labels)
    assert torch.equal(permuted.test.labels, true.test.labels)
    again = build_data("digits", seed=3, permute_labels=True)
    assert torch.equal(again.train.labels, permuted.train.labels)


def _digit_files(folder, count=12):
    from PIL import Image

    from resdeep.data import build_data

    folder.mkdir()
    test = build_data("digits").test
    for index in range(count):
        Image.fromarray(test.images[index, 0].numpy()).save(folder / f"digit_{index}.png")
    return folder


def test_cli_sanity_and_faithfulness_on_image_files(capsys, train_run, tmp_path):
    """Every check on a folder of images (as for an imported net without its data set): the
    tables, the figures, and a JSON whose summaries recompute from its per-image scores."""
    run = train_run()
    permuted = train_run("data.permute_labels=true")
    other = train_run("seed=1")
    images = _digit_files(tmp_path / "digits", count=8)
    out, record = tmp_path / "trust", tmp_path / "trust.json"
    status, stdout, err = run_main(
        capsys, "cam", str(images), "--checkpoint", str(run), "--sanity", "--faithfulness",
        "--method", "cam,gradcam", "--permuted", str(permuted), "--other-seed", str(other),
        "--steps", "4", "--out", str(out), "--json", str(record),
    )  # fmt: skip
    assert status == 0, err
    for title in ("cascading randomisation", "independent randomisation", "data randomisation",
                  "faithfulness on the images given (8 images", "each method against each baseline"):  # fmt: skip
        assert title in stdout, title
    figures = {"sanity.png", "sanity_examples.png", "faithfulness.png"}
    assert figures <= {p.name for p in out.iterdir()}  # beside the overlays
    result = json.loads(record.read_text())
    assert result["evaluated_on"] == "images given" and len(result["images"]) == 8
    sanity = result["sanity"]
    assert sanity["images"] == 8
    cascade = sanity["randomizations"]["cascading"]
    assert [s["label"] for s in cascade["steps"]][0] == "classifier"
    for estimate in cascade["maps"]["cam"]["rank_abs"]:
        assert estimate["low"] <= estimate["mean"] <= estimate["high"]
    data_maps = sanity["data_randomization"]["maps"]["cam"]
    assert set(data_maps) == {"permuted labels", "another seed"}
    for net, measures in data_maps.items():  # other nets' maps, not the checkpoint's own again
        assert measures["rank_signed"]["mean"] < 0.999, net
    assert sanity["data_randomization"]["nets"]["permuted labels"] == str(permuted)
    # Both runs start from seed 0: the same initial weights, which the call warns about.
    [warning] = sanity["data_randomization"]["warnings"]
    assert "has the seed of" in warning and f"warning: --permuted {permuted}" in err
    faithfulness = result["faithfulness"]
    assert list(faithfulness["scores"]) == ["cam", "gradcam", *BASELINES]
    assert faithfulness["fractions"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    for name, scores in faithfulness["per_image"].items():
        assert set(scores) == {"deletion_area", "insertion_area", "road_morf", "road_lerf",
                               "road_combined"}  # fmt: skip
        for score, values in scores.items():
            assert len(values) == 8
            assert abs(np.mean(values) - faithfulness["scores"][name][score]["mean"]) < 1e-5
    for verdict in faithfulness["verdicts"]["cam"]["random"].values():
        assert verdict["verdict"] == "too few images"  # 8 images: intervals, no verdicts
    assert result["images"][0]["maps"]  # the overlays were written as without the checks


def test_cli_sanity_on_the_test_split(capsys, train_run, tmp_path):
    record = tmp_path / "sanity.json"
    status, stdout, err = run_main(
        capsys, "cam", "--checkpoint", str(train_run()), "--sanity", "--randomization",
        "cascading", "--out", str(tmp_path / "o"), "--json", str(record),
    )  # fmt: skip
    assert status == 0, err
    result = json.loads(record.read_text())
    assert result["evaluated_on"] == "digits test split" and result["sanity"]["images"] == 359
    assert list(result["sanity"]["randomizations"]) == ["cascading"]
    assert "faithfulness" not in result and "independent randomisation" not in stdout


def test_verdicts_only_where_the_paired_interval_excludes_zero(capsys, train_run, tmp_path):
    record = tmp_path / "faithfulness.json"
    status, _, err = run_main(
        capsys, "cam", "--checkpoint", str(train_run()), "--faithfulness", "--no-road",
        "--steps", "4", "--out", str(tmp_path / "o"), "--json", str(record),
    )  # fmt: skip
    assert status == 0, err
    verdicts = json.loads(record.read_text())["faithfulness"]["verdicts"]
    seen = set()
    for baselines in verdicts.values():
        for scores in baselines.values():
            for score, verdict in scores.items():
                separated = not verdict["low"] <= 0 <= verdict["high"]
                assert (verdict["verdict"] != "not separated") == separated
                if separated:
                    higher_is_better = score == "insertion_area"
                    ahead = (verdict["mean"] > 0) == higher_is_better
                    assert verdict["verdict"] == ("better" if ahead else "worse")
                seen.add(verdict["verdict"])
    assert "better" in seen  # a trained net's CAM beats the random map on 359 digits


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (("--faithfulness", "--steps", "1"), "--steps must be at least 2"),
        (("--sanity", "--randomization", "cascade"), "--randomization must be"),
        (("--faithfulness", "--permuted", "x"), "--permuted is a sanity check; add --sanity"),
        (("--sanity", "--other-seed", "x"), "give --permuted too"),
        (("--sanity", "--seed", "-1"), "--seed must be 0 or more"),
        (("--sanity", "--permuted", "no/such/run"), "--permuted no/such/run: no such run"),
        (("--randomization", "cascading"), "--randomization is a --sanity option"),
        (("--sanity", "--no-road"), "--no-road are --faithfulness options"),
        (("--sanity", "--method", "gradcam,cam", "--layer", "stage1"), "--method cam uses"),
    ],
)
def test_bad_trust_options_are_one_line(capsys, train_run, extra, needle):
    status, _, err = run_main(capsys, "cam", "--checkpoint", str(train_run()), *extra)
    assert status == 2, err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_one_image_is_too_few_for_intervals(capsys, train_run, tmp_path):
    images = _digit_files(tmp_path / "one", count=1)
    status, _, err = run_main(
        capsys, "cam", str(images), "--checkpoint", str(train_run()), "--faithfulness",
        "--out", str(tmp_path / "o"),
    )  # fmt: skip
    assert status == 2 and "at least 2 images" in err and "Traceback" not in err, err


def test_a_permuted_run_of_another_network_is_refused(capsys, train_run, tmp_path):
    status, _, err = run_main(
        capsys, "cam", "--checkpoint", str(train_run()), "--sanity", "--randomization",
        "cascading", "--permuted", str(train_run("model=plain")), "--out", str(tmp_path / "o"),
    )  # fmt: skip
    assert status == 2, err
    assert "--permuted" in err and "not the same network" in err and "Traceback" not in err
    # A net trained on the true labels is no permuted-label net, nor the reverse.
    status, _, err = run_main(
        capsys, "cam", "--checkpoint", str(train_run()), "--sanity", "--randomization",
        "cascading", "--permuted", str(train_run("seed=1")), "--out", str(tmp_path / "o"),
    )  # fmt: skip
    assert status == 2 and "trained with data.permute_labels=false" in err, err
