"""`resdeep cam` on photographs: the centre square, maps drawn back on the whole image, class
names, panels, grids and a warning when an input is far from the training images."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resdeep.images import View, crop_to_view
from tests.conftest import REPO, run_main
from tests.test_importing import ChenyaofoResNet, _randomised


@pytest.fixture(scope="module")
def cifar_run(tmp_path_factory):
    """A CIFAR-10-shaped ResNet-20 with the CIFAR class names, imported like a published one."""
    folder = tmp_path_factory.mktemp("imported")
    torch.save(_randomised(ChenyaofoResNet(3)).state_dict(), folder / "c.pt")
    from resdeep.importing import import_published

    run_dir, _ = import_published("chenyaofo", folder / "c.pt", folder / "run")
    return run_dir


def _landscape(path, width=120, height=60):
    """Left third red, the rest grey: a picture whose centre square is not all of it."""
    pixels = np.full((height, width, 3), 128, dtype=np.uint8)
    pixels[:, : width // 3] = (200, 30, 30)
    Image.fromarray(pixels).save(path)
    return path


def test_views_keep_the_aspect_ratio():
    image = Image.new("RGB", (120, 60))
    assert View.of(image, "center") == View(30, 0, 60, 60)
    assert View.of(image, "pad") == View(0, -30, 120, 120)
    assert View.of(image, "none") == View(0, 0, 120, 60)
    seen, _ = crop_to_view(Image.new("RGB", (120, 60), (255, 255, 255)), "pad")
    assert seen.size == (120, 120)
    assert seen.getpixel((60, 0)) == (0, 0, 0) and seen.getpixel((60, 60)) == (255, 255, 255)


def test_a_landscape_photo_keeps_its_shape_and_its_map_sits_where_the_net_looked(
    capsys, tmp_path, cifar_run
):
    photo = _landscape(tmp_path / "wide.png")
    out = tmp_path / "out"
    status, _, err = run_main(
        capsys, "cam", str(photo), "--checkpoint", str(cifar_run), "--save-raw", "--out", str(out),
        "--json", str(tmp_path / "cam.json"),
    )  # fmt: skip
    assert status == 0, err
    [overlay] = out.glob("wide_cam_*.png")
    assert Image.open(overlay).size == (120, 60)  # the whole photo, not squashed
    heatmap = np.load(overlay.with_suffix(".npy"))
    assert heatmap.shape == (60, 120)
    assert heatmap[:, :30].max() == 0 and heatmap[:, 90:].max() == 0  # outside the centre square
    assert heatmap[:, 30:90].max() == pytest.approx(1.0)
    # Outside the square the photo is shown dimmed, without colour.
    drawn = np.asarray(Image.open(overlay).convert("RGB")).astype(int)
    assert tuple(drawn[30, 5]) == (100, 15, 15) and tuple(drawn[30, 115]) == (64, 64, 64)
    record = json.loads((tmp_path / "cam.json").read_text())
    [image] = record["images"]
    assert image["maps"][0]["predicted"] in (
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
    )  # fmt: skip
    assert record["crop"] == "center" and "resnet-20 (chenyaofo)" in record["model"]
    # crop=none squashes the whole photo into the square: the map covers all of it.
    status, _, _ = run_main(
        capsys, "cam", str(photo), "--checkpoint", str(cifar_run), "--save-raw", "--crop", "none",
        "--out", str(tmp_path / "none"),
    )  # fmt: skip
    [raw] = (tmp_path / "none").glob("*.npy")
    assert status == 0 and np.load(raw)[:, :30].max() > 0


def test_target_class_by_name_panels_and_a_grid(capsys, tmp_path, cifar_run):
    photos = tmp_path / "photos"
    photos.mkdir()
    _landscape(photos / "a.png")
    _landscape(photos / "b.png", 60, 90)
    out = tmp_path / "out"
    status, stdout, err = run_main(
        capsys, "cam", str(photos), "--checkpoint", str(cifar_run), "--method", "cam,gradcam",
        "--target-class", "cat", "--panel", "--grid", str(tmp_path / "grid.png"), "--out",
        str(out),
    )  # fmt: skip
    assert status == 0, err
    for stem in ("a", "b"):
        for method in ("cam", "gradcam"):
            assert (out / f"{stem}_{method}_cat.png").is_file()
            panel = Image.open(out / f"{stem}_{method}_cat_panel.png")
            assert panel.width > 2 * panel.height  # input | map | overlay
    assert "cat" in stdout
    # One column per method, one row per image: a second method adds a column.
    status, _, _ = run_main(
        capsys, "cam", str(photos), "--checkpoint", str(cifar_run), "--grid",
        str(tmp_path / "one.png"), "--out", str(out),
    )  # fmt: skip
    two, one = Image.open(tmp_path / "grid.png"), Image.open(tmp_path / "one.png")
    assert status == 0 and two.height == one.height and two.width > 1.6 * one.width
    status, _, err = run_main(
        capsys, "cam", str(photos), "--checkpoint", str(cifar_run), "--target-class", "kitten"
    )
    assert status == 2 and "'kitten' is not a class" in err and "airplane" in err
    status, _, err = run_main(
        capsys, "cam", str(photos), "--checkpoint", str(cifar_run), "--method", "cam,fancy"
    )
    assert status == 2 and "unknown method 'fancy'" in err


def test_a_colour_photo_for_a_digits_net_gets_a_warning(capsys, tmp_path, train_run):
    photo = REPO / "examples" / "photos" / "cat.png"
    status, _, err = run_main(
        capsys, "cam", str(photo), "--checkpoint", str(train_run()), "--out", str(tmp_path / "o")
    )
    assert status == 0
    [warning] = [line for line in err.splitlines() if line.startswith("warning:")]
    assert "colour" in warning and "8x8 greyscale digits" in warning
    # A digit drawn in grey gets none.
    digit = tmp_path / "digit.png"
    Image.fromarray(np.eye(8, dtype=np.uint8) * 255).resize((32, 32)).save(digit)
    status, _, err = run_main(
        capsys, "cam", str(digit), "--checkpoint", str(train_run()), "--out", str(tmp_path / "o")
    )
    assert status == 0 and "warning" not in err


def test_a_tiny_image_for_a_cifar_net_gets_a_warning(capsys, tmp_path, cifar_run):
    digit = REPO / "examples" / "digits" / "test_003_two.png"  # 8x8, enlarged to 32x32
    status, _, err = run_main(
        capsys, "cam", str(digit), "--checkpoint", str(cifar_run), "--out", str(tmp_path / "o")
    )
    assert status == 0, err
    [warning] = [line for line in err.splitlines() if line.startswith("warning:")]
    assert "8x8 pixels enlarged to 32x32" in warning and "cifar10" in warning


def _aged(run_dir, seconds_ago: float):
    """Give a run's checkpoint an age: the latest run is the one whose best.pt is newest."""
    stamp = time.time() - seconds_ago
    os.utime(run_dir / "checkpoints" / "best.pt", (stamp, stamp))
    return run_dir


