"""The dataset loaders: IDX files written here round-trip, broken ones are refused clearly."""

import gzip
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from deltaprop.datasets import (
    IMAGES_MAGIC,
    LABELS_MAGIC,
    load_digits,
    load_mnist,
    nielsen_split,
    read_idx,
)

# The real MNIST beside the repository (see shared/data/mnist/SOURCE.md).
MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def idx_bytes(array, magic):
    """An IDX file's content: big-endian magic, the dimension sizes, then the uint8 data."""
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    return header + array.tobytes()


def write_file(path, content, gz):
    path = Path(str(path) + ".gz") if gz else Path(path)
    if gz:
        with gzip.open(path, "wb") as stream:
            stream.write(content)
    else:
        path.write_bytes(content)
    return path


def make_split(rng, n):
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255  # both ends of the range present
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    return images, labels


def write_mnist(directory, train, test, gz=True, contents=None):
    """Write the four files; ``contents`` overrides the bytes of some of them by key."""
    contents = dict(contents or {})
    arrays = {
        "train_images": (train[0], IMAGES_MAGIC),
        "train_labels": (train[1], LABELS_MAGIC),
        "test_images": (test[0], IMAGES_MAGIC),
        "test_labels": (test[1], LABELS_MAGIC),
    }
    paths = {}
    for key, (array, magic) in arrays.items():
        content = contents.get(key, idx_bytes(array, magic))
        use_gz = gz[key] if isinstance(gz, dict) else gz
        paths[key] = write_file(directory / STEMS[key], content, use_gz)
    return paths


@pytest.fixture
def small_mnist():
    rng = np.random.default_rng(7)
    return make_split(rng, 7), make_split(rng, 3)


