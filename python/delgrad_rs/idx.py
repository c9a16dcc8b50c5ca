"""Image data sets in the IDX format (MNIST, Fashion-MNIST, EMNIST), read from the user's own files.

An IDX file is a 4-byte magic number ``0x00 0x00 TYPE RANK``, ``RANK`` big-endian uint32 dimensions
and the data in big-endian order; files may be gzip-compressed (``.gz``, recognised by content).
Nothing is downloaded: :func:`load_idx_split` reads the files a configuration names
(``data.dataset = "idx"``), optionally crops and downsamples the images (the reference's 16x16
MNIST: a central 24x24 crop resized to 16x16), and :func:`delgrad_rs.datasets.encode_latency`
turns intensities into spike times (brighter = earlier).
"""

from __future__ import annotations

import functools
import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from delgrad_rs._core import InvalidValueError

__all__ = ["IDX_TYPES", "center_crop", "read_idx", "read_idx_pair", "resize", "validation_order"]

#: IDX type codes and the numpy dtypes they hold (big-endian).
IDX_TYPES: dict[int, str] = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

#: Largest decompressed file accepted (bytes): far above EMNIST's largest, far below a gzip bomb.
MAX_BYTES = 1 << 32


def _fail(path: Path, message: str) -> InvalidValueError:
    return InvalidValueError(f"IDX file {str(path)!r}: {message}")


def _read_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            head = f.read(2)
            f.seek(0)
            if head == b"\x1f\x8b":
                with gzip.GzipFile(fileobj=f) as g:
                    raw = g.read(MAX_BYTES + 1)
            else:
                raw = f.read(MAX_BYTES + 1)
    except OSError as e:  # also gzip.BadGzipFile
        raise _fail(path, f"cannot read it: {e.strerror or e}") from None
    except (EOFError, zlib.error) as e:
        raise _fail(path, f"truncated or corrupt gzip data ({e})") from None
    if len(raw) > MAX_BYTES:
        raise _fail(path, f"larger than {MAX_BYTES} bytes")
    return raw


