"""Data sets and their spike-time encodings.

Yin-Yang (bit-exact with the published generator), the bundled 8x8 digits and the user's IDX image
files (MNIST and the like).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import polars as pl
from numpy.typing import ArrayLike, NDArray

from delgrad_rs import _core
from delgrad_rs.idx import center_crop, read_idx_pair, resize, validation_order

if TYPE_CHECKING:
    from delgrad_rs.config import DataConfig

Split = Literal["train", "validation", "test"]
CLASS_NAMES = ("yang", "yin", "dot")
T_EARLY = _core.T_EARLY
T_LATE = _core.T_LATE


def yin_yang(split: Split = "train") -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Return one published split of the Yin-Yang data set.

    Parameters
    ----------
    split : {"train", "validation", "test"}
        5000 samples (seed 42), 1000 (seed 41) or 1000 (seed 40).

    Returns
    -------
    x : ndarray of float64, shape (n, 4)
        Rows ``[x, y, 1 - x, 1 - y]``.
    y : ndarray of int64, shape (n,)
        Classes 0 (yang), 1 (yin), 2 (dot).

    """
    return _core.yin_yang(split)


def encode(x: ArrayLike, t_early: float = T_EARLY, t_late: float = T_LATE) -> NDArray[np.float64]:
    """Encode values in [0, 1] as spike times ``t_early + x (t_late - t_early)``.

    Parameters
    ----------
    x : array_like, shape (n, features)
        Values.
    t_early, t_late : float
        Times of the values 0 and 1.

    Returns
    -------
    ndarray of float64
        Spike times, same shape as ``x``.

    """
    return _core.encode_times(x, t_early, t_late)


def yin_yang_frame(split: Split = "train") -> pl.DataFrame:
    """Return a split as a polars DataFrame.

    Parameters
    ----------
    split : {"train", "validation", "test"}
        The split.

    Returns
    -------
    polars.DataFrame
        Columns ``x``, ``y``, ``x_mirror``, ``y_mirror`` (float64), ``label`` (int64) and
        ``class`` (name).

    """
    x, y = yin_yang(split)
    return pl.DataFrame(
        {
            "x": x[:, 0],
            "y": x[:, 1],
            "x_mirror": x[:, 2],
            "y_mirror": x[:, 3],
            "label": y,
            "class": [CLASS_NAMES[int(c)] for c in y],
        }
    )


# ------------------------------------------------------------------------------------------------
# the bundled 8x8 digits

DIGITS_FILE = Path(__file__).parent / "data" / "digits.npz"
DIGITS_SPLIT_SEED = 0
DIGITS_SPLIT_SIZES = {"train": 1197, "validation": 300, "test": 300}
DIGITS_MAX = 16


@functools.cache
def _digits_all() -> tuple[NDArray[np.uint8], NDArray[np.uint8], NDArray[np.int64]]:
    try:
        with np.load(DIGITS_FILE, allow_pickle=False) as z:
            images, labels = z["images"], z["labels"]
    except (OSError, KeyError, ValueError) as e:  # pragma: no cover - a broken installation
        raise FileNotFoundError(f"the bundled digits data {DIGITS_FILE} is missing or corrupt: {e}") from None
    order = np.random.RandomState(DIGITS_SPLIT_SEED).permutation(labels.shape[0])
    images.setflags(write=False)
    labels.setflags(write=False)
    order.setflags(write=False)
    return images, labels, order


def digits(split: Split = "train") -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Return one split of the 8x8 handwritten digits bundled with the package.

    The 1797 images of scikit-learn's ``load_digits`` (UCI "Optical Recognition of Handwritten
    Digits", CC BY 4.0; see ``delgrad_rs/data/README.md``) are shuffled once with
    ``numpy.random.RandomState(0).permutation`` and cut into train (first 1197), validation (next
    300) and test (last 300). Nothing is downloaded.

    Parameters
    ----------
    split : {"train", "validation", "test"}
        The split.

    Returns
    -------
    x : ndarray of float64, shape (n, 64)
        Pixel intensities scaled to [0, 1] (raw value / 16), row-major 8x8.
    y : ndarray of int64, shape (n,)
        Digits 0..9.

    """
    if split not in DIGITS_SPLIT_SIZES:
        raise _core.OptionError(f"option split: expected 'train', 'validation' or 'test', got {split!r}")
    images, labels, order = _digits_all()
    start = 0
    for name, size in DIGITS_SPLIT_SIZES.items():
        if name == split:
            idx = order[start : start + size]
            break
        start += size
    return images[idx].astype(np.float64) / DIGITS_MAX, labels[idx].astype(np.int64)


def encode_latency(x: ArrayLike, t_early: float = T_EARLY, t_late: float = T_LATE) -> NDArray[np.float64]:
    """Latency-encode intensities in [0, 1]: brighter is earlier.

    ``t = t_early + (1 - x) (t_late - t_early)``: a full-intensity pixel spikes at ``t_early``, a
    black pixel at ``t_late`` (every input spikes exactly once).

    Parameters
    ----------
    x : array_like, shape (n, features)
        Intensities in [0, 1].
    t_early, t_late : float
        Times of intensity 1 and 0.

    Returns
    -------
    ndarray of float64
        Spike times, same shape as ``x``.

    """
    return encode(1.0 - np.asarray(x, dtype=np.float64), t_early, t_late)


# ------------------------------------------------------------------------------------------------
# data sets by name (what ``[data]`` of a configuration selects)

DATASETS = {"yin_yang": (4, 3), "digits": (64, 10), "idx": (0, 0)}  # idx: from the files and [data]


def _idx_images(data: DataConfig, which: Literal["train", "test"]) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Return the configured IDX images of one file pair, cropped and resized as ``[data]`` says."""
    images, labels = read_idx_pair(getattr(data, f"{which}_images"), getattr(data, f"{which}_labels"))
    if data.crop:
        images = center_crop(images, data.crop)
    if data.image_size:
        images = resize(images, data.image_size)
    return images, labels


