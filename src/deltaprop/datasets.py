"""Small loaders for the data sets the demos and tests use: scikit-learn's 8x8 digits and MNIST.

Both return images as rows (one sample per row) of floats in [0, 1] and integer labels, the
layout every ``deltaprop`` network takes directly.

MNIST is read from the four IDX files of LeCun, Cortes and Burges (gzipped ``.gz`` or plain);
nothing is downloaded. The IDX format: a big-endian header of a magic number ``0x0000TTNN``
(``TT`` = 0x08 for unsigned bytes, ``NN`` = the number of dimensions: 0x803 for the image
files, 0x801 for the label files), then ``NN`` dimension sizes as uint32, then the data.
"""

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = ["load_digits", "load_mnist", "nielsen_split", "read_idx"]

IMAGES_MAGIC = 0x803  # unsigned byte, 3 dimensions (count, rows, columns)
LABELS_MAGIC = 0x801  # unsigned byte, 1 dimension (count)

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MNIST_IMAGE_SHAPE = (28, 28)
N_CLASSES = 10

# Nielsen, "Neural Networks and Deep Learning", ch. 1: the 60000 MNIST training images are
# split into the first 50000 for training and the last 10000 for validation.
NIELSEN_TRAIN = 50_000
NIELSEN_VALIDATION = 10_000


def _float_dtype(dtype):
    resolved = np.dtype(dtype)
    if resolved not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be 'float32' or 'float64'; got {resolved.name!r}")
    return resolved


def load_digits(dtype="float64"):
    """scikit-learn's bundled 8x8 handwritten digits (1797 samples), pixels scaled to [0, 1].

    Returns
    -------
    X : ndarray of shape (1797, 64), the given dtype; pixel intensities 0..16 divided by 16
    y : ndarray of shape (1797,), int64 labels 0..9
    """
    dtype = _float_dtype(dtype)
    try:
        from sklearn.datasets import load_digits as _sklearn_load_digits
    except ImportError as exc:
        raise ImportError(
            "deltaprop.datasets.load_digits needs scikit-learn, which ships the digits data: "
            "install it with `python -m pip install scikit-learn` (or use load_mnist with "
            "the MNIST files)"
        ) from exc
    pixels, labels = _sklearn_load_digits(return_X_y=True)
    X = np.ascontiguousarray(pixels, dtype=dtype)
    X /= 16  # intensities are 0..16
    return X, np.ascontiguousarray(labels, dtype=np.int64)


def _find(directory, stem):
    """The path of ``stem.gz`` or ``stem`` in ``directory`` (the gzipped one first)."""
    for name in (stem + ".gz", stem):
        path = directory / name
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"MNIST file {stem!r} not found in {str(directory)!r}: expected {stem}.gz or {stem} "
        "there (the four IDX files train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, gzipped or not)"
    )


def _read_bytes(path):
    path = Path(path)
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as stream:
                return stream.read()
        return path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ValueError(
            f"{str(path)!r} is not a complete gzip file ({exc}); expected a gzip-compressed "
            "IDX file. Download it again, or pass the uncompressed file without '.gz'."
        ) from exc


