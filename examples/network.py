"""Nielsen's network.py (chapter 1 of "Neural Networks and Deep Learning") with deltaprop.

The book's run: a [784, 30, 10] network, sigmoid everywhere, the quadratic cost, network.py's
N(0, 1) weights and biases (init='large'), plain SGD with eta = 3.0 on mini-batches of 10 for
30 epochs, trained on the first 50000 MNIST training images and scored on the 10000 test
images after every epoch ("Epoch 0: 9129 / 10000"). The book's best of three runs peaks at
95.42%.

    python examples/network.py [--mnist DIR] [--epochs 30] [--seed 0] [--dtype float64]

One ``fit`` call trains all the epochs; a callback scores the test images after each one.
``--seed`` seeds both the initial weights and the shuffling, so a run is repeatable.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import deltaprop as dp
from deltaprop.datasets import load_mnist, nielsen_split

# The repository sits next to shared/ (…/main/examples/network.py -> …/shared/data/mnist).
DEFAULT_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", metavar="DIR", type=Path, default=DEFAULT_MNIST,
                        help=f"directory with the four MNIST IDX files (default: {DEFAULT_MNIST})")
    parser.add_argument("--epochs", type=int, default=30, help="epochs (default: 30)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the initial weights and of the shuffling (default: 0)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                        help="floating point type of the network (default: float64)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        X_train, y_train, X_test, y_test = load_mnist(args.mnist, dtype=args.dtype)
    except (OSError, ValueError) as exc:
        print(f"error: {exc} (see --mnist)", file=sys.stderr)
        return 1
    X_train, y_train, _, _ = nielsen_split(X_train, y_train)  # first 50000 images

    net = dp.Network([784, 30, 10], activation="sigmoid", loss="quadratic", init="large",
                     dtype=args.dtype, seed=args.seed)
    print(f"network.py: {net.sizes} sigmoid, quadratic cost, init='large', SGD eta=3.0, "
          f"mini-batch 10, {args.epochs} epochs, {args.dtype}, seed {args.seed}; "
          f"{len(X_train)} training / {len(X_test)} test images", flush=True)

    scores = []

    def score_test_images(epoch, metrics):
        correct = int(np.count_nonzero(np.argmax(net.predict(X_test), axis=1) == y_test))
        scores.append(correct)
        print(f"Epoch {epoch}: {correct} / {len(X_test)}  "
              f"({metrics['seconds']:.2f} s, {metrics['samples_per_second']:,.0f} samples/s)",
              flush=True)

    started = time.perf_counter()
    history = net.fit(X_train, y_train, epochs=args.epochs, batch_size=10, learning_rate=3.0,
                      seed=args.seed, callbacks=[score_test_images])
    wall = time.perf_counter() - started

    best = int(np.argmax(scores))
    train_seconds = sum(history.seconds)
    print(f"Best test accuracy {scores[best] / len(X_test):.2%} ({scores[best]} / {len(X_test)}) "
          f"at epoch {best}; final {scores[-1] / len(X_test):.2%}")
    print(f"Wall time {wall:.1f} s (training {train_seconds:.1f} s, "
          f"{history.epochs * len(X_train) / train_seconds:,.0f} samples/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