@pytest.mark.parametrize("gz", [True, False, {"train_images": True, "train_labels": False,
                                               "test_images": False, "test_labels": True}],
                         ids=["gz", "plain", "mixed"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_small_idx_files_round_trip(tmp_path, small_mnist, gz, dtype):
    train, test = small_mnist
    write_mnist(tmp_path, train, test, gz=gz)

    X_train, y_train, X_test, y_test = load_mnist(tmp_path, dtype=dtype)

    for X, y, (images, labels) in ((X_train, y_train, train), (X_test, y_test, test)):
        n = images.shape[0]
        assert X.shape == (n, 784)
        assert X.dtype == np.dtype(dtype)
        assert X.flags.c_contiguous and X.flags.writeable
        assert y.shape == (n,) and y.dtype == np.int64
        np.testing.assert_array_equal(y, labels)
        expected = images.reshape(n, 784).astype(dtype) / np.asarray(255, dtype=dtype)
        np.testing.assert_allclose(X, expected, rtol=np.finfo(dtype).eps)
        assert X.min() >= 0 and X.max() <= 1
    assert X_train[0, 0] == 0 and X_train[0, 1] == 1


def test_default_dtype_is_float32_and_path_may_be_a_string(tmp_path, small_mnist):
    write_mnist(tmp_path, *small_mnist)
    X_train, _, X_test, _ = load_mnist(str(tmp_path))
    assert X_train.dtype == np.float32 and X_test.dtype == np.float32


def test_gzipped_file_is_preferred_when_both_exist(tmp_path, small_mnist):
    train, test = small_mnist
    write_mnist(tmp_path, train, test, gz=True)
    # A broken plain file beside the good .gz one is not read.
    (tmp_path / STEMS["train_labels"]).write_bytes(b"garbage")
    _, y_train, _, _ = load_mnist(tmp_path)
    np.testing.assert_array_equal(y_train, train[1])


def test_read_idx_returns_the_header_shape(tmp_path):
    images = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    path = write_file(tmp_path / "x-idx3-ubyte", idx_bytes(images, IMAGES_MAGIC), gz=False)
    np.testing.assert_array_equal(read_idx(path, IMAGES_MAGIC), images)


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
@pytest.mark.parametrize("key", ["train_images", "test_labels"])
def test_truncated_data_is_refused(tmp_path, small_mnist, gz, key):
    train, test = small_mnist
    full = idx_bytes(*{"train_images": (train[0], IMAGES_MAGIC),
                       "test_labels": (test[1], LABELS_MAGIC)}[key])
    header = 16 if key == "train_images" else 8
    paths = write_mnist(tmp_path, train, test, gz=gz, contents={key: full[:-2]})

    with pytest.raises(ValueError, match="truncated") as info:
        load_mnist(tmp_path)
    message = str(info.value)
    assert paths[key].name in message
    assert f"expected {len(full) - header}" in message
    assert f"found {len(full) - header - 2}" in message


def test_truncated_header_is_refused(tmp_path, small_mnist):
    train, test = small_mnist
    content = idx_bytes(train[0], IMAGES_MAGIC)[:10]
    write_mnist(tmp_path, train, test, gz=False, contents={"train_images": content})
    with pytest.raises(ValueError, match=r"truncated: expected a 16-byte header.*found 10"):
        load_mnist(tmp_path)


def test_empty_file_is_refused(tmp_path, small_mnist):
    train, test = small_mnist
    write_mnist(tmp_path, train, test, gz=False, contents={"test_images": b""})
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.*found 0 byte"):
        load_mnist(tmp_path)


def test_cut_gzip_stream_is_refused(tmp_path, small_mnist):
    train, test = small_mnist
    paths = write_mnist(tmp_path, train, test, gz=True)
    compressed = paths["train_images"].read_bytes()
    paths["train_images"].write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz.*not a complete gzip"):
        load_mnist(tmp_path)


def test_longer_data_than_the_header_is_refused(tmp_path, small_mnist):
    train, test = small_mnist
    content = idx_bytes(train[1], LABELS_MAGIC) + b"\x00"
    write_mnist(tmp_path, train, test, contents={"train_labels": content})
    with pytest.raises(ValueError, match="longer than its header says.*expected 7.*found 8"):
        load_mnist(tmp_path)


@pytest.mark.parametrize("key, wrong", [("train_images", LABELS_MAGIC),
                                        ("test_labels", IMAGES_MAGIC),
                                        ("train_labels", 0x0801_0000)])
def test_wrong_magic_number_is_refused(tmp_path, small_mnist, key, wrong):
    train, test = small_mnist
    array = {"train_images": train[0], "train_labels": train[1], "test_labels": test[1]}[key]
    expected = IMAGES_MAGIC if key.endswith("images") else LABELS_MAGIC
    content = struct.pack(">I", wrong) + idx_bytes(array, expected)[4:]
    write_mnist(tmp_path, train, test, contents={key: content})
    with pytest.raises(ValueError, match="magic number") as info:
        load_mnist(tmp_path)
    message = str(info.value)
    assert STEMS[key] in message
    assert f"0x{wrong:08x}" in message and f"0x{expected:08x}" in message


def test_mismatched_image_and_label_counts_are_refused(tmp_path, small_mnist):
    train, test = small_mnist
    write_mnist(tmp_path, train, (test[0], test[1][:2]))
    with pytest.raises(ValueError, match="3 images.*2 labels") as info:
        load_mnist(tmp_path)
    assert STEMS["test_images"] in str(info.value) and STEMS["test_labels"] in str(info.value)


def test_wrong_image_size_is_refused(tmp_path, small_mnist):
    train, test = small_mnist
    write_mnist(tmp_path, (train[0][:, :27, :], train[1]), test)
    with pytest.raises(ValueError, match="27x28 pixels; expected MNIST's 28x28"):
        load_mnist(tmp_path)


def test_label_out_of_range_is_refused(tmp_path, small_mnist):
    train, test = small_mnist
    labels = train[1].copy()
    labels[3] = 10
    write_mnist(tmp_path, (train[0], labels), test)
    with pytest.raises(ValueError, match="label 10; expected digits 0-9"):
        load_mnist(tmp_path)


def test_missing_file_and_directory(tmp_path, small_mnist):
    paths = write_mnist(tmp_path, *small_mnist)
    paths["test_labels"].unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_mnist(tmp_path / "nowhere")


def test_bad_dtype_is_refused(tmp_path, small_mnist):
    write_mnist(tmp_path, *small_mnist)
    with pytest.raises(ValueError, match="float32' or 'float64"):
        load_mnist(tmp_path, dtype="int32")


def test_nielsen_split():
    X = np.arange(60_000, dtype=np.float32).reshape(-1, 1)
    y = np.arange(60_000) % 10
    X_tr, y_tr, X_val, y_val = nielsen_split(X, y)
    assert X_tr.shape == (50_000, 1) and y_tr.shape == (50_000,)
    assert X_val.shape == (10_000, 1) and y_val.shape == (10_000,)
    assert X_tr[0, 0] == 0 and X_tr[-1, 0] == 49_999
    assert X_val[0, 0] == 50_000 and X_val[-1, 0] == 59_999
    np.testing.assert_array_equal(np.concatenate([y_tr, y_val]), y)


def test_nielsen_split_refuses_other_sizes():
    with pytest.raises(ValueError, match="expects MNIST's 60000 training samples.*got 100"):
        nielsen_split(np.zeros((100, 4)), np.zeros(100, dtype=np.int64))
    with pytest.raises(ValueError, match="60000 rows but y_train has 59999"):
        nielsen_split(np.zeros((60_000, 1)), np.zeros(59_999, dtype=np.int64))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_load_digits(dtype):
    pytest.importorskip("sklearn")
    X, y = load_digits(dtype=dtype)
    assert X.shape == (1797, 64) and X.dtype == np.dtype(dtype)
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0 and X.max() == 1
    assert sorted(np.unique(y)) == list(range(10))
    assert np.bincount(y).sum() == 1797 and np.bincount(y).min() >= 170


def test_load_digits_without_scikit_learn_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="needs scikit-learn.*pip install scikit-learn"):
        load_digits()


@pytest.fixture(scope="module")
def real_mnist():
    if not MNIST_DIR.is_dir():
        pytest.skip(f"real MNIST not present at {MNIST_DIR}")
    return load_mnist(MNIST_DIR)


def test_real_mnist_loads_with_the_documented_shapes(real_mnist):
    X_train, y_train, X_test, y_test = real_mnist
    assert X_train.shape == (60_000, 784) and X_train.dtype == np.float32
    assert X_test.shape == (10_000, 784) and X_test.dtype == np.float32
    assert y_train.shape == (60_000,) and y_test.shape == (10_000,)
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    assert np.bincount(y_train, minlength=10).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(y_test, minlength=10).tolist() == MNIST_TEST_COUNTS
    assert X_train.min() == 0 and X_train.max() == 1
    assert X_test.min() == 0 and X_test.max() == 1
    assert X_train.mean(dtype=np.float64) == pytest.approx(0.13066, abs=5e-5)


def test_real_mnist_nielsen_split(real_mnist):
    X_train, y_train, _, _ = real_mnist
    X_tr, y_tr, X_val, y_val = nielsen_split(X_train, y_train)
    assert X_tr.shape == (50_000, 784) and y_tr.shape == (50_000,)
    assert X_val.shape == (10_000, 784) and y_val.shape == (10_000,)
    np.testing.assert_array_equal(X_val[-1], X_train[-1])
