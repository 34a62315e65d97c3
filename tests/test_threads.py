"""fit releases the GIL around its work: two networks trained concurrently in two threads end
exactly where they end when trained one after the other."""

import threading

import numpy as np
import pytest

import deltaprop as dp

from helpers import assert_same_list

SIZES = [64, 64, 10]
N_ROWS = 2000
EPOCHS = 3


def make_data(seed):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, (N_ROWS, SIZES[0]))
    y = rng.integers(0, SIZES[-1], N_ROWS)
    return X, y


def make_networks():
    return [
        dp.Network(SIZES, activation="sigmoid", seed=1),
        dp.Network(SIZES, activation="relu", loss="categorical_crossentropy", seed=2),
    ]


FIT = [
    dict(epochs=EPOCHS, batch_size=10, learning_rate=3.0, seed=5),
    dict(epochs=EPOCHS, batch_size=16, learning_rate=0.1, seed=6),
]


@pytest.mark.parametrize("repeat", range(2))
def test_concurrent_fit_matches_sequential(repeat):
    data = [make_data(10), make_data(11)]

    sequential = make_networks()
    seq_histories = [net.fit(*d, **kw) for net, d, kw in zip(sequential, data, FIT)]

    concurrent = make_networks()
    histories, errors = [None, None], []
    barrier = threading.Barrier(2)

    def train(index):
        try:
            barrier.wait()
            histories[index] = concurrent[index].fit(*data[index], **FIT[index])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=train, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors

    for seq, con, h_seq, h_con in zip(sequential, concurrent, seq_histories, histories):
        assert_same_list(con.weights, seq.weights, seq.dtype, scale=0)
        assert_same_list(con.biases, seq.biases, seq.dtype, scale=0)
        assert h_con.loss == h_seq.loss


def test_concurrent_fit_on_shared_input_arrays():
    """Both threads read the same X and y; neither modifies them."""
    X, y = make_data(12)
    X_copy, y_copy = X.copy(), y.copy()
    sequential = make_networks()
    for net, kw in zip(sequential, FIT):
        net.fit(X, y, **kw)

    concurrent = make_networks()
    threads = [
        threading.Thread(target=net.fit, args=(X, y), kwargs=kw)
        for net, kw in zip(concurrent, FIT)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for seq, con in zip(sequential, concurrent):
        assert_same_list(con.weights, seq.weights, seq.dtype, scale=0)
    assert np.array_equal(X, X_copy) and np.array_equal(y, y_copy)


def test_native_epoch_runs_without_the_gil():
    """While one thread is inside the native epoch, another thread runs Python.

    With a switch interval of 100 s, CPython hands the GIL to a waiting thread only when the
    running thread releases it itself. The main thread waits for the GIL right after starting
    the trainer; it can only get it back before the epoch has finished if the epoch released
    the GIL. No timing is asserted.
    """
    import sys

    net = dp.Network([256, 256, 10], seed=3)
    rng = np.random.default_rng(4)
    X = rng.uniform(0, 1, (20000, 256))
    Y = np.eye(10)[rng.integers(0, 10, 20000)]
    finished = []

    def train():
        net._engine.train_epoch(X, Y, None, 10, 0.1)
        finished.append(True)

    previous = sys.getswitchinterval()
    sys.setswitchinterval(100.0)
    try:
        trainer = threading.Thread(target=train)
        trainer.start()
        epoch_still_running = not finished
        trainer.join()
    finally:
        sys.setswitchinterval(previous)
    assert finished
    assert epoch_still_running, "the main thread only ran again after the native epoch ended"
