"""Command line: ``python -m deltaprop demo [options]``.

``demo`` trains a sigmoid network with the quadratic cost by mini-batch SGD, as in Nielsen's
network.py, and prints the test accuracy after every epoch the way the book does
("Epoch 0: 9129 / 10000"), then the training wall time and throughput.

- default: scikit-learn's 8x8 digits, [64, 30, 10], an 80/20 train/test split with a fixed
  seed, 30 epochs;
- ``--mnist DIR``: MNIST from the four IDX files in DIR, [784, 30, 10], trained on the first
  50000 training images (Nielsen's split) and tested on the 10000 test images, 3 epochs
  (the book runs 30: pass ``--epochs 30``).
"""

import argparse
import sys

import numpy as np

DIGITS_SPLIT_SEED = 0  # the digits train/test split is the same whatever --seed says
DIGITS_TEST_FRACTION = 0.2


def _positive_int(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text}")
    return value


def _positive_float(text):
    value = float(text)
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number; got {text}")
    return value


def build_parser():
    import deltaprop

    parser = argparse.ArgumentParser(
        prog="python -m deltaprop",
        description="deltaprop: fully connected networks trained by backpropagation.",
    )
    parser.add_argument("--version", action="version", version=deltaprop.__version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    demo = commands.add_parser(
        "demo",
        help="train a [n_in, 30, 10] sigmoid network on digits (or MNIST) and print accuracy",
        description=(
            "Train a sigmoid network with the quadratic cost by mini-batch SGD (Nielsen's "
            "network.py setup) and print the test accuracy after each epoch. By default on "
            "scikit-learn's 8x8 digits (80/20 split); with --mnist DIR on MNIST "
            "(first 50000 training images, tested on the 10000 test images)."
        ),
    )
    demo.add_argument("--mnist", metavar="DIR", default=None,
                      help="directory with the four MNIST IDX files (.gz or plain)")
    demo.add_argument("--epochs", type=_positive_int, default=None,
                      help="epochs to train (default: 30 on digits, 3 on MNIST)")
    demo.add_argument("--batch-size", type=_positive_int, default=10,
                      help="mini-batch size (default: 10)")
    demo.add_argument("--learning-rate", type=_positive_float, default=3.0, metavar="ETA",
                      help="SGD learning rate eta (default: 3.0)")
    demo.add_argument("--hidden", type=_positive_int, default=30,
                      help="width of the hidden layer (default: 30)")
    demo.add_argument("--dtype", choices=("float32", "float64"), default="float64",
                      help="floating point type of the network (default: float64)")
    demo.add_argument("--seed", type=int, default=0,
                      help="seed of the initial weights and of the shuffling (default: 0)")
    demo.set_defaults(run=run_demo)
    return parser


def _digits(dtype):
    from .datasets import load_digits

    X, y = load_digits(dtype=dtype)
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(X))
    n_test = int(round(DIGITS_TEST_FRACTION * len(X)))
    test, train = order[:n_test], order[n_test:]
    return "scikit-learn digits (8x8)", X[train], y[train], X[test], y[test], 30


def _mnist(directory, dtype):
    from .datasets import load_mnist, nielsen_split

    X_train, y_train, X_test, y_test = load_mnist(directory, dtype=dtype)
    if len(X_train) == 60_000:
        X_train, y_train, _, _ = nielsen_split(X_train, y_train)
    return "MNIST (28x28)", X_train, y_train, X_test, y_test, 3


def _duration(seconds):
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1e3:.1f} ms"


def run_demo(args):
    import deltaprop as dp

    try:
        if args.mnist is None:
            name, X_train, y_train, X_test, y_test, epochs = _digits(args.dtype)
        else:
            name, X_train, y_train, X_test, y_test, epochs = _mnist(args.mnist, args.dtype)
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("(or run the demo on MNIST: python -m deltaprop demo --mnist DIR)", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    epochs = args.epochs if args.epochs is not None else epochs

    sizes = [X_train.shape[1], args.hidden, 10]
    net = dp.Network(sizes, activation="sigmoid", loss="quadratic", dtype=args.dtype,
                     seed=args.seed)
    print(
        f"{name}: {len(X_train)} training and {len(X_test)} test samples; network {sizes}, "
        f"sigmoid, quadratic cost, {args.dtype}; SGD with eta = {args.learning_rate:g}, "
        f"batch size {args.batch_size}, {epochs} epoch(s)"
    )

    n_test = len(X_test)
    scores = []

    def print_test_accuracy(epoch, metrics):
        correct = int(np.count_nonzero(np.argmax(net.predict(X_test), axis=1) == y_test))
        scores.append(correct)
        print(f"Epoch {epoch}: {correct} / {n_test}  ({_duration(metrics['seconds'])}, "
              f"{metrics['samples_per_second']:,.0f} samples/s)", flush=True)

    # One fit call for all the epochs: one generator seeded with --seed shuffles every epoch
    # afresh, so the run is reproducible from --seed.
    history = net.fit(X_train, y_train, epochs=epochs, batch_size=args.batch_size,
                      learning_rate=args.learning_rate, shuffle=True, seed=args.seed,
                      callbacks=[print_test_accuracy])

    train_seconds = sum(history.seconds)
    n_samples = history.epochs * len(X_train)
    print(f"Trained {history.epochs} epoch(s) in {_duration(train_seconds)}: "
          f"{n_samples / train_seconds:,.0f} samples/s; final test accuracy "
          f"{scores[-1] / n_test:.2%}")
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