def read_idx(path: str | os.PathLike[str]) -> NDArray[np.generic]:
    """Read an IDX file (gzip-compressed or not) into an array of its type and shape.

    Parameters
    ----------
    path : path-like
        The file.

    Returns
    -------
    ndarray
        The data, in native byte order, of shape ``(d_1, ..., d_RANK)``.

    Raises
    ------
    InvalidValueError
        Naming the file, if it cannot be read, its magic number is wrong (not ``0x00 0x00``, an unknown
        type code or rank 0), or its size disagrees with its dimensions (truncated or trailing data).

    """
    p = Path(path)
    raw = _read_bytes(p)
    if len(raw) < 4:
        raise _fail(p, f"truncated: {len(raw)} bytes, shorter than the 4-byte magic number")
    zero, code, rank = raw[:2], raw[2], raw[3]
    if zero != b"\x00\x00" or code not in IDX_TYPES or rank == 0:
        raise _fail(
            p,
            f"wrong magic number {raw[:4].hex()} (expected 0000, a type code in "
            f"{{{', '.join(f'{c:02x}' for c in IDX_TYPES)}}} and a rank >= 1)",
        )
    header = 4 + 4 * rank
    if len(raw) < header:
        raise _fail(p, f"truncated header: rank {rank} needs {header} bytes, the file has {len(raw)}")
    dims = struct.unpack(f">{rank}I", raw[4:header])
    dtype = np.dtype(IDX_TYPES[code])
    expected = math.prod(dims) * dtype.itemsize
    if len(raw) - header != expected:
        raise _fail(
            p,
            f"dimensions {'x'.join(map(str, dims))} of {dtype.itemsize}-byte values need {expected} bytes of "
            f"data, the file has {len(raw) - header} (truncated or trailing data)",
        )
    data = np.frombuffer(raw, dtype=dtype, count=math.prod(dims), offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


@functools.cache
def _cached_pair(
    images: Path, labels: Path, stamp: tuple[int, int, int, int]
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    x, y = read_idx(images), read_idx(labels)
    if x.dtype != np.uint8 or x.ndim != 3:
        raise _fail(images, f"expected 8-bit images of rank 3 (count, rows, columns), got {x.dtype} of rank {x.ndim}")
    if y.dtype != np.uint8 or y.ndim != 1:
        raise _fail(labels, f"expected 8-bit labels of rank 1, got {y.dtype} of rank {y.ndim}")
    if x.shape[0] != y.shape[0]:
        raise _fail(labels, f"{y.shape[0]} labels for the {x.shape[0]} images of {str(images)!r}")
    images8 = x.astype(np.uint8, copy=False)
    images8.setflags(write=False)
    labels64 = y.astype(np.int64)
    labels64.setflags(write=False)
    return images8, labels64


def read_idx_pair(
    images: str | os.PathLike[str], labels: str | os.PathLike[str]
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Read an image file and its label file, checking that they belong together.

    Results are cached per file (by path, size and modification time), so the training and
    validation splits of one file read it once.

    Parameters
    ----------
    images, labels : path-like
        IDX files of 8-bit images ``(count, rows, columns)`` and 8-bit labels ``(count,)``.

    Returns
    -------
    images : ndarray of uint8, shape (count, rows, columns)
        Read-only.
    labels : ndarray of int64, shape (count,)
        Read-only.

    Raises
    ------
    InvalidValueError
        Naming the file, for any fault of :func:`read_idx`, other types or ranks, or counts that differ.

    """
    pi, pl = Path(images).resolve(), Path(labels).resolve()
    try:
        si, sl = pi.stat(), pl.stat()
    except OSError as e:
        raise _fail(Path(e.filename or images), f"cannot read it: {e.strerror or e}") from None
    return _cached_pair(pi, pl, (si.st_size, si.st_mtime_ns, sl.st_size, sl.st_mtime_ns))


def center_crop(images: NDArray[np.uint8], size: int) -> NDArray[np.uint8]:
    """Cut the central ``size`` x ``size`` pixels out of every image (as an odd margin, one more at the end).

    Parameters
    ----------
    images : ndarray, shape (count, rows, columns)
        The images.
    size : int
        Side of the crop, at most the images' sides.

    Returns
    -------
    ndarray, shape (count, size, size)
        A view of the crop.

    """
    rows, cols = images.shape[1:]
    if not 1 <= size <= min(rows, cols):
        raise InvalidValueError(f"option data.crop: expected 1..{min(rows, cols)} for {rows}x{cols} images, got {size}")
    top, left = (rows - size) // 2, (cols - size) // 2
    return images[:, top : top + size, left : left + size]


def _triangle_weights(n_in: int, n_out: int) -> NDArray[np.float64]:
    """Row i: the normalised weights of the input pixels for output pixel i (antialiased bilinear).

    Output pixel i covers input coordinates around c = (i + 1/2) n_in / n_out; each input pixel j
    (centre j + 1/2) weighs tri((j + 1/2 - c) / s) with tri(x) = max(0, 1 - |x|) and s = max(1,
    n_in / n_out), so a shrinking resize averages every input pixel it covers (no aliasing).
    """
    scale = n_in / n_out
    support = max(scale, 1.0)
    centre = (np.arange(n_out) + 0.5) * scale
    x = (np.arange(n_in)[None, :] + 0.5 - centre[:, None]) / support
    w = np.clip(1.0 - np.abs(x), 0.0, None)
    w /= w.sum(axis=1, keepdims=True)
    return w


def _to_bytes(x: NDArray[np.float64]) -> NDArray[np.uint8]:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def resize(images: NDArray[np.uint8], size: int) -> NDArray[np.uint8]:
    """Resize 8-bit images to ``size`` x ``size`` with an antialiased bilinear (triangle) filter.

    The columns are resampled first and rounded to 8 bits, then the rows, as image libraries do for
    8-bit images (and as the reference's 16x16 MNIST preprocessing did).

    Parameters
    ----------
    images : ndarray of uint8, shape (count, rows, columns)
        The images.
    size : int
        Side of the result (>= 1).

    Returns
    -------
    ndarray of uint8, shape (count, size, size)
        The resized images.

    """
    if size < 1:
        raise InvalidValueError(f"option data.image_size: expected >= 1, got {size}")
    rows, cols = images.shape[1:]
    across = _to_bytes(images.astype(np.float64) @ _triangle_weights(cols, size).T)
    return _to_bytes(np.einsum("ir,nrc->nic", _triangle_weights(rows, size), across.astype(np.float64)))


def validation_order(count: int, seed: int) -> NDArray[np.int64]:
    """Return the fixed permutation that splits a training file into training and validation samples.

    Parameters
    ----------
    count : int
        Samples in the file.
    seed : int
        Seed of ``numpy.random.RandomState``.

    Returns
    -------
    ndarray of int64
        ``RandomState(seed).permutation(count)``: the first ``validation_size`` entries are the
        validation samples, the rest the training samples.

    """
    return np.random.RandomState(seed).permutation(count).astype(np.int64)
