"""Tests of lightsam.data: real mnist5k splits, the tensor loader, and torchvision-format files."""

from __future__ import annotations

import hashlib
import pickle
import re
import struct
import urllib.error
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from lightsam.data import (
    DATASETS,
    DatasetInfo,
    DatasetUnavailableError,
    ImageSplit,
    TensorLoader,
    load_imagefolder,
    load_splits,
    make_imagefolder_loader,
)


def _row_hashes(split: ImageSplit) -> set[bytes]:
    return {hashlib.sha256(image.numpy().tobytes()).digest() for image in split.images}


@pytest.fixture(scope="module")
def mnist5k() -> tuple[DatasetInfo, dict[str, ImageSplit]]:
    return load_splits("mnist5k", data_dir="unused", val_size=500, split_seed=0)


# ----------------------------------------------------------------------------------- mnist5k


def test_mnist5k_shapes_dtypes_and_sizes(mnist5k: tuple[DatasetInfo, dict[str, ImageSplit]]):
    info, splits = mnist5k
    assert (info.name, info.num_classes, info.in_channels, info.image_size) == (
        "mnist5k",
        10,
        1,
        28,
    )
    assert {name: len(split) for name, split in splits.items()} == {
        "train": 3500,
        "val": 500,
        "test": 1000,
    }
    for split in splits.values():
        assert split.images.dtype == torch.uint8
        assert split.images.shape[1:] == (1, 28, 28)
        assert split.labels.dtype == torch.int64
        assert split.labels.unique().tolist() == list(range(10))
    # Pixels are the raw 0..255 values (not rescaled) and digits are real, mostly-black images.
    assert int(splits["train"].images.max()) == 255
    assert 0.1 < splits["train"].images.float().mean().item() / 255 < 0.16
    # The fixed test rule: the last 100 images of each digit.
    assert torch.bincount(splits["test"].labels).tolist() == [100] * 10


def test_mnist5k_splits_are_disjoint(mnist5k: tuple[DatasetInfo, dict[str, ImageSplit]]):
    _, splits = mnist5k
    train, val, test = (_row_hashes(splits[name]) for name in ("train", "val", "test"))
    assert len(train) == 3500 and len(val) == 500 and len(test) == 1000
    assert not train & val and not train & test and not val & test


def test_mnist5k_split_is_deterministic_and_seeded(
    mnist5k: tuple[DatasetInfo, dict[str, ImageSplit]],
):
    _, splits = mnist5k
    _, again = load_splits("mnist5k", data_dir="unused", val_size=500, split_seed=0)
    for name in ("train", "val", "test"):
        assert torch.equal(splits[name].images, again[name].images)
        assert torch.equal(splits[name].labels, again[name].labels)
    _, other = load_splits("mnist5k", data_dir="unused", val_size=500, split_seed=1)
    assert _row_hashes(other["val"]) != _row_hashes(splits["val"])
    pool = _row_hashes(splits["train"]) | _row_hashes(splits["val"])
    assert _row_hashes(other["train"]) | _row_hashes(other["val"]) == pool
    # The test set depends neither on the seed nor on val_size.
    _, bigger_val = load_splits("mnist5k", data_dir="unused", val_size=1000, split_seed=3)
    assert len(bigger_val["train"]) == 3000 and len(bigger_val["val"]) == 1000
    for variant in (other, bigger_val):
        assert torch.equal(variant["test"].images, splits["test"].images)


def test_mnist5k_split_is_pinned(mnist5k: tuple[DatasetInfo, dict[str, ImageSplit]]):
    """The hash rule must give the same split on any machine and library version: pin it."""
    _, splits = mnist5k
    assert torch.bincount(splits["val"].labels).tolist() == [54, 53, 46, 58, 54, 47, 47, 39, 60, 42]
    labels_digest = hashlib.sha256(str(splits["val"].labels.tolist()).encode()).hexdigest()
    images_digest = hashlib.sha256(splits["val"].images.numpy().tobytes()).hexdigest()
    assert (labels_digest[:16], images_digest[:16]) == ("298ee5bd6816fa9a", "53e05b025f7b1a57")


