"""resdeep cam: the map methods on hand-made tensors and tiny models, box extraction, image
loading, and the command end to end on real checkpoints."""

from __future__ import annotations

import json
import re
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from resdeep.cam import METHODS, compute_cam
from resdeep.cam.api import class_activation_maps
from resdeep.cam.evaluate import THRESHOLD_GRID, average_drop, increase_in_confidence
from resdeep.cam.localize import box_iou, centred_box, largest_component_box
from resdeep.cam.methods import cam, gradcam, gradcam_plus_plus, scorecam, scorecam_masks
from resdeep.checkpoint import load_checkpoint
from resdeep.data import build_data, normalize
from resdeep.errors import ResdeepError, UsageError
from resdeep.images import load_image
from resdeep.models import ConvNet, build_model
from tests.conftest import run_main

# ---------------------------------------------------------------- methods on hand-made tensors


def test_cam_is_the_classifier_weighted_sum_of_feature_maps():
    feature_maps = torch.zeros(1, 2, 4, 4)
    feature_maps[0, 0, 0, 0] = 3.0  # channel 0 fires top-left
    feature_maps[0, 1, 3, 3] = 2.0  # channel 1 fires bottom-right
    weight = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])  # class 0 likes channel 0, class 1 channel 1
    maps = cam(feature_maps.expand(2, -1, -1, -1), weight, torch.tensor([0, 1]))
    assert maps[0, 0, 0] == 3.0 and maps[0, 3, 3] == 0.0  # negative evidence is cut by the ReLU
    assert maps[1, 3, 3] == 2.0 and maps[1, 0, 0] == 0.0


def test_gradcam_weights_are_mean_gradients_and_gradcam_plus_plus_follows_its_formula():
    activations = torch.rand(1, 2, 3, 3)
    gradients = torch.empty(1, 2, 3, 3)
    gradients[0, 0], gradients[0, 1] = 0.5, -0.25
    expected = (0.5 * activations[0, 0] - 0.25 * activations[0, 1]).clamp_min(0)
    assert torch.allclose(gradcam(activations, gradients)[0], expected)
    # Constant gradient g per channel: alpha = 1 / (2 + S g) with S the channel's activation sum,
    # and only positive gradients count, so channel 1 drops out.
    total = activations[0, 0].sum()
    weight = 9 * 0.5 / (2 + total * 0.5)
    assert torch.allclose(
        gradcam_plus_plus(activations, gradients)[0], weight * activations[0, 0], atol=1e-6
    )


def test_scorecam_masks_span_zero_to_one_and_weights_are_the_masked_scores():
    activations = torch.rand(2, 3, 4, 4)
    activations[1, 2] = 5.0  # a constant channel carries no location: its mask is empty
    masks = scorecam_masks(activations, (8, 8))
    assert masks.shape == (2, 3, 8, 8)
    assert masks.amin() == 0.0 and torch.allclose(masks[0].amax(dim=(1, 2)), torch.ones(3))
    assert (masks[1, 2] == 0).all()
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.2, 0.6]])
    expected = torch.einsum("bkhw,bk->bhw", activations, scores)
    assert torch.allclose(scorecam(activations, scores), expected)


# ---------------------------------------------------------------- methods on tiny models


