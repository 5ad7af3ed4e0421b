"""resdeep.data: every data set on real or fake-but-real-format files, and the device loader."""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import torchvision
from PIL import Image
from sklearn.datasets import load_digits

from resdeep.data import (
    DATASET_NAMES,
    DataError,
    DeviceLoader,
    Split,
    build_data,
    normalize,
)
from resdeep.data.digits import NOISE_MAX
from resdeep.errors import UsageError


def rows_as_multiset(split: Split) -> list[bytes]:
    """Each sample as bytes (image + label), sorted: equal lists mean the same samples."""
    flat = split.images.reshape(len(split), -1).numpy()
    return sorted(
        row.tobytes() + bytes([label])
        for row, label in zip(flat, split.labels.tolist(), strict=True)
    )


# ---------------------------------------------------------------- digits


def test_digits_are_the_1797_real_images_split_three_ways() -> None:
    data = build_data("digits")
    for split in (data.train, data.val, data.test):
        assert split.images.shape[1:] == (1, 8, 8)
        assert split.images.dtype == torch.uint8
        assert split.labels.dtype == torch.int64
    assert data.in_channels == 1 and data.image_size == 8
    assert data.classes == [str(digit) for digit in range(10)]
    assert (data.flip, data.pad_crop) == (False, 1)
    assert len(data.train) + len(data.val) + len(data.test) == 1797
    assert len(data.test) == round(0.2 * 1797)

    # Together the splits are exactly sklearn's digits, each sample once (disjoint and covering).
    bunch = load_digits()
    reference = Split(
        torch.from_numpy(bunch.images * 255 / 16).round().to(torch.uint8).unsqueeze(1),
        torch.from_numpy(bunch.target),
    )
    union = Split(
        torch.cat([data.train.images, data.val.images, data.test.images]),
        torch.cat([data.train.labels, data.val.labels, data.test.labels]),
    )
    assert rows_as_multiset(union) == rows_as_multiset(reference)


def test_digits_test_set_is_fixed_while_val_follows_the_seed() -> None:
    first, second = build_data("digits", seed=0), build_data("digits", seed=1)
    assert torch.equal(first.test.images, second.test.images)
    assert torch.equal(first.test.labels, second.test.labels)
    assert not torch.equal(first.val.images, second.val.images)
    assert torch.equal(build_data("digits", seed=1).val.images, second.val.images)


def test_val_size_as_count_and_fraction() -> None:
    pool = 1797 - round(0.2 * 1797)
    assert len(build_data("digits", val_size=100).val) == 100
    by_fraction = build_data("digits", val_size=0.25)
    assert len(by_fraction.val) == round(0.25 * pool)
    assert len(by_fraction.train) == pool - round(0.25 * pool)
    assert len(build_data("digits", val_size=0).val) == 0
    for bad in (1.5, 0.0, -1, pool, True):
        with pytest.raises(DataError):
            build_data("digits", val_size=bad)


def test_class_subset_is_reindexed_and_heldout_returns_the_rest() -> None:
    full = build_data("digits")
    subset = build_data("digits", classes=[7, 3])
    assert subset.classes == ["7", "3"]
    assert subset.class_ids == (7, 3)
    assert full.class_ids == tuple(range(10))
    for split_name in ("train", "val", "test"):
        kept, every = getattr(subset, split_name), getattr(full, split_name)
        assert set(kept.labels.tolist()) <= {0, 1}
        # New label 0 is old 7 and new 1 is old 3, the same images in the same order.
        assert torch.equal(kept.images[kept.labels == 0], every.images[every.labels == 7])
        assert torch.equal(kept.images[kept.labels == 1], every.images[every.labels == 3])

    for bad in ([], [10], [3, 3]):  # what was typed cannot work: a usage error, exit 2
        with pytest.raises(UsageError, match="data.classes"):
            build_data("digits", classes=bad)


def test_image_size_upscales_every_split() -> None:
    native, large = build_data("digits"), build_data("digits", image_size=32)
    for split in (large.train, large.val, large.test):
        assert split.images.shape[1:] == (1, 32, 32)
        assert split.images.dtype == torch.uint8
    assert large.image_size == 32
    assert torch.equal(large.test.labels, native.test.labels)
    # Bilinear upscaling keeps the brightness: the train mean hardly moves.
    assert abs(large.mean[0] - native.mean[0]) < 0.02


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(DataError, match="cifar10") as error:
        build_data("imagenet")
    assert all(name in str(error.value) for name in DATASET_NAMES)