def test_invalid_dataset_arguments():
    with pytest.raises(ValueError, match="valid names: mnist5k, mnist, cifar10"):
        load_splits("svhn", data_dir="unused", val_size=10)
    with pytest.raises(ValueError, match="load_imagefolder"):
        load_splits("imagenet", data_dir="unused", val_size=10)
    with pytest.raises(ValueError, match="val_size"):
        load_splits("mnist5k", data_dir="unused", val_size=4000)
    with pytest.raises(ValueError, match="val_size"):
        load_splits("mnist5k", data_dir="unused", val_size=-1)
    assert DATASETS == ("mnist5k", "mnist", "cifar10", "cifar100", "imagenet")


def test_image_split_validates_its_tensors():
    with pytest.raises(ValueError, match="uint8"):
        ImageSplit(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="int64"):
        ImageSplit(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.int32))
    with pytest.raises(ValueError, match="3 labels"):
        ImageSplit(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64))


# -------------------------------------------------------------------------------- TensorLoader

# mean 0 and std 1 make x = pixel / 255, so the loader's output can be mapped back to pixels.
PLAIN_INFO = DatasetInfo("plain", 10, 3, 8, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


def _numbered_split(n: int = 50) -> ImageSplit:
    """Random 3x8x8 images whose label is their index, so batches can be traced back."""
    generator = torch.Generator().manual_seed(123)
    images = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=generator)
    return ImageSplit(images, torch.arange(n))