class BrightDarkNet(ConvNet):
    """Channel 0 = ReLU(x) (bright pixels), channel 1 = ReLU(-x) (dark pixels); class 0 is the
    mean brightness, class 1 the mean darkness. Every method must find where each class is."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1, bias=False)
        self.conv.weight.data = torch.tensor([1.0, -1.0]).view(2, 1, 1, 1)
        self.head_dropout = nn.Identity()
        self.classifier = nn.Linear(2, 2)
        self.classifier.weight.data = 10 * torch.eye(2)  # confident, for Score-CAM
        self.classifier.bias.data.zero_()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


def bright_and_dark_squares() -> torch.Tensor:
    x = torch.zeros(1, 1, 16, 16)
    x[..., 1:5, 2:6] = 4.0  # bright square, top-left
    x[..., 10:15, 9:14] = -4.0  # dark square, bottom-right
    return x


@pytest.mark.parametrize("method", METHODS)
def test_each_method_finds_the_square_of_its_class(method):
    model, x = BrightDarkNet(), bright_and_dark_squares()
    for target, rows, cols in ((0, range(1, 5), range(2, 6)), (1, range(10, 15), range(9, 14))):
        maps = compute_cam(model, x, method, target=target)
        assert maps.shape == (1, 16, 16) and not maps.requires_grad
        assert maps.min() == 0.0 and maps.max() == 1.0
        peak_row, peak_col = divmod(int(maps[0].argmax()), 16)
        assert peak_row in rows and peak_col in cols, (method, target, peak_row, peak_col)
        box = largest_component_box(maps[0], 0.5)
        assert box is not None
        assert (
            box_iou(
                torch.tensor([box]), torch.tensor([[cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]])
            )
            > 0.5
        )


def test_cam_equals_gradcam_on_the_last_feature_maps_of_a_resnet():
    torch.manual_seed(0)
    model = build_model("resnet", depth=8, in_channels=3, num_classes=5).eval()
    x = torch.randn(4, 3, 32, 32)
    cam_out = class_activation_maps(model, x, "cam")
    grad_out = class_activation_maps(model, x, "gradcam")
    height, width = cam_out.maps.shape[-2:]
    assert cam_out.maps.amax() > 0
    # Gradient of a GAP + linear score w.r.t. f_k(x, y) is w_k^c / (h w) at every position.
    assert torch.allclose(grad_out.maps * height * width, cam_out.maps, atol=1e-5)
    assert torch.allclose(compute_cam(model, x, "cam"), compute_cam(model, x, "gradcam"), atol=1e-5)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "scorecam"])
def test_methods_on_an_inner_conv_layer_give_unit_range_maps_at_input_size(method):
    torch.manual_seed(0)
    model = build_model("preact", depth=11, block="bottleneck", in_channels=1, num_classes=3)
    maps = compute_cam(model.eval(), torch.randn(2, 1, 16, 16), method, layer="stage2.block1.conv2")
    assert maps.shape == (2, 16, 16) and torch.isfinite(maps).all()
    assert maps.min() >= 0 and torch.allclose(maps.amax(dim=(1, 2)), torch.ones(2))


def test_cam_needs_no_backward_pass():
    model = build_model("resnet", depth=8, in_channels=1, num_classes=3).eval()
    with torch.inference_mode():  # autograd is impossible here, so only a forward-only method runs
        maps = compute_cam(model, torch.randn(2, 1, 8, 8), "cam")
        assert maps.shape == (2, 8, 8)
        with pytest.raises(RuntimeError):
            compute_cam(model, torch.randn(2, 1, 8, 8), "gradcam")


def hooks_of(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
    )


def test_hooks_are_removed_and_train_eval_state_restored_even_on_errors():
    torch.manual_seed(0)
    model = build_model("resnet", depth=8, in_channels=1, num_classes=3, dropout=0.3)
    model.eval()
    model.head_dropout.train()  # MC-dropout style mixed state must survive
    flags = [m.training for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    layer = "stage2.block1.conv1"
    for method in ("gradcam", "gradcam++", "scorecam"):
        first = compute_cam(model, torch.randn(3, 1, 8, 8), method, layer=layer)
        assert torch.isfinite(first).all()
    with pytest.raises(RuntimeError):  # 3 channels into a 1-channel stem fails mid-forward
        compute_cam(model, torch.randn(3, 3, 8, 8), "gradcam", layer=layer)
    with pytest.raises(UsageError, match="out of range"):
        compute_cam(model, torch.randn(3, 1, 8, 8), "gradcam", target=7, layer=layer)
    with pytest.raises(UsageError, match="not a conv module"):
        compute_cam(model, torch.randn(3, 1, 8, 8), "gradcam", layer="classifier")
    assert hooks_of(model) == 0
    assert [m.training for m in model.modules()] == flags
    assert all(p.grad is None for p in model.parameters())  # only activations get gradients
    for key, value in model.state_dict().items():  # BN statistics untouched: eval while mapping
        assert torch.equal(value, state[key]), key


# ---------------------------------------------------------------- boxes and metrics


def test_box_is_around_the_largest_region_above_the_threshold():
    heatmap = np.zeros((10, 12), dtype=np.float32)
    heatmap[1:3, 1:3] = 1.0  # the peak, but a small region (4 px)
    heatmap[5:9, 6:11] = 0.5  # larger region (20 px): this one is boxed
    heatmap[0:10, 11] = 0.1  # below 20 % of the max: ignored even though it is long
    assert largest_component_box(heatmap) == (6, 5, 11, 9)  # x0, y0, x1, y1, ends exclusive
    assert largest_component_box(heatmap, threshold=0.05) == (6, 0, 12, 10)  # now joined
    assert largest_component_box(heatmap, threshold=0.6) == (1, 1, 3, 3)


def test_diagonal_pixels_join_and_an_empty_map_has_no_box():
    diagonal = np.eye(5, dtype=np.float32)
    diagonal[4, 0] = 1.0  # an isolated corner pixel
    assert largest_component_box(diagonal) == (0, 0, 5, 5)
    assert largest_component_box(np.zeros((4, 4))) is None


def test_iou_and_centred_box():
    a = torch.tensor([[0, 0, 4, 4], [0, 0, 4, 4], [0, 0, 4, 4], [0, 0, 0, 0]])
    b = torch.tensor([[0, 0, 4, 4], [2, 0, 6, 4], [5, 5, 9, 9], [0, 0, 0, 0]])
    assert torch.allclose(box_iou(a, b), torch.tensor([1.0, 8 / 24, 0.0, 0.0]))
    assert centred_box(10, 20, 32, 32).tolist() == [11.0, 6.0, 21.0, 26.0]
    assert centred_box(40, 8, 32, 32).tolist() == [0.0, 12.0, 32.0, 20.0]  # clipped


def test_average_drop_and_increase_in_confidence():
    full = torch.tensor([0.8, 0.5, 0.4, 1.0])
    explained = torch.tensor([0.4, 0.5, 0.6, 0.0])
    assert average_drop(full, explained) == pytest.approx(100 * (0.5 + 0 + 0 + 1) / 4)
    assert increase_in_confidence(full, explained) == pytest.approx(25.0)


# ---------------------------------------------------------------- image loading


@dataclass
class Preprocessing:
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]


def test_load_image_converts_channels_resizes_and_normalises(tmp_path):
    info = Preprocessing((1, 8, 8), (0.25,), (0.5,))
    Image.new("RGB", (40, 30), (102, 102, 102)).save(tmp_path / "gray.png")
    x, original = load_image(tmp_path / "gray.png", info)
    assert x.shape == (1, 1, 8, 8) and original.size == (40, 30)
    assert torch.allclose(x, torch.full_like(x, (102 / 255 - 0.25) / 0.5))
    # 16-bit gray scales to 8 bits rather than clipping at 255
    deep = np.full((5, 5), 257 * 200, dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    x, _ = load_image(tmp_path / "deep.png", Preprocessing((3, 5, 5), (0.0,) * 3, (1.0,) * 3))
    assert x.shape == (1, 3, 5, 5) and torch.allclose(x, torch.full_like(x, 200 / 255))


def test_load_image_reproduces_the_training_tensor(tmp_path):
    data = build_data("digits_placed", canvas_size=32)
    image = data.test.images[0]  # (1, 32, 32) uint8
    Image.fromarray(image[0].numpy()).save(tmp_path / "digit.png")
    x, _ = load_image(tmp_path / "digit.png", Preprocessing((1, 32, 32), data.mean, data.std))
    assert torch.equal(x, normalize(image[None], data.mean, data.std))


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height pixels but holds almost no data: opening it must
    refuse before decoding (which would allocate the whole image)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit gray
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
    return path


def test_bad_files_raise_one_line_errors(tmp_path):
    info = Preprocessing((1, 8, 8), (0.5,), (0.5,))
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_text("not an image\n")
    Image.new("L", (64, 64), 9).save(tmp_path / "whole.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "whole.png").read_bytes()[:60])
    cases = {
        tmp_path / "missing.png": "no such file",
        tmp_path / "empty.png": "empty file",
        tmp_path / "notes.png": "not an image",
        tmp_path / "cut.png": "cannot read the image",
        tmp_path: "is a directory",
        png_header_only(tmp_path / "big.png", 11_000, 10_000): "megapixel limit",
        png_header_only(tmp_path / "huge.png", 30_000, 30_000): "megapixel limit",
    }
    for path, needle in cases.items():
        with pytest.raises(ResdeepError, match=needle) as raised:
            load_image(path, info)
        assert "\n" not in str(raised.value) and str(path) in str(raised.value)


# ---------------------------------------------------------------- the command


def write_digit_images(folder: Path) -> dict[str, tuple[int, int]]:
    """Two real test digits (one upscaled colour copy) plus broken files; returns good sizes."""
    folder.mkdir()
    digits = build_data("digits").test.images[:2, 0].numpy()  # (2, 8, 8) uint8
    Image.fromarray(digits[0]).save(folder / "small.png")
    Image.fromarray(digits[1]).convert("RGB").resize((48, 40), Image.NEAREST).save(
        folder / "big.png"
    )
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.jpg").write_text("not an image\n")
    (folder / "cut.png").write_bytes((folder / "big.png").read_bytes()[:70])
    return {"small": (8, 8), "big": (40, 48)}


def test_cli_mixed_good_and_bad_files_then_gradcam_matches_cam(cli, capsys, train_run, tmp_path):
    run_dir = train_run()
    sizes = write_digit_images(tmp_path / "in")
    out = tmp_path / "out"
    result = cli(
        "cam", str(tmp_path / "in"), str(tmp_path / "missing.png"), "--checkpoint", str(run_dir),
        "--method", "cam", "--save-raw", "--out", str(out), "--batch-size", "2",
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    error_lines = result.stderr.strip().splitlines()
    for name in ("empty.png", "notes.jpg", "cut.png", "missing.png"):
        assert sum(name in line for line in error_lines) == 1, result.stderr
    assert len(error_lines) == 5 and "4 input(s) could not be processed" in error_lines[-1]
    _, info = load_checkpoint(run_dir)
    maps = {}
    for stem, (height, width) in sizes.items():
        [overlay] = out.glob(f"{stem}_cam_*.png")
        assert Image.open(overlay).size == (width, height)
        assert overlay.name[len(f"{stem}_cam_") : -4] in info.classes
        maps[stem] = np.load(overlay.with_suffix(".npy"))
        assert maps[stem].shape == (height, width) and maps[stem].dtype == np.float32
        assert maps[stem].min() >= 0.0 and maps[stem].max() == pytest.approx(1.0)
        assert str(overlay) in result.stdout.replace("\n", "") or overlay.name in result.stdout

    good = [str(tmp_path / "in" / "small.png"), str(tmp_path / "in" / "big.png")]
    # Again in-process (the subprocess above is the real entry point end to end).
    status, _, stderr = run_main(
        capsys, "cam", *good, "--checkpoint", str(run_dir), "--method", "gradcam", "--save-raw",
        "--out", str(out),
    )  # fmt: skip
    assert status == 0, stderr
    for stem in sizes:
        [raw] = out.glob(f"{stem}_gradcam_*.npy")
        correlation = np.corrcoef(maps[stem].ravel(), np.load(raw).ravel())[0, 1]
        assert correlation > 0.99


def test_cli_errors_are_one_line(capsys, train_run, tmp_path):
    run_dir = str(train_run())
    image = tmp_path / "digit.png"
    Image.new("L", (8, 8), 200).save(image)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    cases = [
        (("--target-class", "10"), 2, "out of range"),
        (("--method", "gradcam", "--layer", "classifier"), 2, "not a conv module"),
        (("--method", "gradcam", "--layer", "stage9"), 2, "no module"),
        (("--method", "cam", "--layer", "stem.conv"), 2, "--layer with gradcam"),
        (("--method", "fancycam"), 2, "unknown method"),
        (("--target-class", "1", "--top-k", "2"), 2, "exclude each other"),
        (("--colormap", "nope"), 2, "unknown colormap"),
    ]
    for extra, code, needle in cases:
        status, _, err = run_main(capsys, "cam", str(image), "--checkpoint", run_dir, *extra)
        assert status == code and needle in err and len(err.strip().splitlines()) == 1, err
    status, _, err = run_main(capsys, "cam", str(image), "--checkpoint", str(tmp_path / "other.pt"))
    assert status == 1 and "not a resdeep checkpoint" in err


def test_cli_top_k_and_latest_run(capsys, train_run, tmp_path, monkeypatch):
    run_dir = train_run()
    monkeypatch.chdir(tmp_path)
    shutil.copytree(run_dir, tmp_path / "runs" / "only")
    Image.new("L", (8, 8), 200).save("digit.png")
    status, out, err = run_main(capsys, "cam", "digit.png", "--top-k", "3", "--out", "o")
    assert status == 0, err
    assert "runs/only/checkpoints/best.pt" in out
    assert len(list(Path("o").glob("digit_cam_*.png"))) == 3


def test_cli_evaluate_writes_the_benchmark(capsys, train_run, tmp_path):
    placed = train_run("data=digits_placed", epochs=1)
    report = tmp_path / "bench.json"
    status, out, err = run_main(
        capsys, "cam", "--evaluate", "--checkpoint", str(placed), "--json", str(report)
    )
    assert status == 0, err
    assert "GT-known" in out and "centred box" in out and "Average Drop" in out
    result = json.loads(report.read_text())
    for key in ("gt_known_loc_acc", "top1_loc_acc", "baseline_gt_known_loc_acc",
                "baseline_top1_loc_acc", "average_drop", "increase_in_confidence"):  # fmt: skip
        assert isinstance(result[key], float), key
    assert (
        result["images"] == 359 and result["method"] == "cam" and result["data"] == "digits_placed"
    )
    assert 0 <= result["top1_loc_acc"] <= result["gt_known_loc_acc"] <= 1
    assert 0 <= result["average_drop"] <= 100
    assert result["threshold"] == 0.2 and result["val_threshold"] in THRESHOLD_GRID
    assert isinstance(result["val_threshold_gt_known_loc_acc"], float)
    # No boxes on plain digits: the drop metrics still come, localisation is left out.
    digits_report = tmp_path / "digits.json"
    status, _, err = run_main(
        capsys, "cam", "--evaluate", "--checkpoint", str(train_run()), "--json", str(digits_report),
        "--method", "gradcam++",
    )  # fmt: skip
    assert status == 0, err
    result = json.loads(digits_report.read_text())
    assert result["gt_known_loc_acc"] is None and isinstance(result["average_drop"], float)


def test_the_explain_pipeline_reports_each_input_in_order(train_run, tmp_path):
    """The pipeline behind the command, called directly: bad inputs are results, not the end."""
    from resdeep.cam.explain import ExplainSettings, explain_images
    from resdeep.cam.results import BadInput, ExplainedImage
    from resdeep.checkpoint import load_checkpoint

    model, info = load_checkpoint(train_run())
    sizes = write_digit_images(tmp_path / "in")
    (tmp_path / "in" / "notes.png").write_text("not an image\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    settings = ExplainSettings(
        methods=("cam",), layer=None, target_class=None, top_k=2, out=tmp_path / "out",
        alpha=0.5, colormap="jet", save_raw=True, batch_size=2,
    )  # fmt: skip
    results = list(explain_images(model, info, [empty, tmp_path / "in"], settings))
    bad = [r for r in results if isinstance(r, BadInput)]
    good = [r for r in results if isinstance(r, ExplainedImage)]
    assert "no image files" in bad[0].message and any("notes.png" in b.message for b in bad)
    assert {r.path.stem: (r.height, r.width) for r in good} == sizes
    for result in good:
        assert len(result.maps) == 2  # the two most probable classes
        assert result.maps[0].target == result.maps[0].predicted
        assert all(path.is_file() for entry in result.maps for path in entry.files)


def test_the_settings_check_themselves_before_any_checkpoint_is_read(tmp_path):
    """The library refuses what the command would, with the same one line."""
    from resdeep.cam.explain import ExplainSettings
    from resdeep.cam.request import CamRequest

    fields = dict(
        methods=("cam", "gradcam"), layer=None, target_class=None, top_k=None, out=tmp_path,
        alpha=0.5, colormap="jet", save_raw=False, batch_size=2,
    )  # fmt: skip
    for changed, needle in (
        ({"alpha": 2.0}, "--alpha must be in [0, 1]"),
        ({"target_class": "1", "top_k": 2}, "exclude each other"),
        ({"methods": ("cam",), "layer": "stem.conv"}, "--layer with gradcam"),
    ):
        with pytest.raises(UsageError, match=re.escape(needle)):
            ExplainSettings(**{**fields, **changed})
    settings = ExplainSettings(**fields)
    with pytest.raises(UsageError, match="or --evaluate"):
        CamRequest(inputs=(), explain=settings)