def read_idx(path, magic):
    """The uint8 array stored in one IDX file, with the header checked against the data.

    Parameters
    ----------
    path : str or Path, an IDX file; read through gzip when its name ends in '.gz'
    magic : int, the expected magic number (0x803 for images, 0x801 for labels)

    Returns
    -------
    ndarray of uint8 with the shape the header gives, e.g. (n, 28, 28) or (n,)

    Raises ValueError naming the file, what was expected and what was found, when the
    magic number is wrong, the header is cut short, or the data is shorter or longer
    than the header says.
    """
    path = Path(path)
    data = _read_bytes(path)
    name = str(path)
    if len(data) < 4:
        raise ValueError(
            f"{name!r} is too short to be an IDX file: expected at least a 4-byte magic "
            f"number, found {len(data)} byte(s)"
        )
    (found_magic,) = struct.unpack(">I", data[:4])
    if found_magic != magic:
        raise ValueError(
            f"{name!r} has magic number 0x{found_magic:08x}; expected 0x{magic:08x} "
            f"({'images' if magic == IMAGES_MAGIC else 'labels'} of unsigned bytes). "
            "Is it the right file (images vs labels), and decompressed correctly?"
        )
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise ValueError(
            f"{name!r} is truncated: expected a {header_size}-byte header "
            f"({ndim} dimension size(s)), found {len(data)} byte(s)"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    expected = int(np.prod(shape, dtype=np.int64))
    found = len(data) - header_size
    if found != expected:
        what = "truncated" if found < expected else "longer than its header says"
        raise ValueError(
            f"{name!r} is {what}: the header gives shape {shape}, so expected {expected} "
            f"data byte(s) after the {header_size}-byte header, found {found}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)


def _read_split(directory, images_stem, labels_stem, dtype):
    images_path = _find(directory, images_stem)
    labels_path = _find(directory, labels_stem)
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if images.shape[1:] != MNIST_IMAGE_SHAPE:
        raise ValueError(
            f"{str(images_path)!r} holds images of {images.shape[1]}x{images.shape[2]} "
            f"pixels; expected MNIST's {MNIST_IMAGE_SHAPE[0]}x{MNIST_IMAGE_SHAPE[1]}"
        )
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{str(images_path)!r} holds {images.shape[0]} images but "
            f"{str(labels_path)!r} holds {labels.shape[0]} labels; expected the same count "
            "(are the files from the same split?)"
        )
    if labels.size and labels.max() >= N_CLASSES:
        raise ValueError(
            f"{str(labels_path)!r} holds a label {int(labels.max())}; expected digits 0-9"
        )
    X = images.reshape(images.shape[0], -1).astype(dtype)  # a fresh, writable copy
    X /= 255  # pixel intensities are 0..255
    return X, labels.astype(np.int64)


def load_mnist(path, dtype="float32"):
    """MNIST from the directory ``path`` holding the four IDX files (``.gz`` or plain).

    Parameters
    ----------
    path : str or Path, a directory with train-images-idx3-ubyte, train-labels-idx1-ubyte,
        t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each optionally ending in '.gz'
        (the gzipped file is read when both are present)
    dtype : 'float32' (default) or 'float64', the dtype of the images

    Returns
    -------
    X_train : ndarray of shape (60000, 784), pixels scaled to [0, 1] (intensity / 255)
    y_train : ndarray of shape (60000,), int64 labels 0..9
    X_test : ndarray of shape (10000, 784)
    y_test : ndarray of shape (10000,), int64
    (the counts are those the files hold; the real MNIST has 60000 and 10000)

    Raises FileNotFoundError for a missing file and ValueError for a file whose header or
    size is wrong (the message names the file, what was expected and what was found).
    """
    dtype = _float_dtype(dtype)
    directory = Path(os.fspath(path))
    if not directory.is_dir():
        raise FileNotFoundError(
            f"MNIST directory {str(directory)!r} does not exist or is not a directory; "
            "pass the directory that holds the four IDX files"
        )
    X_train, y_train = _read_split(
        directory, MNIST_FILES["train_images"], MNIST_FILES["train_labels"], dtype
    )
    X_test, y_test = _read_split(
        directory, MNIST_FILES["test_images"], MNIST_FILES["test_labels"], dtype
    )
    return X_train, y_train, X_test, y_test


def nielsen_split(X_train, y_train):
    """Nielsen's split of MNIST's 60000 training samples: first 50000 train, last 10000 validate.

    Parameters
    ----------
    X_train : ndarray of shape (60000, n_features)
    y_train : ndarray of shape (60000,)

    Returns
    -------
    (X_train[:50000], y_train[:50000], X_train[50000:], y_train[50000:]) as views
    """
    n_expected = NIELSEN_TRAIN + NIELSEN_VALIDATION
    n_rows, n_labels = len(X_train), len(y_train)
    if n_rows != n_labels:
        raise ValueError(
            f"X_train has {n_rows} rows but y_train has {n_labels} labels; they must match"
        )
    if n_rows != n_expected:
        raise ValueError(
            f"nielsen_split expects MNIST's {n_expected} training samples (first "
            f"{NIELSEN_TRAIN} train, last {NIELSEN_VALIDATION} validation); got {n_rows}"
        )
    return (
        X_train[:NIELSEN_TRAIN],
        y_train[:NIELSEN_TRAIN],
        X_train[NIELSEN_TRAIN:],
        y_train[NIELSEN_TRAIN:],
    )