# ---------------------------------------------------------------- digits_placed


def test_digits_placed_boxes_hold_the_digit() -> None:
    data = build_data("digits_placed", canvas_size=32)
    assert (data.flip, data.pad_crop) == (False, 0)
    for split in (data.train, data.val, data.test):
        assert split.images.shape[1:] == (1, 32, 32)
        assert split.boxes is not None and split.boxes.shape == (len(split), 4)
        assert split.boxes.dtype == torch.float32
        x0, y0, x1, y1 = split.boxes.unbind(1)
        assert (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= 32).all() and (y1 <= 32).all()
        # Scaled digits are 12..20 px, their ink a bit narrower.
        assert ((x1 - x0) >= 4).all() and ((y1 - y0) >= 6).all()
        assert ((x1 - x0) <= 20).all() and ((y1 - y0) <= 20).all()
        for image, box in zip(split.images[:, 0], split.boxes.long(), strict=True):
            inside = torch.zeros_like(image, dtype=torch.bool)
            inside[box[1] : box[3], box[0] : box[2]] = True
            assert image[~inside].max() <= NOISE_MAX  # outside: background noise only
            assert image[inside].max() >= 200  # inside: a stroke


def test_digits_placed_is_deterministic_and_test_fixed() -> None:
    first, again = build_data("digits_placed", seed=3), build_data("digits_placed", seed=3)
    other = build_data("digits_placed", seed=4)
    assert torch.equal(first.train.images, again.train.images)
    assert torch.equal(first.train.boxes, again.train.boxes)
    assert not torch.equal(first.train.boxes, other.train.boxes)
    assert torch.equal(first.test.images, other.test.images)
    assert torch.equal(first.test.boxes, other.test.boxes)


def test_digits_placed_boxes_follow_a_resize() -> None:
    native = build_data("digits_placed", canvas_size=32)
    large = build_data("digits_placed", canvas_size=32, image_size=64)
    assert large.test.images.shape[1:] == (1, 64, 64)
    assert torch.equal(large.test.boxes, native.test.boxes * 2)


# ---------------------------------------------------------------- synthetic


def test_synthetic_shapes_determinism_and_learnable_labels() -> None:
    data = build_data(
        "synthetic", num_samples=400, num_classes=4, channels=2, image_size=16, seed=1
    )
    assert data.train.images.shape[1:] == (2, 16, 16)
    assert len(data.train) + len(data.val) == 400
    assert len(data.test) == 80
    assert data.classes == ["class_0", "class_1", "class_2", "class_3"]
    assert set(data.train.labels.tolist()) == {0, 1, 2, 3}
    again = build_data(
        "synthetic", num_samples=400, num_classes=4, channels=2, image_size=16, seed=1
    )
    assert torch.equal(data.train.images, again.train.images)
    other = build_data(
        "synthetic", num_samples=400, num_classes=4, channels=2, image_size=16, seed=2
    )
    assert not torch.equal(data.train.images, other.train.images)

    # Learnable: the nearest class mean of the train images labels the test images.
    train_x, test_x = data.train.images.flatten(1).float(), data.test.images.flatten(1).float()
    means = torch.stack([train_x[data.train.labels == k].mean(0) for k in range(4)])
    predicted = torch.cdist(test_x, means).argmin(1)
    assert (predicted == data.test.labels).float().mean() > 0.95


# ---------------------------------------------------------------- torchvision formats, fake files


def fake_images(count: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, *shape), dtype=np.uint8)


def write_pickle(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(content))


def write_cifar10(root: Path, per_batch: int) -> np.ndarray:
    """The real layout: 5 train batches, a test batch, batches.meta. Returns all NCHW images."""
    base = root / "cifar-10-batches-py"
    images = fake_images(6 * per_batch, (3, 32, 32), seed=0)
    labels = np.arange(6 * per_batch) % 10
    names = [
        "data_batch_1",
        "data_batch_2",
        "data_batch_3",
        "data_batch_4",
        "data_batch_5",
        "test_batch",
    ]
    for index, name in enumerate(names):
        rows = slice(index * per_batch, (index + 1) * per_batch)
        content = {"data": images[rows].reshape(per_batch, 3072), "labels": labels[rows].tolist()}
        write_pickle(base / name, content)
    write_pickle(base / "batches.meta", {"label_names": [f"name{k}" for k in range(10)]})
    return images


