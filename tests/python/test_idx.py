"""IDX image files (MNIST layout): reading, faulty files, crop and resize, and training on them.

Every file here is written by the test itself; nothing is downloaded.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from numpy.typing import NDArray

from delgrad_rs import InvalidValueError, fit
from delgrad_rs.config import ConfigError, config_from_dict, load_config
from delgrad_rs.datasets import dataset_sizes, load_encoded
from delgrad_rs.idx import center_crop, read_idx, read_idx_pair, resize

CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int16): 0x0B, np.dtype(np.float32): 0x0D}


def idx_bytes(a: NDArray[np.generic]) -> bytes:
    """The IDX encoding of ``a``, written from the format's definition."""
    head = bytes([0, 0, CODES[a.dtype], a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    return head + a.astype(a.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, a: NDArray[np.generic], compress: bool = False) -> Path:
    data = idx_bytes(a)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def digit_like(n: int, seed: int, size: int = 28) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """Images whose class is the quadrant holding a bright blob (learnable in a few epochs)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n).astype(np.uint8)
    images = rng.integers(0, 40, (n, size, size)).astype(np.uint8)
    half = size // 2
    for i, c in enumerate(labels):
        r, q = divmod(int(c), 2)
        images[i, r * half + 4 : r * half + half - 4, q * half + 4 : q * half + half - 4] = 250
    return images, labels


@pytest.mark.parametrize("compress", [False, True])
def test_read_round_trip(tmp_path: Path, compress: bool) -> None:
    rng = np.random.default_rng(0)
    for a in (
        rng.integers(0, 256, (5, 7, 3)).astype(np.uint8),
        rng.integers(-300, 300, (11,)).astype(np.int16),
        rng.normal(size=(2, 3)).astype(np.float32),
    ):
        got = read_idx(write_idx(tmp_path / "a.idx", a, compress))
        assert got.dtype == a.dtype and got.dtype.isnative and np.array_equal(got, a)


def test_faulty_files_name_the_file(tmp_path: Path) -> None:
    good = idx_bytes(np.zeros((4, 3, 3), np.uint8))
    cases = {
        "short": (good[:3], "truncated"),
        "magic": (b"\x01" + good[1:], "wrong magic number"),
        "type": (good[:2] + b"\x07" + good[3:], "wrong magic number"),
        "rank0": (good[:3] + b"\x00", "wrong magic number"),
        "header": (good[:9], "truncated header"),
        "truncated": (good[:-1], "truncated or trailing"),
        "trailing": (good + b"\0", "truncated or trailing"),
        "gzip": (gzip.compress(good)[:-9], "gzip"),
    }
    for name, (data, what) in cases.items():
        p = tmp_path / f"{name}.idx"
        p.write_bytes(data)
        with pytest.raises(InvalidValueError, match=what) as info:
            read_idx(p)
        assert str(p) in str(info.value), name
    with pytest.raises(InvalidValueError, match="cannot read"):
        read_idx(tmp_path / "missing.idx")


def test_pairs_must_belong_together(tmp_path: Path) -> None:
    x, y = digit_like(6, 0)
    xi, yi = write_idx(tmp_path / "x", x), write_idx(tmp_path / "y", y)
    assert read_idx_pair(xi, yi)[0].shape == (6, 28, 28)
    short = write_idx(tmp_path / "y5", y[:5])
    with pytest.raises(InvalidValueError, match="5 labels for the 6 images"):
        read_idx_pair(xi, short)
    with pytest.raises(InvalidValueError, match="rank 3"):
        read_idx_pair(yi, yi)
    with pytest.raises(InvalidValueError, match="8-bit labels"):
        read_idx_pair(xi, write_idx(tmp_path / "y16", y.astype(np.int16)))


def test_crop_and_resize() -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (3, 28, 28)).astype(np.uint8)
    c = center_crop(x, 24)
    assert c.shape == (3, 24, 24) and np.array_equal(c, x[:, 2:26, 2:26])
    assert np.array_equal(resize(np.full((2, 24, 24), 77, np.uint8), 16), np.full((2, 16, 16), 77, np.uint8))
    # Halving: output pixel i covers inputs 2i-1 .. 2i+2 with triangle weights 1/8, 3/8, 3/8, 1/8.
    row = np.array([0, 80, 160, 240, 0, 0, 0, 0], np.uint8)
    img = np.tile(row, (8, 1))[None]
    want = [
        (80 * 3 + 0 * 3 + 160 * 1) / 7,  # first: the weight beyond the edge is dropped and renormalised
        (80 * 1 + 160 * 3 + 240 * 3 + 0 * 1) / 8,
        (240 * 1 + 0 + 0 + 0) / 8,
        0.0,
    ]
    assert np.array_equal(resize(img, 4)[0, 0], np.rint(want).astype(np.uint8))
    with pytest.raises(InvalidValueError, match=r"data\.crop"):
        center_crop(x, 29)


def test_resize_agrees_with_pillow() -> None:
    image_module = pytest.importorskip("PIL.Image")  # matplotlib brings Pillow
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (20, 24, 24)).astype(np.uint8)
    ours = resize(x, 16).astype(int)
    for a, b in zip(x, ours, strict=True):
        theirs = np.asarray(image_module.fromarray(a).resize((16, 16), image_module.BILINEAR), dtype=int)
        assert np.abs(theirs - b).max() <= 1  # fixed-point rounding inside the library


def mnist_config(tmp_path: Path, **data: object) -> dict[str, object]:
    xt, yt = digit_like(240, 3)
    xs, ys = digit_like(60, 4)
    paths = {
        "train_images": write_idx(tmp_path / "train-images-idx3-ubyte.gz", xt, True),
        "train_labels": write_idx(tmp_path / "train-labels-idx1-ubyte.gz", yt, True),
        "test_images": write_idx(tmp_path / "t10k-images-idx3-ubyte", xs),
        "test_labels": write_idx(tmp_path / "t10k-labels-idx1-ubyte", ys),
    }
    return {
        "name": "idx_small",
        "network": {
            "hidden": [20],
            "tau_m": 1.0,
            "tau_s": 1.0,
            "layer_weight_mean": [0.1, 0.6],
            "layer_weight_std": [0.4, 0.8],
        },
        "optimizer": {"lr_weights": 0.003, "step_size": 10, "gamma": 0.9},
        "training": {"epochs": 3, "batch_size": 50, "bump_limits": [0.5, 0.5], "threads": 1},
        "data": {
            "dataset": "idx",
            **{k: str(v) for k, v in paths.items()},
            "crop": 24,
            "image_size": 16,
            "validation_size": 40,
            "classes": 4,
            **data,
        },
    }


def test_idx_splits_and_training(tmp_path: Path) -> None:
    cfg = config_from_dict(mnist_config(tmp_path))
    assert dataset_sizes(cfg.data) == (256, 4)
    (tr, ytr), (va, yva), (te, yte) = (load_encoded(cfg.data, s) for s in ("train", "validation", "test"))
    assert tr.shape == (200, 256) and va.shape == (40, 256) and te.shape == (60, 256)
    assert ytr.shape == (200,) and yva.shape == (40,) and yte.shape == (60,)
    assert tr.min() >= 0.15 and tr.max() <= 2.0  # brighter = earlier, black at t_late
    again = config_from_dict(mnist_config(tmp_path / ".." / tmp_path.name))
    assert np.array_equal(load_encoded(again.data, "validation")[0], va)  # a fixed split
    df = fit(cfg, quiet=True)
    test = df.filter(pl.col("split") == "test")
    assert test["epoch"].to_list() == [2] and test["accuracy"][0] > 0.5  # it learns the quadrants


def test_idx_config_errors(tmp_path: Path) -> None:
    base = mnist_config(tmp_path)
    for key, value, what in (
        ("train_images", "", "data.train_images"),
        ("crop", -1, "data.crop"),
        ("classes", 1, "data.classes"),
        ("validation_size", 0, "data.validation_size"),
    ):
        bad = {**base, "data": {**base["data"], key: value}}  # type: ignore[dict-item]
        with pytest.raises(ConfigError, match=what):
            config_from_dict(bad)
    cfg = config_from_dict({**base, "data": {**base["data"], "validation_size": 240}})  # type: ignore[dict-item]
    with pytest.raises(InvalidValueError, match="leaves no training sample"):
        load_encoded(cfg.data, "train")
    cfg = config_from_dict({**base, "data": {**base["data"], "classes": 3}})  # type: ignore[dict-item]
    with pytest.raises(InvalidValueError, match=r"data\.classes"):
        load_encoded(cfg.data, "test")


@pytest.mark.parametrize("name", ["MNIST16_W", "MNIST16_WS"])
def test_mnist16_configs(tmp_path: Path, name: str) -> None:
    cfg = load_config(Path(__file__).resolve().parents[2] / "examples" / "configs" / f"{name}.toml")
    assert (cfg.network.hidden, cfg.training.batch_size, cfg.optimizer.step_size, cfg.optimizer.gamma) == (
        [128],
        50,
        10,
        0.9,
    )
    assert (cfg.data.dataset, cfg.data.crop, cfg.data.image_size, cfg.data.classes) == ("idx", 24, 16, 10)
    ours = config_from_dict(mnist_config(tmp_path))
    for key in ("train_images", "train_labels", "test_images", "test_labels"):
        setattr(cfg.data, key, getattr(ours.data, key))  # the user's files
    cfg.data.validation_size = 40
    assert dataset_sizes(cfg.data) == (256, 10)
    assert load_encoded(cfg.data, "test")[0].shape == (60, 256)