def test_without_a_checkpoint_the_latest_trained_run_is_used_not_an_imported_one(
    capsys, tmp_path, monkeypatch, train_run, cifar_run
):
    monkeypatch.chdir(tmp_path)
    _aged(shutil.copytree(train_run(), tmp_path / "runs" / "digits"), 60)
    _aged(shutil.copytree(cifar_run, tmp_path / "runs" / "imported" / "cifar"), 0)
    digit = REPO / "examples" / "digits" / "test_003_two.png"
    status, out, err = run_main(capsys, "cam", str(digit), "--out", "o")
    assert status == 0, err
    [picked] = [line for line in out.splitlines() if line.startswith("checkpoint:")]
    assert "runs/digits/checkpoints/best.pt" in picked and "latest trained run" in picked
    assert "warning" not in err  # a digit for the digits net
    # With only imported runs there is nothing trained to pick: say what to type instead.
    shutil.rmtree(tmp_path / "runs" / "digits")
    status, _, err = run_main(capsys, "cam", str(digit), "--out", "o")
    assert status == 1 and err.count("\n") == 1, err
    assert "--checkpoint runs/imported/cifar" in err


def test_the_example_in_cam_help_runs(capsys, tmp_path, monkeypatch):
    from tests.test_importing import AkamasterResNet, _write_akamaster

    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").symlink_to(REPO / "examples")
    # A ResNet-20 under the example's name: the command is the same, a third of the time.
    _write_akamaster(tmp_path / "resnet20.th", _randomised(AkamasterResNet(3)), True)
    name = "akamaster_resnet56_cifar10"
    assert run_main(capsys, "import", "akamaster", "resnet20.th", "--name", name)[0] == 0
    status, help_text, _ = run_main(capsys, "cam", "--help")
    paragraphs = [" ".join(p.split()) for p in help_text.split("\n\n")]
    [example] = [p.removeprefix("Example: ") for p in paragraphs if p.startswith("Example: ")]
    status, out, err = run_main(capsys, *shlex.split(example)[1:])  # without `resdeep`
    assert status == 0, err
    assert Path(shlex.split(example)[-1]).is_file() and "cat.png" in out
    assert "warning" not in err  # the photos fit a CIFAR net, the grey horse silhouette too
    # A folder of folders: its images sit one level down, and the error says where.
    run_dir = f"runs/imported/{name}"
    status, _, err = run_main(capsys, "cam", "examples", "--checkpoint", run_dir, "--out", "o")
    assert status == 1 and not Path("o").exists()
    assert "give examples/digits, examples/photos" in err, err