def test_cifar10_reads_the_pickled_batches(tmp_path: Path) -> None:
    images = write_cifar10(tmp_path, per_batch=8)
    data = build_data("cifar10", root=str(tmp_path), val_size=0)
    assert torch.equal(data.train.images, torch.from_numpy(images[:40]))
    assert torch.equal(data.test.images, torch.from_numpy(images[40:]))
    assert data.train.labels.tolist() == [k % 10 for k in range(40)]
    assert data.classes == [f"name{k}" for k in range(10)]
    assert (data.flip, data.pad_crop, data.in_channels, data.image_size) == (True, 4, 3, 32)
    split = build_data("cifar10", root=str(tmp_path), val_size=5)
    assert (len(split.train), len(split.val), len(split.test)) == (35, 5, 8)


def test_cifar100_reads_fine_labels(tmp_path: Path) -> None:
    base = tmp_path / "cifar-100-python"
    images = fake_images(30, (3, 32, 32), seed=1)
    for name, rows in (("train", slice(0, 20)), ("test", slice(20, 30))):
        count = rows.stop - rows.start
        content = {
            "data": images[rows].reshape(count, 3072),
            "fine_labels": [(7 * k) % 100 for k in range(count)],
            "coarse_labels": [0] * count,
        }
        write_pickle(base / name, content)
    write_pickle(
        base / "meta", {"fine_label_names": [f"f{k}" for k in range(100)], "coarse_label_names": []}
    )
    data = build_data("cifar100", root=str(tmp_path), val_size=0)
    assert torch.equal(data.test.images, torch.from_numpy(images[20:]))
    assert data.train.labels.tolist() == [(7 * k) % 100 for k in range(20)]
    assert len(data.classes) == 100 and data.classes[5] == "f5"