def _epoch(loader: TensorLoader, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader.set_epoch(epoch)
    return list(loader)


def _to_pixels(x: torch.Tensor) -> torch.Tensor:
    return (x * 255).round().to(torch.uint8)


@pytest.mark.parametrize(("drop_last", "batches", "seen"), [(False, 7, 50), (True, 6, 48)])
def test_loader_covers_an_epoch_exactly_once(drop_last: bool, batches: int, seen: int):
    split = _numbered_split()
    loader = TensorLoader(
        split, PLAIN_INFO, batch_size=8, shuffle=True, drop_last=drop_last, seed=0
    )
    assert len(loader) == batches
    batch_list = _epoch(loader, 0)
    assert len(batch_list) == batches
    labels = torch.cat([y for _, y in batch_list])
    assert len(labels) == seen and len(set(labels.tolist())) == seen
    assert labels.tolist() != sorted(labels.tolist())  # shuffled
    for x, y in batch_list:
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert torch.equal(_to_pixels(x), split.images[y])  # images travel with their labels


def test_loader_without_shuffle_keeps_the_order():
    loader = TensorLoader(_numbered_split(), PLAIN_INFO, batch_size=16, shuffle=False)
    assert torch.cat([y for _, y in _epoch(loader, 5)]).tolist() == list(range(50))


@pytest.mark.parametrize("augment", ["none", "crop_flip"])
def test_loader_epoch_depends_only_on_seed_and_epoch(augment: str):
    def make(seed: int) -> TensorLoader:
        return TensorLoader(
            _numbered_split(), PLAIN_INFO, batch_size=8, shuffle=True, augment=augment, seed=seed
        )

    uninterrupted = make(seed=7)
    for epoch in range(3):
        reference = _epoch(uninterrupted, epoch)
    resumed = _epoch(make(seed=7), 2)  # a fresh loader, as after a restart at epoch 2
    assert len(resumed) == len(reference)
    for (x, y), (x_ref, y_ref) in zip(resumed, reference, strict=True):
        assert torch.equal(x, x_ref) and torch.equal(y, y_ref)
    order = torch.cat([y for _, y in reference])
    assert not torch.equal(torch.cat([y for _, y in _epoch(make(seed=7), 1)]), order)
    assert not torch.equal(torch.cat([y for _, y in _epoch(make(seed=8), 2)]), order)


def test_crop_flip_changes_images_by_padded_crops_and_flips():
    split = _numbered_split()
    loader = TensorLoader(
        split, PLAIN_INFO, batch_size=10, shuffle=False, augment="crop_flip", seed=1
    )
    changed = 0
    flipped = 0
    for x, y in _epoch(loader, 0):
        assert x.shape == (len(y), 3, 8, 8)
        for pixels, label in zip(_to_pixels(x), y, strict=True):
            original = split.images[label]
            padded = torch.nn.functional.pad(original, (4, 4, 4, 4))  # zero padding
            candidates = [
                (padded[:, i : i + 8, j : j + 8], flip)
                for i in range(9)
                for j in range(9)
                for flip in (False, True)
            ]
            matches = [
                flip
                for crop, flip in candidates
                if torch.equal(pixels, crop.flip(-1) if flip else crop)
            ]
            assert matches, "output is not a zero-padded 4-pixel crop, flipped or not"
            changed += not torch.equal(pixels, original)
            flipped += all(matches)
    assert changed > 40  # almost every image is shifted or flipped
    assert 10 < flipped < 40  # about half are flipped


def test_loader_normalisation_statistics(mnist5k: tuple[DatasetInfo, dict[str, ImageSplit]]):
    info, splits = mnist5k
    loader = TensorLoader(splits["train"], info, batch_size=500, shuffle=True, seed=0)
    x = torch.cat([x for x, _ in _epoch(loader, 0)])
    assert x.shape == (3500, 1, 28, 28)
    assert abs(x.mean().item()) < 0.05
    assert abs(x.std().item() - 1.0) < 0.05
    assert x.min().item() == pytest.approx(-0.1307 / 0.3081, abs=1e-5)


def test_loader_rejects_invalid_arguments():
    split = _numbered_split()
    with pytest.raises(ValueError, match=r"augment must be one of \('none', 'crop_flip'\)"):
        TensorLoader(split, PLAIN_INFO, batch_size=8, shuffle=True, augment="cutout")
    with pytest.raises(ValueError, match="batch_size"):
        TensorLoader(split, PLAIN_INFO, batch_size=0, shuffle=True)
    mono = DatasetInfo("mono", 10, 1, 8, (0.5,), (0.5,))
    with pytest.raises(ValueError, match="3 channels"):
        TensorLoader(split, mono, batch_size=8, shuffle=True)
    loader = TensorLoader(split, PLAIN_INFO, batch_size=8, shuffle=True)
    with pytest.raises(ValueError, match="epoch"):
        loader.set_epoch(-1)


# ------------------------------------------------- torchvision datasets in their on-disk format


def _write_idx(path: Path, array: np.ndarray) -> None:
    """An uncompressed idx file as in MNIST: magic 0x0000 08 <ndim>, big-endian dims, uint8."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _random_images(n: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def test_mnist_from_idx_files(tmp_path: Path):
    raw = tmp_path / "MNIST" / "raw"  # where torchvision.datasets.MNIST reads its files
    raw.mkdir(parents=True)
    train_images, test_images = _random_images(60, (28, 28), 0), _random_images(20, (28, 28), 1)
    train_labels, test_labels = np.arange(60) % 10, (np.arange(20) * 3) % 10
    _write_idx(raw / "train-images-idx3-ubyte", train_images)
    _write_idx(raw / "train-labels-idx1-ubyte", train_labels)
    _write_idx(raw / "t10k-images-idx3-ubyte", test_images)
    _write_idx(raw / "t10k-labels-idx1-ubyte", test_labels)

    info, splits = load_splits("mnist", data_dir=tmp_path, val_size=12, split_seed=0)
    assert (info.num_classes, info.in_channels, info.image_size) == (10, 1, 28)
    assert info.mean == (0.1307,) and info.std == (0.3081,)
    assert torch.equal(splits["test"].images, torch.from_numpy(test_images).unsqueeze(1))
    assert splits["test"].labels.tolist() == test_labels.tolist()
    assert (len(splits["train"]), len(splits["val"])) == (48, 12)
    assert _row_hashes(splits["train"]).isdisjoint(_row_hashes(splits["val"]))
    # Every training image lands in train or val, with its own label.
    for split in (splits["train"], splits["val"]):
        for image, label in zip(split.images, split.labels, strict=True):
            index = next(i for i in range(60) if np.array_equal(train_images[i], image[0].numpy()))
            assert train_labels[index] == label


def _write_pickle(path: Path, content: dict[str, object]) -> None:
    with path.open("wb") as file:
        pickle.dump(content, file)


def _cifar_rows(n: int, seed: int) -> np.ndarray:
    """CIFAR's row layout: 3,072 bytes per image, the red, green then blue 32x32 planes."""
    return _random_images(n, (3 * 32 * 32,), seed)


def _use_fixture_checksums(
    monkeypatch: pytest.MonkeyPatch, cls: type[torchvision.datasets.CIFAR10], folder: Path
) -> None:
    """torchvision verifies the md5 of each CIFAR file against the real files' sums. The tiny
    files written here cannot match them, so replace only the expected sums with those of the
    fixture files: torchvision's integrity check itself still runs (see the corruption test)."""

    def md5(name: str) -> str:
        return hashlib.md5((folder / name).read_bytes()).hexdigest()

    monkeypatch.setattr(cls, "train_list", [[name, md5(name)] for name, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[name, md5(name)] for name, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5(cls.meta["filename"])})


CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer"]
CIFAR10_CLASSES += ["dog", "frog", "horse", "ship", "truck"]


def _write_cifar10(root: Path) -> tuple[np.ndarray, list[int], np.ndarray, list[int]]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    train_rows, test_rows = _cifar_rows(50, 0), _cifar_rows(10, 1)
    train_labels = [i % 10 for i in range(50)]
    test_labels = [(7 * i) % 10 for i in range(10)]
    for batch in range(5):
        rows = slice(10 * batch, 10 * batch + 10)
        _write_pickle(
            folder / f"data_batch_{batch + 1}",
            {
                "batch_label": f"training batch {batch + 1} of 5",
                "labels": train_labels[rows],
                "data": train_rows[rows],
                "filenames": [f"img_{i}.png" for i in range(50)][rows],
            },
        )
    _write_pickle(
        folder / "test_batch",
        {
            "batch_label": "testing batch 1 of 1",
            "labels": test_labels,
            "data": test_rows,
            "filenames": [f"test_{i}.png" for i in range(10)],
        },
    )
    _write_pickle(
        folder / "batches.meta",
        {"num_cases_per_batch": 10, "label_names": CIFAR10_CLASSES, "num_vis": 3072},
    )
    return train_rows, train_labels, test_rows, test_labels


def test_cifar10_from_pickled_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    train_rows, train_labels, test_rows, test_labels = _write_cifar10(tmp_path)
    _use_fixture_checksums(
        monkeypatch, torchvision.datasets.CIFAR10, tmp_path / "cifar-10-batches-py"
    )

    info, splits = load_splits("cifar10", data_dir=tmp_path, val_size=5, split_seed=0)
    assert (info.num_classes, info.in_channels, info.image_size) == (10, 3, 32)
    assert info.mean == (0.4914, 0.4822, 0.4465) and info.std == (0.2470, 0.2435, 0.2616)
    assert (len(splits["train"]), len(splits["val"]), len(splits["test"])) == (45, 5, 10)
    expected_test = torch.from_numpy(test_rows).reshape(10, 3, 32, 32)  # CHW planes
    assert torch.equal(splits["test"].images, expected_test)
    assert splits["test"].labels.tolist() == test_labels
    expected_train = torch.from_numpy(train_rows).reshape(50, 3, 32, 32)
    for split in (splits["train"], splits["val"]):
        for image, label in zip(split.images, split.labels, strict=True):
            index = next(i for i in range(50) if torch.equal(expected_train[i], image))
            assert train_labels[index] == label
    assert _row_hashes(splits["train"]).isdisjoint(_row_hashes(splits["val"]))


def test_cifar10_corrupted_file_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _write_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    _use_fixture_checksums(monkeypatch, torchvision.datasets.CIFAR10, folder)
    (folder / "data_batch_3").write_bytes(b"truncated")
    with pytest.raises(DatasetUnavailableError, match="corrupted"):
        load_splits("cifar10", data_dir=tmp_path, val_size=5)


def test_cifar100_from_pickled_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    train_rows, test_rows = _cifar_rows(30, 2), _cifar_rows(8, 3)
    fine_train, fine_test = [(i * 37) % 100 for i in range(30)], [99 - i for i in range(8)]
    for name, rows, fine in (("train", train_rows, fine_train), ("test", test_rows, fine_test)):
        _write_pickle(
            folder / name,
            {
                "filenames": [f"{name}_{i}.png" for i in range(len(rows))],
                "batch_label": f"{name}ing batch 1 of 1",
                "fine_labels": fine,
                "coarse_labels": [label // 5 for label in fine],
                "data": rows,
            },
        )
    _write_pickle(
        folder / "meta",
        {
            "fine_label_names": [f"class_{i}" for i in range(100)],
            "coarse_label_names": [f"superclass_{i}" for i in range(20)],
        },
    )
    _use_fixture_checksums(monkeypatch, torchvision.datasets.CIFAR100, folder)

    info, splits = load_splits("cifar100", data_dir=tmp_path, val_size=6, split_seed=4)
    assert (info.num_classes, info.in_channels) == (100, 3)
    assert info.mean == (0.5071, 0.4865, 0.4409) and info.std == (0.2673, 0.2564, 0.2762)
    assert (len(splits["train"]), len(splits["val"])) == (24, 6)
    assert torch.equal(splits["test"].images, torch.from_numpy(test_rows).reshape(8, 3, 32, 32))
    assert splits["test"].labels.tolist() == fine_test  # fine labels, not coarse ones
    held_labels = splits["train"].labels.tolist() + splits["val"].labels.tolist()
    assert sorted(held_labels) == sorted(fine_train)


@pytest.mark.parametrize(
    ("name", "directory", "manual_hint"),
    [
        ("mnist", "MNIST/raw", "t10k-labels-idx1-ubyte.gz from https://"),
        ("cifar10", "cifar-10-batches-py", "cifar-10-python.tar.gz and extract it"),
        ("cifar100", "cifar-100-python", "cifar-100-python.tar.gz and extract it"),
    ],
)
def test_missing_dataset_error_names_directory(
    tmp_path: Path, name: str, directory: str, manual_hint: str
):
    with pytest.raises(DatasetUnavailableError) as raised:
        load_splits(name, data_dir=tmp_path, val_size=5)
    message = str(raised.value)
    assert repr(name) in message
    assert f"{tmp_path.resolve() / directory}/" in message
    assert "missing" in message and "download=True" in message and manual_hint in message
    assert isinstance(raised.value, RuntimeError)


def test_failed_download_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Offline, torchvision's download raises URLError; simulate that without a network."""

    def offline(url: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError(f"offline: {url}")

    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", offline)
    with pytest.raises(DatasetUnavailableError, match="downloading failed") as raised:
        load_splits("cifar10", data_dir=tmp_path, val_size=5, download=True)
    assert "offline: https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in str(raised.value)


# ----------------------------------------------------------------------------------- ImageFolder


def _write_imagefolder(root: Path) -> None:
    rng = np.random.default_rng(0)
    for part, count in (("train", 6), ("val", 2)):
        for name in ("cat", "dog"):
            (root / part / name).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / part / name / f"{name}_{i}.png")


def test_imagefolder_splits(tmp_path: Path):
    _write_imagefolder(tmp_path)
    info, splits = load_imagefolder(tmp_path, val_size=3, split_seed=0, image_size=8)
    assert (info.name, info.num_classes, info.in_channels, info.image_size) == (
        "imagenet",
        2,
        3,
        8,
    )
    assert {name: len(split) for name, split in splits.items()} == {
        "train": 9,
        "val": 3,
        "test": 4,
    }
    for split in splits.values():
        image, label = split[0]
        assert image.shape == (3, 8, 8) and image.dtype == torch.float32
        assert label in (0, 1)
    train_paths = {splits["train"].base.samples[i][0] for i in splits["train"].indices}
    val_paths = {splits["val"].base.samples[i][0] for i in splits["val"].indices}
    assert len(train_paths | val_paths) == 12 and not train_paths & val_paths
    _, again = load_imagefolder(tmp_path, val_size=3, split_seed=0, image_size=8)
    assert again["val"].indices == splits["val"].indices
    _, reseeded = load_imagefolder(tmp_path, val_size=3, split_seed=5, image_size=8)
    assert reseeded["val"].indices != splits["val"].indices
    # Evaluation transforms are deterministic.
    assert torch.equal(splits["test"][1][0], splits["test"][1][0])


def test_imagefolder_loader_epochs_are_reproducible(tmp_path: Path):
    _write_imagefolder(tmp_path)
    _, splits = load_imagefolder(tmp_path, val_size=3, split_seed=0, image_size=8)

    def epoch(seed: int, epoch: int, after: Sequence[int] = ()) -> list[torch.Tensor]:
        loader = make_imagefolder_loader(
            splits["train"], batch_size=4, shuffle=True, seed=seed, num_workers=1
        )
        for previous in after:
            loader.sampler.set_epoch(previous)
            list(loader)
        loader.sampler.set_epoch(epoch)
        return [x for x, _ in loader]

    reference = epoch(seed=0, epoch=2)
    assert [x.shape for x in reference] == [(4, 3, 8, 8), (4, 3, 8, 8), (1, 3, 8, 8)]
    # A run resumed at epoch 2 sees the same order and the same worker-side random crops as an
    # uninterrupted run that went through epochs 0 and 1 first.
    for x, x_again in zip(epoch(seed=0, epoch=2, after=[0, 1]), reference, strict=True):
        assert torch.equal(x, x_again)
    other_seed = epoch(seed=1, epoch=2)
    assert not all(torch.equal(x, y) for x, y in zip(other_seed, reference, strict=True))

    loader = make_imagefolder_loader(
        splits["train"], batch_size=4, shuffle=True, seed=0, num_workers=0
    )
    orders = []
    for e in range(3):
        loader.sampler.set_epoch(e)
        orders.append(list(loader.sampler))
    assert sorted(orders[0]) == list(range(9))
    assert orders[0] != orders[1] and orders[1] != orders[2]


def test_imagefolder_missing_directory(tmp_path: Path):
    (tmp_path / "train" / "cat").mkdir(parents=True)
    with pytest.raises(DatasetUnavailableError, match=re.escape(f"{tmp_path.resolve() / 'val'}/")):
        load_imagefolder(tmp_path, val_size=1, split_seed=0, image_size=8)


TRUNCATED_LABELS = b"\0\0\x08\x01\0\0\0\x14" + b"\1" * 5  # 20 labels announced, 5 there


def _write_mnist(raw: Path) -> None:
    raw.mkdir(parents=True)
    _write_idx(raw / "train-images-idx3-ubyte", _random_images(60, (28, 28), 0))
    _write_idx(raw / "train-labels-idx1-ubyte", np.arange(60) % 10)
    _write_idx(raw / "t10k-images-idx3-ubyte", _random_images(20, (28, 28), 1))
    _write_idx(raw / "t10k-labels-idx1-ubyte", np.arange(20) % 10)


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        ({"train-images-idx3-ubyte": b""}, ["train-images-idx3-ubyte"]),
        ({"t10k-labels-idx1-ubyte": TRUNCATED_LABELS}, ["t10k-labels-idx1-ubyte"]),
        ({"train-labels-idx1-ubyte": b"not an idx file", "t10k-images-idx3-ubyte": b""},
         ["train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"]),
    ],
)  # fmt: skip
def test_damaged_mnist_files_are_named(tmp_path: Path, damage: dict[str, bytes], named: list[str]):
    raw = tmp_path / "MNIST" / "raw"
    _write_mnist(raw)
    for name, content in damage.items():
        (raw / name).write_bytes(content)
    with pytest.raises(DatasetUnavailableError, match="damaged: ") as error:
        load_splits("mnist", data_dir=tmp_path, val_size=12)
    state = str(error.value).split("damaged: ")[1].split(";")[0]
    assert sorted(state.split(", ")) == sorted(named)
    assert "--download" in str(error.value)


def test_a_damaged_cifar_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _write_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    _use_fixture_checksums(monkeypatch, torchvision.datasets.CIFAR10, folder)
    (folder / "test_batch").write_bytes(b"")
    with pytest.raises(DatasetUnavailableError, match="damaged: test_batch; delete them"):
        load_splits("cifar10", data_dir=tmp_path, val_size=5)
