"""Nielsen's network2.py (chapter 3 of "Neural Networks and Deep Learning") with deltaprop.

The book's run: a [784, 100, 10] sigmoid network with the cross-entropy cost
(binary_crossentropy on a sigmoid output, network2.py's CrossEntropyCost), N(0, 1) weights
and biases (init='large', ``net.large_weight_initializer()``), SGD with eta = 0.5 and L2
regularization lambda = 5.0 (weights shrink by 1 - eta * lambda / n with n = 50000 each
step), mini-batches of 10, 30 epochs, trained on the first 50000 MNIST training images and
scored on the 10000 validation images after every epoch. The book reaches 97.92% on the
validation images, and 98.04% with 60 epochs at eta = 0.1:

    python examples/network2.py [--mnist DIR] [--epochs 30] [--eta 0.5] [--l2 5.0] [--seed 0]
    python examples/network2.py --epochs 60 --eta 0.1

One ``fit`` call trains all the epochs, scoring the validation images after each
(``validation_data``); a callback prints the scores; the test images are scored once at the
end. ``--seed`` seeds both the initial weights and the shuffling, so a run is repeatable.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import deltaprop as dp
from deltaprop.datasets import load_mnist, nielsen_split

# The repository sits next to shared/ (…/main/examples/network2.py -> …/shared/data/mnist).
DEFAULT_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", metavar="DIR", type=Path, default=DEFAULT_MNIST,
                        help=f"directory with the four MNIST IDX files (default: {DEFAULT_MNIST})")
    parser.add_argument("--epochs", type=int, default=30, help="epochs (default: 30)")
    parser.add_argument("--eta", type=float, default=0.5, help="SGD learning rate (default: 0.5)")
    parser.add_argument("--l2", type=float, default=5.0,
                        help="L2 regularization lambda, divided by n = 50000 (default: 5.0)")
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
    X_train, y_train, X_val, y_val = nielsen_split(X_train, y_train)  # 50000 / 10000

    net = dp.Network([784, 100, 10], activation="sigmoid", loss="binary_crossentropy",
                     init="large", dtype=args.dtype, seed=args.seed)
    print(f"network2.py: {net.sizes} sigmoid, cross-entropy cost, init='large', SGD "
          f"eta={args.eta:g}, lambda={args.l2:g}, mini-batch 10, {args.epochs} epochs, "
          f"{args.dtype}, seed {args.seed}; {len(X_train)} training / {len(X_val)} validation "
          f"/ {len(X_test)} test images", flush=True)

    def report(epoch, metrics):
        correct = round(metrics["val_accuracy"] * len(X_val))
        print(f"Epoch {epoch}: {correct} / {len(X_val)} validation  "
              f"(training cost {metrics['loss']:.4f}, {metrics['seconds']:.2f} s, "
              f"{metrics['samples_per_second']:,.0f} samples/s)", flush=True)

    started = time.perf_counter()
    history = net.fit(X_train, y_train, epochs=args.epochs, batch_size=10,
                      learning_rate=args.eta, l2=args.l2, validation_data=(X_val, y_val),
                      seed=args.seed, callbacks=[report])
    wall = time.perf_counter() - started

    best = int(np.argmax(history.val_accuracy))
    train_seconds = sum(history.seconds)
    print(f"Best validation accuracy {history.val_accuracy[best]:.2%} at epoch {best}; "
          f"final {history.val_accuracy[-1]:.2%}")
    print(f"Test accuracy after the last epoch {net.evaluate(X_test, y_test):.2%}")
    print(f"Wall time {wall:.1f} s (training {train_seconds:.1f} s, "
          f"{history.epochs * len(X_train) / train_seconds:,.0f} samples/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