def test_svhn_reads_mat_files_and_maps_10_to_0(tmp_path: Path) -> None:
    for name, count, seed in (("train", 12, 2), ("test", 6, 3)):
        nchw = fake_images(count, (3, 32, 32), seed)
        labels = np.arange(count) % 10 + 1  # 1..10, 10 meaning the digit 0
        scipy.io.savemat(
            tmp_path / f"{name}_32x32.mat",
            {"X": nchw.transpose(2, 3, 1, 0), "y": labels.reshape(-1, 1).astype(np.uint8)},
        )
    data = build_data("svhn", root=str(tmp_path), val_size=0)
    assert torch.equal(data.test.images, torch.from_numpy(fake_images(6, (3, 32, 32), 3)))
    assert data.test.labels.tolist() == [1, 2, 3, 4, 5, 6]
    assert data.train.labels.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2]
    assert (data.flip, data.pad_crop) == (False, 4)


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX format of MNIST: magic (0x08 = uint8, number of dims), big-endian sizes, data."""
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


@pytest.mark.parametrize(
    ("name", "folder", "first_class"),
    [("mnist", "MNIST", "0 - zero"), ("fashion_mnist", "FashionMNIST", "T-shirt/top")],
)
def test_mnist_family_reads_idx_files(
    tmp_path: Path, name: str, folder: str, first_class: str
) -> None:
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    train, test = fake_images(20, (28, 28), seed=4), fake_images(10, (28, 28), seed=5)
    for prefix, images in (("train", train), ("t10k", test)):
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(images))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            idx_bytes(np.arange(len(images), dtype=np.uint8) % 10)
        )
    data = build_data(name, root=str(tmp_path), val_size=0)
    assert data.train.images.shape == (20, 1, 28, 28)
    assert torch.equal(data.test.images[:, 0], torch.from_numpy(test))
    assert data.test.labels.tolist() == [k % 10 for k in range(10)]
    assert data.classes[0] == first_class
    assert (data.flip, data.pad_crop) == (False, 2)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cifar10", "cifar-10-batches-py"),
        ("cifar100", "cifar-100-python"),
        ("svhn", "train_32x32.mat"),
        ("mnist", "MNIST/raw"),
        ("fashion_mnist", "FashionMNIST/raw"),
    ],
)
def test_missing_files_say_where_and_how_to_fix(tmp_path: Path, name: str, expected: str) -> None:
    with pytest.raises(DataError) as error:
        build_data(name, root=str(tmp_path / "nowhere"))
    message = str(error.value)
    assert "\n" not in message
    assert str((tmp_path / "nowhere").resolve()) in message
    assert expected in message
    assert "data.download=true" in message


def test_failed_download_is_a_one_line_data_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("[Errno 101] Network is unreachable\nmore detail")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataError, match="download to .* failed .*Network is unreachable") as error:
        build_data("cifar10", root=str(tmp_path), download=True)
    assert "\n" not in str(error.value)


def test_corrupt_file_is_a_data_error(tmp_path: Path) -> None:
    write_cifar10(tmp_path, per_batch=2)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="cannot read"):
        build_data("cifar10", root=str(tmp_path))


# ---------------------------------------------------------------- imagefolder


def write_png(
    path: Path, size: tuple[int, int], color: tuple[int, ...] | int, mode: str = "RGB"
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)


def test_imagefolder_single_tree_is_split_and_resized(tmp_path: Path) -> None:
    colors = {"cat": (255, 0, 0), "dog": (0, 255, 0), "emu": (0, 0, 255)}
    for name, color in colors.items():
        for index in range(5):
            # Every suffix `resdeep cam` reads is training data too (.tif was once skipped here).
            suffix = (".png", ".tif", ".tiff", ".bmp", ".gif")[index]  # lossless formats
            write_png(tmp_path / name / f"{index}{suffix}", (20 + index, 30), color)
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    data = build_data("imagefolder", root=str(tmp_path), image_size=16, val_size=2)
    assert data.classes == ["cat", "dog", "emu"]
    assert (len(data.train), len(data.val), len(data.test)) == (10, 2, 3)
    assert data.train.images.shape[1:] == (3, 16, 16)
    assert (data.flip, data.pad_crop) == (True, 2)
    # Each image is its class colour: label k lights channel k only.
    for split in (data.train, data.val, data.test):
        for image, label in zip(split.images, split.labels.tolist(), strict=True):
            assert image[label].min() == 255 and image.sum() == 255 * 16 * 16


def test_imagefolder_split_trees_and_gray(tmp_path: Path) -> None:
    for part, count in (("train", 4), ("val", 2), ("test", 3)):
        for name, shade in (("dark", 10), ("light", 240)):
            for index in range(count):
                write_png(tmp_path / part / name / f"{index}.png", (8, 8), shade, mode="L")
    data = build_data("imagefolder", root=str(tmp_path), image_size=8)
    assert (len(data.train), len(data.val), len(data.test)) == (8, 4, 6)
    assert data.in_channels == 1
    assert data.test.images[data.test.labels == 1].min() == 240


def test_imagefolder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a folder"):
        build_data("imagefolder", root=str(tmp_path / "missing"))
    with pytest.raises(DataError, match="no class folders"):
        build_data("imagefolder", root=str(tmp_path))
    (tmp_path / "cat").mkdir()
    with pytest.raises(DataError, match="no images"):
        build_data("imagefolder", root=str(tmp_path))
    write_png(tmp_path / "train" / "cat" / "0.png", (4, 4), (1, 2, 3))
    write_png(tmp_path / "val" / "cow" / "0.png", (4, 4), (1, 2, 3))
    with pytest.raises(DataError, match="cow"):
        build_data("imagefolder", root=str(tmp_path))


# ---------------------------------------------------------------- DeviceLoader

# The loader runs on the accelerator too when the machine has one.
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def id_split(count: int, size: int = 8) -> Split:
    """Labels are sample ids; each image is its id's pattern, asymmetric so flips show."""
    ramp = torch.arange(size, dtype=torch.uint8).view(1, 1, 1, size) * 20  # brighter to the right
    offset = torch.arange(count, dtype=torch.uint8).view(count, 1, 1, 1) % 50
    return Split((ramp + offset).expand(count, 3, size, size).contiguous(), torch.arange(count))