def test_an_output_path_that_cannot_be_written_is_refused_before_any_work(
    capsys, tmp_path, cifar_run
):
    photo = str(REPO / "examples" / "photos" / "cat.png")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("a file, not a folder")
    out = tmp_path / "out"
    cases = [
        (("--out", str(a_file)), f"--out {a_file} is a file, not a folder"),
        (("--out", str(a_file / "cams")), f"{a_file} is a file, not a folder"),
        (("--grid", str(a_file / "grid.png")), f"--grid {a_file / 'grid.png'}: {a_file} is a"),
        (("--json", str(tmp_path)), f"--json {tmp_path} is a folder; give a file"),
    ]
    for extra, message in cases:
        status, stdout, err = run_main(
            capsys, "cam", photo, "--checkpoint", str(cifar_run), "--out", str(out), *extra
        )
        assert status == 2 and message in err and err.count("\n") == 1, err
        assert not out.exists() and "cat.png" not in stdout  # refused before any work
    # A grid in a folder that does not exist yet: the folder is made, as --out and --json are.
    grid = tmp_path / "figures" / "grid.png"
    status, _, err = run_main(
        capsys, "cam", photo, "--checkpoint", str(cifar_run), "--out", str(out), "--grid",
        str(grid), "--json", str(tmp_path / "records" / "cam.json"),
    )  # fmt: skip
    assert status == 0 and grid.is_file() and (tmp_path / "records" / "cam.json").is_file(), err


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_write_that_fails_at_run_time_is_one_line(capsys, tmp_path, cifar_run):
    # /proc looks writable to the check (to root, too) but holds no folders of ours.
    photo = str(REPO / "examples" / "photos" / "cat.png")
    out = ("--out", str(tmp_path / "out"))
    for extra in (("--out", "/proc/resdeep/cams"), (*out, "--grid", "/proc/resdeep/grid.png")):
        status, _, err = run_main(capsys, "cam", photo, "--checkpoint", str(cifar_run), *extra)
        assert status == 1 and err.startswith("error: cannot write /proc/resdeep"), err
        assert err.count("\n") == 1, err
