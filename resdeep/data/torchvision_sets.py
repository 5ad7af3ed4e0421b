"""CIFAR-10/100, SVHN, MNIST and Fashion-MNIST from their standard files, as uint8 tensors.

torchvision downloads all of them (and checks the archive's md5 when it does). MNIST and
Fashion-MNIST are then read through torchvision, which only checks that the raw files exist.
CIFAR and SVHN are read here: torchvision's classes re-hash every file on each construction and
refuse anything whose md5 is not the official one, while the formats (pickled batches, one
.mat file) take a few lines to read. That keeps loading fast, and lets the tests run on small
files written in the same format.
"""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from resdeep.data.splits import DataError, Source, Split


def _datasets():
    """torchvision.datasets, imported on first use: importing torchvision costs seconds."""
    from torchvision import datasets

    return datasets


MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
# What a damaged or foreign file raises while being parsed.
READ_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    KeyError,
    TypeError,
    AssertionError,
    pickle.UnpicklingError,
)


def _error_text(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:200]


def _ensure_files(
    name: str,
    root: Path,
    expected: str,
    paths: list[Path],
    download: bool,
    fetch: Callable[[], object],
) -> None:
    """Download when asked and needed; fail with one line that says where the files belong."""
    if all(path.is_file() for path in paths):
        return
    if download:
        made = [folder for folder in (root, *root.parents) if not folder.exists()]
        try:
            fetch()
        # Network, HTTP, checksum and disk errors all mean the same thing to the user.
        except Exception as error:
            # The folders the download made (inside a new root, all of them), deepest first,
            # while they are empty: a failed download leaves the file system as it was.
            inside = sorted(root.rglob("*"), reverse=True) if root in made else []
            for folder in [*inside, *made]:
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise DataError(
                f"{name}: download to {root} failed ({_error_text(error)}); "
                f"copy {expected} there by hand or check the network"
            ) from error
        if all(path.is_file() for path in paths):
            return
    raise DataError(
        f"{name} not found under {root} (expected {expected}); "
        "pass data.download=true or point data.root at a folder holding it"
    )


def _unreadable(name: str, where: Path, error: BaseException) -> DataError:
    return DataError(
        f"{name}: cannot read the files in {where} ({_error_text(error)}); "
        "delete them and download again"
    )


def _unpickle(path: Path) -> dict:
    with path.open("rb") as file:
        return pickle.load(file, encoding="latin1")  # the batches were pickled by Python 2


def _cifar_batches(paths: list[Path], label_key: str) -> Split:
    batches = [_unpickle(path) for path in paths]
    # Each row is 3072 bytes: the red plane, then green, then blue, row-major, i.e. already CHW.
    images = np.concatenate([batch["data"] for batch in batches]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([np.asarray(batch[label_key], dtype=np.int64) for batch in batches])
    return Split(torch.from_numpy(images.astype(np.uint8)), torch.from_numpy(labels))


def _cifar_source(
    name: str,
    train_files: list[Path],
    test_file: Path,
    meta_file: Path,
    label_key: str,
    names_key: str,
) -> Source:
    try:
        train = _cifar_batches(train_files, label_key)
        test = _cifar_batches([test_file], label_key)
        classes = list(_unpickle(meta_file)[names_key])
    except READ_ERRORS as error:
        raise _unreadable(name, test_file.parent, error) from error
    # Objects in photos keep their class when mirrored; 4 px is the paper's crop padding.
    return Source(train, test, classes, flip=True, pad_crop=4)


def cifar10_source(root: Path, download: bool) -> Source:
    base = root / "cifar-10-batches-py"
    train_files = [base / f"data_batch_{index}" for index in range(1, 6)]
    test_file, meta_file = base / "test_batch", base / "batches.meta"
    _ensure_files(
        "cifar10",
        root,
        "cifar-10-batches-py/",
        [*train_files, test_file, meta_file],
        download,
        fetch=lambda: _datasets().CIFAR10(root, train=True, download=True),
    )
    return _cifar_source("cifar10", train_files, test_file, meta_file, "labels", "label_names")


def cifar100_source(root: Path, download: bool) -> Source:
    base = root / "cifar-100-python"
    train_file, test_file, meta_file = base / "train", base / "test", base / "meta"
    _ensure_files(
        "cifar100",
        root,
        "cifar-100-python/",
        [train_file, test_file, meta_file],
        download,
        fetch=lambda: _datasets().CIFAR100(root, train=True, download=True),
    )
    return _cifar_source(
        "cifar100", [train_file], test_file, meta_file, "fine_labels", "fine_label_names"
    )


def _svhn_mat(path: Path) -> Split:
    import scipy.io  # only SVHN needs it

    mat = scipy.io.loadmat(path)
    # X is (H, W, C, N); y holds 1..10, where 10 is the digit 0 (torchvision maps it the same way).
    images = np.ascontiguousarray(mat["X"].transpose(3, 2, 0, 1), dtype=np.uint8)
    labels = mat["y"].astype(np.int64).reshape(-1) % 10
    return Split(torch.from_numpy(images), torch.from_numpy(labels))


def svhn_source(root: Path, download: bool) -> Source:
    train_file, test_file = root / "train_32x32.mat", root / "test_32x32.mat"

    def fetch() -> None:
        for split in ("train", "test"):
            _datasets().SVHN(root, split=split, download=True)

    _ensure_files(
        "svhn", root, "train_32x32.mat and test_32x32.mat", [train_file, test_file], download, fetch
    )
    try:
        train, test = _svhn_mat(train_file), _svhn_mat(test_file)
    except READ_ERRORS as error:
        raise _unreadable("svhn", root, error) from error
    # A mirrored 2 or 5 is another glyph; the images are 32x32 like CIFAR, so the same 4 px crop.
    return Source(train, test, [str(digit) for digit in range(10)], flip=False, pad_crop=4)


def mnist_source(name: str, root: Path, download: bool) -> Source:
    """`mnist` or `fashion_mnist`: torchvision reads both from <Class>/raw/ under root."""
    dataset_class = {"mnist": _datasets().MNIST, "fashion_mnist": _datasets().FashionMNIST}[name]
    raw = root / dataset_class.__name__ / "raw"
    _ensure_files(
        name,
        root,
        f"{dataset_class.__name__}/raw/*-ubyte",
        [raw / file for file in MNIST_FILES],
        download,
        fetch=lambda: dataset_class(root, train=True, download=True),
    )
    try:
        train, test = (dataset_class(root, train=is_train) for is_train in (True, False))
    except (RuntimeError, *READ_ERRORS) as error:
        raise _unreadable(name, raw, error) from error
    train_split, test_split = (
        Split(dataset.data.unsqueeze(1).contiguous(), dataset.targets.long())
        for dataset in (train, test)
    )
    # MNIST strokes sit in the central 20x20 of 28x28, so a 2 px shift never cuts them off;
    # Fashion-MNIST items reach the border, where 2 px (7 %) still loses little.
    # No flips: a mirrored digit is another glyph, and Fashion-MNIST shoes all point one way,
    # so mirrors would teach a pose the test set never shows.
    return Source(train_split, test_split, list(dataset_class.classes), flip=False, pad_crop=2)
