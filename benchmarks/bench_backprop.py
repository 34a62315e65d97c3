"""Time one backprop and one SGD step of a small network, side by side.

The network is Nielsen's [784, 30, 10] with sigmoid activations and the quadratic cost; the
batch is 10 rows in float64 (all changeable by options). Compared, with the same weights and
the same batch:

- native:    ``deltaprop.Network.backprop(X, Y)`` / ``.step(X, Y, eta)`` (C++ core)
- reference: ``deltaprop.reference.Network``, the pure NumPy twin
- torch:     PyTorch eager on the CPU, forward + ``loss.backward()`` (+ an in-place update
             for the step), when torch is importable

One "backprop" is the gradient of the mean cost over the batch, including what the public
API does around it (argument conversion and checks, allocation of the returned arrays).
Y is passed as a one-hot target matrix of the network's dtype, so no label encoding is timed.

Timing is timeit-like: each implementation's loop count is chosen once so that one
measurement lasts at least --min-time seconds (autorange), then --repeats measurements are
taken, interleaved across implementations (the order rotates each round) so that drifts of
the machine hit all of them alike. The garbage collector is off while measuring. Reported:
the median time per call, the interquartile range (IQR = q3 - q1), and the ratio of each
median to native's. On a machine with few cores, PyTorch's thread pool and OpenBLAS's can
contend for them; --threads 1 gives the single-threaded comparison.

    python benchmarks/bench_backprop.py [--threads 1] [--json results.json]
"""

import argparse
import gc
import json
import os
import platform
import sys
import time
from contextlib import nullcontext

import numpy as np


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="784,30,10",
                        help="layer widths, comma separated (default: 784,30,10)")
    parser.add_argument("--batch-size", type=int, default=10, help="rows per batch (default: 10)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    parser.add_argument("--learning-rate", type=float, default=3.0,
                        help="eta of the SGD step (default: 3.0)")
    parser.add_argument("--threads", type=int, default=None,
                        help="limit BLAS/OpenMP threads of every implementation to N "
                             "(threadpoolctl, and torch.set_num_threads); default: leave as is")
    parser.add_argument("--repeats", type=int, default=60,
                        help="measurements per implementation (default: 60)")
    parser.add_argument("--min-time", type=float, default=0.02,
                        help="seconds one measurement lasts at least (default: 0.02)")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="also write all results (and every measurement) to PATH")
    args = parser.parse_args(argv)
    args.sizes = [int(size) for size in args.sizes.split(",")]
    if len(args.sizes) < 2 or min(args.sizes) <= 0 or args.batch_size <= 0:
        parser.error("--sizes needs at least two positive widths and --batch-size must be > 0")
    if args.threads is not None and args.threads <= 0:
        parser.error("--threads must be a positive integer")
    if args.repeats < 4 or args.min_time <= 0:
        parser.error("--repeats must be >= 4 and --min-time > 0")
    return args


# ---- the implementations -------------------------------------------------------------------

def make_batch(args):
    rng = np.random.default_rng(12345)
    X = rng.random((args.batch_size, args.sizes[0])).astype(args.dtype)
    labels = rng.integers(0, args.sizes[-1], size=args.batch_size)
    Y = np.zeros((args.batch_size, args.sizes[-1]), dtype=args.dtype)
    Y[np.arange(args.batch_size), labels] = 1
    return X, Y


def native_network(args, seed=0):
    import deltaprop

    return deltaprop.Network(args.sizes, activation="sigmoid", loss="quadratic",
                             dtype=args.dtype, seed=seed)