def idx_split(data: DataConfig, split: Split) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Return one split of the configured IDX data set as intensities in [0, 1] and labels.

    The test split is the test files; ``data.validation_size`` samples of the training files, chosen
    by :func:`delgrad_rs.idx.validation_order` with ``data.split_seed``, are the validation split and
    the rest, in file order, the training split.

    Parameters
    ----------
    data : DataConfig
        The ``[data]`` section (``dataset = "idx"``).
    split : {"train", "validation", "test"}
        The split.

    Returns
    -------
    x : ndarray of float64, shape (n, pixels)
        Pixel value / 255, row-major.
    y : ndarray of int64, shape (n,)
        Labels, each < ``data.classes``.

    Raises
    ------
    InvalidValueError
        For faulty files (naming the file), a validation split that leaves no training sample, or labels
        outside ``0..data.classes - 1``.

    """
    images, labels = _idx_images(data, "test" if split == "test" else "train")
    if split != "test":
        count = labels.shape[0]
        if data.validation_size >= count:
            raise _core.InvalidValueError(
                f"option data.validation_size: {data.validation_size} leaves no training sample of the "
                f"{count} in {data.train_images!r}"
            )
        held = validation_order(count, data.split_seed)[: data.validation_size]
        keep = np.zeros(count, dtype=bool)
        keep[held] = True
        idx = np.sort(held) if split == "validation" else np.flatnonzero(~keep)
        images, labels = images[idx], labels[idx]
    if labels.size and int(labels.max()) >= data.classes:
        raise _core.InvalidValueError(
            f"option data.classes: the labels go up to {int(labels.max())}, more than {data.classes} classes"
        )
    return images.reshape(images.shape[0], -1).astype(np.float64) / 255.0, labels


def dataset_sizes(data: DataConfig) -> tuple[int, int]:
    """Return the numbers of inputs (features plus bias spikes) and classes of a data configuration.

    Parameters
    ----------
    data : DataConfig
        The ``[data]`` section.

    Returns
    -------
    n_in : int
        Input neurons.
    n_classes : int
        Output neurons.

    """
    if data.dataset not in DATASETS:
        raise _core.OptionError(f"option data.dataset: expected one of {', '.join(DATASETS)}, got {data.dataset!r}")
    n_features, n_classes = DATASETS[data.dataset]
    if data.dataset == "idx":
        images, _ = _idx_images(data, "train")
        n_features, n_classes = images.shape[1] * images.shape[2], data.classes
    return n_features + len(data.bias_times), n_classes


def load_encoded(data: DataConfig, split: Split) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Return a split of the configured data set as input spike times and labels.

    Yin-Yang values map to ``t_early + v (t_late - t_early)`` (:func:`encode`), digit and IDX pixels
    by :func:`encode_latency` (brighter = earlier); one column per ``data.bias_times`` entry (a spike at
    that time for every sample) is appended.

    Parameters
    ----------
    data : DataConfig
        The ``[data]`` section.
    split : {"train", "validation", "test"}
        The split.

    Returns
    -------
    times : ndarray of float64, shape (n, n_in)
        Input spike times.
    labels : ndarray of int64, shape (n,)
        Classes.

    """
    dataset_sizes(data)
    if data.dataset == "digits":
        x, y = digits(split)
        t = encode_latency(x, data.t_early, data.t_late)
    elif data.dataset == "idx":
        x, y = idx_split(data, split)
        t = encode_latency(x, data.t_early, data.t_late)
    else:
        x, y = yin_yang(split)
        t = encode(x, data.t_early, data.t_late)
    if data.bias_times:
        bias = np.broadcast_to(np.asarray(data.bias_times, dtype=np.float64), (t.shape[0], len(data.bias_times)))
        t = np.concatenate([t, bias], axis=1)
    return t, y
