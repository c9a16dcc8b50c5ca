"""The Yin-Yang data set (bit-exact with the published generator) and its spike-time encoding."""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl
from numpy.typing import ArrayLike, NDArray

from delgrad_rs import _core

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