class TorchNetwork:
    """The same network in PyTorch eager: F.linear + sigmoid per layer, quadratic cost."""

    def __init__(self, torch, weights, biases):
        self.torch = torch
        self.F = torch.nn.functional
        self.weights = [torch.tensor(np.array(w), requires_grad=True) for w in weights]
        self.biases = [torch.tensor(np.array(b), requires_grad=True) for b in biases]
        self.params = [p for pair in zip(self.weights, self.biases) for p in pair]

    def _backward(self, X, Y):
        for p in self.params:
            p.grad = None
        A = X
        for W, b in zip(self.weights, self.biases):
            A = self.torch.sigmoid(self.F.linear(A, W, b))  # A_l = sigmoid(A_{l-1} W^T + b)
        loss = 0.5 * ((A - Y) ** 2).sum(dim=1).mean()  # C = mean of 1/2 ||a - y||^2
        loss.backward()

    def backprop(self, X, Y):
        self._backward(X, Y)
        return [b.grad for b in self.biases], [w.grad for w in self.weights]

    def step(self, X, Y, learning_rate):
        self._backward(X, Y)
        with self.torch.no_grad():
            for p in self.params:
                p.add_(p.grad, alpha=-learning_rate)


def import_torch(args):
    if args.no_torch:
        return None, "left out (--no-torch)"
    try:
        import torch
    except ImportError as exc:
        return None, f"not importable ({exc})"
    return torch, torch.__version__


def build_cases(args, torch):
    """{operation: {implementation: zero-argument callable}} and the gradients for the check."""
    import deltaprop
    from deltaprop import reference

    X, Y = make_batch(args)
    lr = args.learning_rate
    nets = {"native": native_network(args)}
    nets["reference"] = reference.Network.from_network(nets["native"])
    stepping = {"native": native_network(args)}
    stepping["reference"] = reference.Network.from_network(stepping["native"])
    inputs = {"native": (X, Y), "reference": (X, Y)}
    if torch is not None:
        nets["torch"] = TorchNetwork(torch, nets["native"].weights, nets["native"].biases)
        stepping["torch"] = TorchNetwork(torch, stepping["native"].weights,
                                         stepping["native"].biases)
        inputs["torch"] = (torch.from_numpy(X), torch.from_numpy(Y))

    cases = {"backprop": {}, "step": {}}
    for name in nets:
        Xi, Yi = inputs[name]
        cases["backprop"][name] = (lambda net, Xi, Yi: lambda: net.backprop(Xi, Yi))(
            nets[name], Xi, Yi)
        cases["step"][name] = (lambda net, Xi, Yi: lambda: net.step(Xi, Yi, lr))(
            stepping[name], Xi, Yi)

    gradients = {}
    for name, net in nets.items():
        grad_b, grad_w = net.backprop(*inputs[name])
        gradients[name] = [np.array(g.detach().numpy() if hasattr(g, "detach") else g)
                           for g in list(grad_b) + list(grad_w)]
    return cases, gradients, deltaprop


def check_gradients(gradients, dtype):
    """All implementations must compute the same gradients before their speed means anything."""
    rtol = 1e-9 if dtype == "float64" else 1e-4
    worst = {}
    for name, grads in gradients.items():
        if name == "native":
            continue
        error = 0.0
        for mine, theirs in zip(grads, gradients["native"]):
            scale = max(float(np.abs(theirs).max()), np.finfo(dtype).tiny)
            error = max(error, float(np.abs(mine - theirs).max()) / scale)
        worst[name] = error
        if not error <= rtol:
            sys.exit(f"error: {name} gradients differ from native's by {error:.3g} "
                     f"(relative to the largest entry; allowed {rtol:g}); not timing")
    return worst


# ---- timing ---------------------------------------------------------------------------------

def measure(fn, number):
    timer = time.perf_counter
    start = timer()
    for _ in range(number):
        fn()
    return timer() - start


def autorange(fn, min_time):
    """The loop count (1, 2, 5, 10, 20, 50, ...) whose measurement lasts at least min_time."""
    number = 1
    while True:
        for factor in (1, 2, 5):
            loops = number * factor
            if measure(fn, loops) >= min_time:
                return loops
        number *= 10