def pixel_loader(split: Split, **options: object) -> DeviceLoader:
    """A loader whose floats are the pixel values again (mean 0, std 1/255); batch 8 unless set."""
    channels = split.images.shape[1]
    options = {"batch_size": 8, **options}
    return DeviceLoader(split, mean=(0.0,) * channels, std=(1 / 255,) * channels, **options)


def epoch_labels(loader: DeviceLoader) -> list[list[int]]:
    return [labels.tolist() for _, labels in loader]


def test_loader_batches_and_length() -> None:
    split = id_split(10)
    loader = DeviceLoader(split, batch_size=4, mean=(0.5,) * 3, std=(0.25,) * 3)
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    images, labels = batches[0]
    assert images.shape == (4, 3, 8, 8) and images.dtype == torch.float32
    assert labels.dtype == torch.int64
    assert torch.cat([labels for _, labels in batches]).tolist() == list(range(10))
    assert len(pixel_loader(split, batch_size=4, drop_last=True)) == 2
    channels_last = next(iter(pixel_loader(split, channels_last=True)))[0]
    assert channels_last.is_contiguous(memory_format=torch.channels_last)


def test_loader_normalises_to_zero_mean_unit_std() -> None:
    data = build_data("synthetic", num_samples=256, channels=3, image_size=8)
    loader = DeviceLoader(data.train, batch_size=64, mean=data.mean, std=data.std)
    everything = torch.cat([images for images, _ in loader])
    assert torch.allclose(everything.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(everything.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    mean, std = (torch.tensor(s).view(1, -1, 1, 1) for s in (data.mean, data.std))
    restored = everything * std + mean  # undo the normalisation
    assert torch.allclose(restored, data.train.images.float() / 255, atol=1e-5)
    assert torch.allclose(normalize(data.train.images[:4], data.mean, data.std), everything[:4])


@pytest.mark.parametrize("device", DEVICES)
def test_random_crop_offsets_differ_per_sample(device: str) -> None:
    count, pad = 64, 2
    split = Split(torch.full((count, 1, 6, 6), 255, dtype=torch.uint8), torch.arange(count))
    loader = pixel_loader(split, batch_size=count, device=device, augment=True, pad_crop=pad)
    images = next(iter(loader))[0].cpu().round()
    padded = torch.nn.functional.pad(split.images[0, 0].float(), (pad,) * 4)
    windows = {
        (row, col): padded[row : row + 6, col : col + 6] for row in range(5) for col in range(5)
    }
    offsets = []
    for image in images[:, 0]:
        # Every output is one window of the zero-padded image.
        matches = [offset for offset, window in windows.items() if torch.equal(image, window)]
        assert len(matches) == 1
        offsets.append(matches[0])
    assert len(set(offsets)) > 10  # per-sample offsets, not one per batch


@pytest.mark.parametrize("device", DEVICES)
def test_flip_mirrors_about_half_the_samples(device: str) -> None:
    split = id_split(1000)
    loader = pixel_loader(split, batch_size=250, device=device, augment=True, flip=True)
    flipped = 0
    for images, labels in loader:
        images, original = images.cpu().round(), split.images[labels.cpu()].float()
        mirrored = (images == original.flip(3)).flatten(1).all(1)
        unchanged = (images == original).flatten(1).all(1)
        assert (mirrored ^ unchanged).all()  # each sample is either mirrored or untouched
        flipped += int(mirrored.sum())
    assert 400 < flipped < 600


def test_augmentation_is_off_unless_asked() -> None:
    split = id_split(16)
    images = torch.cat([images for images, _ in pixel_loader(split, pad_crop=4, flip=True)])
    assert torch.equal(images.round(), split.images.float())


def test_shuffle_is_reproducible_from_the_generator_seed() -> None:
    def loader(seed: int) -> DeviceLoader:
        generator = torch.Generator().manual_seed(seed)
        options = {"shuffle": True, "augment": True, "pad_crop": 2, "flip": True}
        return pixel_loader(id_split(100), generator=generator, **options)

    first, same, other = loader(5), loader(5), loader(6)
    for (images, labels), (same_images, same_labels) in zip(first, same, strict=True):
        assert torch.equal(images, same_images) and torch.equal(labels, same_labels)
    assert epoch_labels(first) != epoch_labels(other)
    assert sorted(sum(epoch_labels(first), [])) == list(range(100))
    assert epoch_labels(first) != epoch_labels(first)  # a new order each epoch
    # Without a generator the loader seeds one with 0: still reproducible.
    unseeded = [pixel_loader(id_split(100), shuffle=True) for _ in range(2)]
    assert epoch_labels(unseeded[0]) == epoch_labels(unseeded[1])


@pytest.mark.parametrize("device", DEVICES)
def test_state_dict_round_trip_resumes_mid_epoch(device: str) -> None:
    def loader(seed: int) -> DeviceLoader:
        generator = torch.Generator().manual_seed(seed)
        options = {"shuffle": True, "augment": True, "pad_crop": 2, "flip": True}
        return pixel_loader(id_split(50), device=device, generator=generator, **options)

    original = loader(11)
    epoch_labels(original)  # a full epoch
    stream = iter(original)
    for _ in range(3):
        next(stream)
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)  # what a checkpoint stores
    expected = [next(stream) for _ in range(4)]  # the rest of this epoch (7 batches) ...
    expected.append(next(iter(original)))  # ... and the first batch of the next

    restored = loader(99)  # a different seed: the restored state wins
    state = torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
    restored.load_state_dict(state)
    resumed = list(restored)
    resumed.append(next(iter(restored)))
    assert len(resumed) == len(expected) == 5
    for (images, labels), (want_images, want_labels) in zip(resumed, expected, strict=True):
        assert torch.equal(labels, want_labels)
        assert torch.equal(images, want_images)


def start_at_epoch(loader: DeviceLoader, epoch: int) -> DeviceLoader:
    """Position a loader at the start of `epoch`, through its public resume state."""
    loader.load_state_dict({"seed": loader.seed, "epoch": epoch, "batch": 0})
    return loader


def test_epoch_positions_and_abandoned_passes() -> None:
    first, second = (
        pixel_loader(id_split(40), shuffle=True),
        pixel_loader(id_split(40), shuffle=True),
    )
    epoch_labels(first)  # first has run epoch 0, second nothing
    start_at_epoch(first, 3)
    start_at_epoch(second, 3)
    assert epoch_labels(first) == epoch_labels(second)  # epoch 3 on both
    assert epoch_labels(first) == epoch_labels(second)  # then epoch 4 on both
    assert epoch_labels(first) != epoch_labels(pixel_loader(id_split(40), shuffle=True))

    # A pass abandoned mid-epoch is not continued by the next one: that starts a new epoch.
    abandoned, reference = (pixel_loader(id_split(40), shuffle=True) for _ in range(2))
    next(iter(abandoned))
    start_at_epoch(reference, 1)
    assert epoch_labels(abandoned) == epoch_labels(reference)


@pytest.mark.parametrize("count", [100, 101])
def test_distributed_ranks_share_the_epoch(count: int) -> None:
    def rank_loader(rank: int) -> DeviceLoader:
        generator = torch.Generator().manual_seed(7)
        loader = pixel_loader(
            id_split(count),
            batch_size=16,
            shuffle=True,
            generator=generator,
            rank=rank,
            world_size=2,
        )
        return start_at_epoch(loader, 2)

    zero, one = rank_loader(0), rank_loader(1)
    assert len(zero) == len(one) == 4
    ids_zero, ids_one = sum(epoch_labels(zero), []), sum(epoch_labels(one), [])
    assert len(ids_zero) == len(ids_one) == (count + 1) // 2
    assert set(ids_zero) | set(ids_one) == set(range(count))
    # Disjoint, except the one sample repeated to pad an odd epoch.
    assert len(set(ids_zero) & set(ids_one)) == count % 2
    # drop_last truncates instead: no sample twice, every rank the same whole batches.
    truncated = [
        pixel_loader(id_split(count), batch_size=16, rank=rank, world_size=2, drop_last=True)
        for rank in (0, 1)
    ]
    ids = [sum(epoch_labels(loader), []) for loader in truncated]
    assert len(ids[0]) == len(ids[1]) == 48
    assert not set(ids[0]) & set(ids[1])