def run_interleaved(callables, repeats, min_time):
    names = list(callables)
    for fn in callables.values():  # warm up caches, workspaces, lazy initialisation
        measure(fn, 20)
    numbers = {name: autorange(callables[name], min_time) for name in names}
    times = {name: [] for name in names}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for round_index in range(repeats):
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                times[name].append(measure(callables[name], numbers[name]) / numbers[name])
    finally:
        if gc_was_enabled:
            gc.enable()
    return numbers, times


def summarize(times):
    q1, median, q3 = np.percentile(times, [25, 50, 75])
    return {"median_s": float(median), "q1_s": float(q1), "q3_s": float(q3),
            "iqr_s": float(q3 - q1), "min_s": float(np.min(times))}


def format_seconds(seconds):
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if seconds >= scale:
            return f"{seconds / scale:7.2f} {unit}"
    return f"{seconds / 1e-9:7.2f} ns"


# ---- main -----------------------------------------------------------------------------------

def environment(deltaprop, torch_version, threads):
    import scipy

    try:
        import threadpoolctl
    except ImportError:
        pools = "threadpoolctl not installed"
    else:
        pools = [
            {key: info.get(key) for key in ("user_api", "internal_api", "num_threads",
                                              "version", "filepath")}
            for info in threadpoolctl.threadpool_info()
        ]
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "deltaprop": getattr(deltaprop, "__version__", "?"),
        "deltaprop_path": os.path.dirname(deltaprop.__file__),
        "torch": torch_version,
        "threads_requested": threads,
        "threadpools": pools,
    }


def main(argv=None):
    args = parse_args(argv)
    torch, torch_version = import_torch(args)  # import before limiting: torch loads its pools
    cases, gradients, deltaprop = build_cases(args, torch)
    worst = check_gradients(gradients, args.dtype)

    if args.threads is not None:
        try:
            import threadpoolctl
        except ImportError:
            sys.exit("error: --threads needs threadpoolctl: python -m pip install threadpoolctl")
        limits = threadpoolctl.threadpool_limits(limits=args.threads)
        if torch is not None:
            torch.set_num_threads(args.threads)
    else:
        limits = nullcontext()

    results = []
    with limits:
        env = environment(deltaprop, torch_version, args.threads)
        for operation, callables in cases.items():
            numbers, times = run_interleaved(callables, args.repeats, args.min_time)
            native_median = float(np.median(times["native"]))
            for name in callables:
                summary = summarize(times[name])
                results.append({
                    "operation": operation,
                    "implementation": name,
                    **summary,
                    "ratio_to_native": summary["median_s"] / native_median,
                    "number": numbers[name],
                    "repeats": args.repeats,
                    "times_s": times[name],
                })

    config = {"sizes": args.sizes, "batch_size": args.batch_size, "dtype": args.dtype,
              "activation": "sigmoid", "loss": "quadratic",
              "learning_rate": args.learning_rate, "repeats": args.repeats,
              "min_time_s": args.min_time, "threads": args.threads}
    print(f"network {args.sizes}, sigmoid, quadratic cost, batch {args.batch_size}, "
          f"{args.dtype}; threads: {args.threads if args.threads is not None else 'default'}; "
          f"deltaprop from {env['deltaprop_path']}; torch: {torch_version}")
    print("gradients checked against native (max relative difference): " +
          ", ".join(f"{name} {error:.1e}" for name, error in worst.items()))
    print(f"median of {args.repeats} interleaved measurements per row, each of >= "
          f"{args.min_time:g} s; IQR = q3 - q1\n")
    header = f"{'operation':<10} {'implementation':<15} {'median':>11} {'IQR':>11} " \
             f"{'x native':>9} {'loops':>7}"
    print(header)
    print("-" * len(header))
    for row in results:
        print(f"{row['operation']:<10} {row['implementation']:<15} "
              f"{format_seconds(row['median_s']):>11} {format_seconds(row['iqr_s']):>11} "
              f"{row['ratio_to_native']:>8.2f}x {row['number']:>7}")

    if args.json:
        with open(args.json, "w") as stream:
            json.dump({"config": config, "environment": env,
                       "gradient_check": worst, "results": results}, stream, indent=2)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
