"""Side-by-side training benchmark: deltaprop against its peers, on the same work.

For each configuration (P1..P5, issue 4) every implementation trains the same network from
the same initial weights (those of ``deltaprop.Network(..., seed=0)``) on the same seeded
synthetic data for one epoch (consecutive mini-batches, no shuffling, plain SGD), or, for the
inference configuration P5, predicts once over the whole input:

  deltaprop         Network.fit(X, Y, epochs=1, shuffle=False)          (the public API)
  deltaprop.engine  the pybind11 engine's train_epoch / predict, no Python layer around it
  reference         deltaprop.reference.Network.fit                     (pure NumPy, batched)
  numpy-loop        Nielsen's network.py: per-sample column vectors, update_mini_batch
  torch             PyTorch eager on the CPU, autograd, in-place SGD update
  jax.jit           JAX: jit of one SGD step, Python loop over device-resident batches
  jax.scan          JAX: the whole epoch as one jit of lax.scan
  sklearn           MLPClassifier / MLPRegressor(solver='sgd'), one partial_fit per epoch

Peers that are not importable are skipped with a note. Reported per implementation: the
median seconds per epoch over interleaved repeats (the order rotates each round) and the IQR,
samples/s, GFLOP/s (2mnk per GEMM: forward, delta and weight-gradient products), the
fraction of the GEMM peak that deltaprop's BLAS reaches on the same products (measured in
the same run), the CPU time / wall time (how many cores it kept busy), the final loss after
the epoch (every final parameter set evaluated by one float64 NumPy evaluator), its relative
difference from deltaprop's, and the speed ratio of every implementation to every other.

Threads: --threads N sets OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and MKL_NUM_THREADS and
XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" (N = 1; for
N > 1 "=true intra_op_parallelism_threads=N") before anything is imported, then limits every
BLAS/OpenMP pool with threadpoolctl and calls torch.set_num_threads(N); below the CPU count
the process is pinned to N CPUs. Each (thread count, configuration) runs in a fresh child
process and the results are merged. Each timed epoch starts after --settle seconds of
busy-waiting, so no other implementation's spinning worker threads are still running.
See benchmarks/README.md for the methodology and the results.

    python benchmarks/run.py --config all --threads 1 2 --json results.json --plot chart.png
    python benchmarks/run.py --config P1 --threads 1 --repeats 3 --epochs-rows 2000
"""

import argparse
import datetime
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

HERE = os.path.dirname(os.path.abspath(__file__))


# ---- configurations ------------------------------------------------------------------------

@dataclass(frozen=True)
class Config:
    name: str
    title: str
    sizes: tuple
    hidden: str
    output: str
    loss: str
    batch: int
    eta: float
    dtype: str
    rows: int           # training rows per epoch (inference: rows predicted)
    kind: str = "train"

    @property
    def activations(self):
        return [self.hidden] * (len(self.sizes) - 2) + [self.output]

    @property
    def n_layers(self):
        return len(self.sizes) - 1


CONFIGS = [
    Config("P1-f64", "784-30-10 sigmoid, quadratic, batch 10, eta 3.0, float64 (Nielsen's)",
           (784, 30, 10), "sigmoid", "sigmoid", "quadratic", 10, 3.0, "float64", 10000),
    Config("P1-f32", "784-30-10 sigmoid, quadratic, batch 10, eta 3.0, float32",
           (784, 30, 10), "sigmoid", "sigmoid", "quadratic", 10, 3.0, "float32", 10000),
    Config("P2-b10", "784-100-10 sigmoid, softmax + cross-entropy, batch 10, eta 0.5, float32",
           (784, 100, 10), "sigmoid", "softmax", "categorical_crossentropy", 10, 0.5,
           "float32", 10000),
    Config("P2-b32", "784-100-10 sigmoid, softmax + cross-entropy, batch 32, eta 0.5, float32",
           (784, 100, 10), "sigmoid", "softmax", "categorical_crossentropy", 32, 0.5,
           "float32", 10000),
    Config("P3", "784-1024-1024-10 relu, softmax + cross-entropy, batch 256, eta 0.05, float32",
           (784, 1024, 1024, 10), "relu", "softmax", "categorical_crossentropy", 256, 0.05,
           "float32", 5120),
    Config("P4", "2-16-1 tanh, quadratic, batch 1 (online SGD), eta 0.05, float64",
           (2, 16, 1), "tanh", "tanh", "quadratic", 1, 0.05, "float64", 2000),
    Config("P5", "predict 10000 x 784 through 784-1024-1024-10 relu/softmax, float32",
           (784, 1024, 1024, 10), "relu", "softmax", "categorical_crossentropy", 256, 0.05,
           "float32", 10000, kind="predict"),
]
GROUPS = {"P1": ["P1-f64", "P1-f32"], "P2": ["P2-b10", "P2-b32"]}


def select_configs(names, dtype=None):
    by_name = {cfg.name: cfg for cfg in CONFIGS}
    chosen = []
    for name in names:
        if name == "all":
            expanded = list(by_name)
        else:
            expanded = GROUPS.get(name, [name])
        for item in expanded:
            if item not in by_name:
                raise SystemExit(f"error: unknown configuration {name!r}; choose from "
                                 f"{', '.join(['all'] + list(GROUPS) + list(by_name))}")
            if item not in chosen:
                chosen.append(item)
    configs = [by_name[name] for name in chosen]
    if dtype is not None:
        configs = [cfg for cfg in configs if cfg.dtype == dtype]
    return configs


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Train the same network with deltaprop and its peers; compare speed.",
        epilog="Configurations: " + "; ".join(f"{c.name}: {c.title}" for c in CONFIGS)
               + ". Groups: P1 = P1-f64 P1-f32, P2 = P2-b10 P2-b32, all.")
    parser.add_argument("--config", action="append", default=None, metavar="NAME",
                        help="configuration (repeatable, or 'all'); default: all")
    parser.add_argument("--threads", type=int, nargs="+", default=[1], metavar="N",
                        help="thread count(s) for every implementation (default: 1)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default=None,
                        help="keep only the configurations of this dtype")
    parser.add_argument("--repeats", type=int, default=7,
                        help="timed epochs per implementation (default: 7), after one warm-up")
    parser.add_argument("--min-repeats", type=int, default=3,
                        help="at least this many timed epochs even over --budget (default: 3)")
    parser.add_argument("--budget", type=float, default=30.0,
                        help="seconds of timed epochs per implementation and configuration; a "
                             "slow peer gets fewer repeats (default: 30)")
    parser.add_argument("--epochs-rows", type=int, default=None, metavar="N",
                        help="training rows per epoch for every training configuration "
                             "(default: per configuration, 10000; P3 5120; P4 2000); rounded "
                             "down to a multiple of the batch size")
    parser.add_argument("--predict-rows", type=int, default=None, metavar="N",
                        help="rows predicted in P5 (default: 10000)")
    parser.add_argument("--peers", default=None,
                        help="comma-separated subset of implementations (default: all of "
                             "deltaprop,deltaprop.engine,reference,numpy-loop,torch,jax.jit,"
                             "jax.scan,sklearn)")
    parser.add_argument("--pin", dest="pin", action="store_true", default=None,
                        help="pin the process to N CPUs (default when N < the CPU count, so no "
                             "implementation can use more cores than N, e.g. JAX's dispatch "
                             "thread)")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="do not pin; thread counts are then only requested")
    parser.add_argument("--settle", type=float, default=0.2, metavar="S",
                        help="seconds of busy-waiting before each timed epoch (default: 0.2), "
                             "so that the previous implementation's spinning worker threads "
                             "(OpenBLAS, OpenMP, Eigen) have gone to sleep and steal no core")
    parser.add_argument("--no-isolate", action="store_true",
                        help="run every configuration and thread count in this one process "
                             "(default: one child process each; only one thread count then)")
    parser.add_argument("--no-gemm-peak", action="store_true",
                        help="skip the GEMM peak measurement")
    parser.add_argument("--json", metavar="PATH", help="write every result to PATH")
    parser.add_argument("--plot", metavar="PATH", help="bar chart of samples/s (PNG)")
    parser.add_argument("--table", metavar="PATH", help="also write the printed tables to PATH")
    args = parser.parse_args(argv)
    args.config = args.config or ["all"]
    if min(args.threads) < 1 or args.repeats < 1 or args.min_repeats < 1:
        parser.error("--threads, --repeats and --min-repeats must be positive")
    if args.no_isolate and len(args.threads) > 1:
        parser.error("--no-isolate runs one thread count; give --threads a single value")
    select_configs(args.config, args.dtype)  # validate names early
    return args


# ---- threads: before numpy, torch or jax are imported --------------------------------------

def pin_cpus(n):
    """Restrict the process to n of the CPUs it may run on; returns them (or None)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if n >= len(allowed):
        return None
    chosen = set(allowed[:n])
    os.sched_setaffinity(0, chosen)
    return sorted(chosen)


def set_thread_environment(n):
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(n)
    eigen = "false" if n == 1 else "true"
    flags = f"--xla_cpu_multi_thread_eigen={eigen} intra_op_parallelism_threads={n}"
    previous = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = (previous + " " + flags).strip()


def limit_threads(n):
    """threadpoolctl over every loaded BLAS/OpenMP pool, and torch's own setting."""
    limiter = None
    try:
        import threadpoolctl
    except ImportError:
        print("note: threadpoolctl not installed; BLAS threads only set by environment")
    else:
        limiter = threadpoolctl.threadpool_limits(limits=n)
    try:
        import torch
    except ImportError:
        pass
    else:
        torch.set_num_threads(n)
    return limiter


def import_deltaprop():
    try:
        import deltaprop  # noqa: F401
    except ImportError:
        src = os.path.join(os.path.dirname(HERE), "src")
        if os.path.isdir(os.path.join(src, "deltaprop")):
            sys.path.insert(0, src)
            import deltaprop  # noqa: F401
            print(f"note: deltaprop not installed; using the in-place build under {src}")
        else:
            raise SystemExit("error: deltaprop is not importable; install it or set PYTHONPATH")
    import deltaprop

    return deltaprop


# ---- data, work --------------------------------------------------------------------------------

@dataclass
class Data:
    X: object
    Y: object
    labels: object


def make_data(cfg, rows):
    import numpy as np

    rng = np.random.default_rng(20240611)
    n_in, n_out = cfg.sizes[0], cfg.sizes[-1]
    if cfg.loss == "categorical_crossentropy" or n_out > 1:
        # MNIST-shaped: 784 values in [0, 1); labels a fixed random linear function of them,
        # so the epoch makes progress.
        X = rng.random((rows, n_in))
        R = rng.standard_normal((n_in, n_out))
        labels = np.argmax((X - 0.5) @ R, axis=1)
        Y = np.zeros((rows, n_out))
        Y[np.arange(rows), labels] = 1
    else:
        X = rng.uniform(-1, 1, (rows, n_in))
        Y = (0.8 * np.sin(np.pi * X[:, :1]) * X[:, -1:])
        labels = None
    return Data(np.ascontiguousarray(X, dtype=cfg.dtype),
                np.ascontiguousarray(Y, dtype=cfg.dtype), labels)


def gemm_shapes(cfg, m):
    """The GEMMs of one step on m rows: (what, M, N, K, transpose_a, transpose_b), row-major
    C (M x N) = op(A) op(B), as csrc/deltaprop/dense.hpp issues them."""
    shapes = []
    for l in range(cfg.n_layers):
        n_in, n_out = cfg.sizes[l], cfg.sizes[l + 1]
        shapes.append((f"forward {l + 1}", m, n_out, n_in, False, True))      # A W^T
    if cfg.kind == "train":
        for l in reversed(range(cfg.n_layers)):
            n_in, n_out = cfg.sizes[l], cfg.sizes[l + 1]
            if l > 0:
                shapes.append((f"delta {l}", m, n_in, n_out, False, False))    # D W
            shapes.append((f"grad_W {l + 1}", n_out, n_in, m, True, False))   # D^T A
    return shapes


def work(cfg, rows):
    """(steps, rows per step, FLOPs per epoch)."""
    m = rows if cfg.kind == "predict" else cfg.batch
    steps = 1 if cfg.kind == "predict" else rows // cfg.batch
    per_step = sum(2 * M * N * K for _, M, N, K, _, _ in gemm_shapes(cfg, m))
    return steps, m, steps * per_step


# ---- the GEMM peak of deltaprop's BLAS, on the configuration's products ----------------------

def deltaprop_gemm(dtype):
    """(name, gemm) for the BLAS deltaprop's core multiplies with (deltaprop.get_blas()):
    gemm(alpha, a, b, beta=, c=, trans_a=, trans_b=, overwrite_c=1) on column-major
    (F-contiguous) arrays, as scipy.linalg.blas's wrappers take them. SciPy's: those wrappers
    (f2py). MKL's: its sgemm_/dgemm_ through ctypes, from the library deltaprop loaded."""
    import ctypes

    import numpy as np
    import deltaprop
    from deltaprop import _blas

    name = deltaprop.get_blas()
    double = np.dtype(dtype) == np.float64
    if name == "scipy":
        from scipy.linalg import blas
        return "scipy.linalg.blas (SciPy's OpenBLAS)", blas.dgemm if double else blas.sgemm
    routine = getattr(_blas._libraries[name], "dgemm_" if double else "sgemm_")
    real = ctypes.c_double if double else ctypes.c_float
    flags = {0: ctypes.c_char(b"N"), 1: ctypes.c_char(b"T")}

    def gemm(alpha, a, b, beta=0.0, c=None, trans_a=0, trans_b=0, overwrite_c=1):
        m = a.shape[1] if trans_a else a.shape[0]
        k = a.shape[0] if trans_a else a.shape[1]
        n = b.shape[0] if trans_b else b.shape[1]
        integer = ctypes.c_int
        routine(ctypes.byref(flags[trans_a]), ctypes.byref(flags[trans_b]),
                ctypes.byref(integer(m)), ctypes.byref(integer(n)), ctypes.byref(integer(k)),
                ctypes.byref(real(alpha)), ctypes.c_void_p(a.ctypes.data),
                ctypes.byref(integer(max(1, a.shape[0]))), ctypes.c_void_p(b.ctypes.data),
                ctypes.byref(integer(max(1, b.shape[0]))), ctypes.byref(real(beta)),
                ctypes.c_void_p(c.ctypes.data), ctypes.byref(integer(max(1, c.shape[0]))))
        return c

    return f"{name} (ctypes)", gemm


def gemm_peak(cfg, m, min_time=0.05, repeats=7):
    """Best time of the step's GEMM sequence through the BLAS deltaprop's core calls
    (deltaprop_gemm). Each call from Python costs a fixed overhead that the C++ core does not
    pay; it is measured on a 1x1x1 product and also reported subtracted."""
    import numpy as np

    dtype = np.dtype(cfg.dtype)
    blas_name, gemm = deltaprop_gemm(dtype)
    rng = np.random.default_rng(1)
    calls, plain = [], []
    for _, M, N, K, ta, tb in gemm_shapes(cfg, m):
        A = rng.random((K, M) if ta else (M, K)).astype(dtype)
        B = rng.random((N, K) if tb else (K, N)).astype(dtype)
        C = np.zeros((M, N), dtype)
        # Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: pass the
        # F-contiguous transposes, so f2py copies nothing.
        calls.append((B.T, A.T, C.T, int(tb), int(ta)))
        plain.append((A, ta, B, tb, np.zeros((M, N), dtype)))
        out = gemm(1.0, B.T, A.T, beta=0.0, c=C.T, trans_a=int(tb), trans_b=int(ta),
                   overwrite_c=1)
        expected = (A.T if ta else A) @ (B.T if tb else B)
        assert np.allclose(out.T, expected, rtol=1e-3, atol=1e-3 * K), "gemm wrapper mismatch"

    def sequence(loops):
        start = time.perf_counter()
        for _ in range(loops):
            for b, a, c, t1, t2 in calls:
                gemm(1.0, b, a, beta=0.0, c=c, trans_a=t1, trans_b=t2, overwrite_c=1)
        return time.perf_counter() - start

    def best_per_loop(fn):
        loops = 1
        while fn(loops) < min_time:
            loops *= 2
        return min(fn(loops) / loops for _ in range(repeats))

    seconds = best_per_loop(sequence)
    one = [np.ones((1, 1), dtype, order="F") for _ in range(3)]

    def tiny(loops):
        start = time.perf_counter()
        for _ in range(loops):
            gemm(1.0, one[0], one[1], beta=0.0, c=one[2], overwrite_c=1)
        return time.perf_counter() - start

    overhead = best_per_loop(tiny)
    flops = sum(2 * M * N * K for _, M, N, K, _, _ in gemm_shapes(cfg, m))
    corrected = seconds - overhead * len(calls)
    if corrected < 0.25 * seconds:
        # The wrapper's overhead is most of the time: Python cannot measure these products
        # (benchmarks/native measures them without it).
        corrected = None
    # The same products through the peers' GEMMs (NumPy's own OpenBLAS, torch's), with
    # preallocated outputs; their per-call overhead is included (comparable where large).
    others = {}
    operands = [(A.T if ta else A, B.T if tb else B, C) for A, ta, B, tb, C in plain]

    def numpy_sequence(loops):
        start = time.perf_counter()
        for _ in range(loops):
            for a, b, c in operands:
                np.matmul(a, b, out=c)
        return time.perf_counter() - start

    others["numpy"] = flops / best_per_loop(numpy_sequence) / 1e9
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        t_ops = []
        for A, ta, B, tb, C in plain:
            a, b = torch.from_numpy(A), torch.from_numpy(B)
            t_ops.append((a.T if ta else a, b.T if tb else b, torch.from_numpy(C)))

        def torch_sequence(loops):
            start = time.perf_counter()
            for _ in range(loops):
                for a, b, c in t_ops:
                    torch.matmul(a, b, out=c)
            return time.perf_counter() - start

        others["torch"] = flops / best_per_loop(torch_sequence) / 1e9
    return {"blas": blas_name,
            "seconds_per_step": seconds, "call_overhead_s": overhead, "calls_per_step": len(calls),
            "seconds_per_step_corrected": corrected, "flops_per_step": flops,
            "gflops": flops / seconds / 1e9,
            "gflops_corrected": None if corrected is None else flops / corrected / 1e9,
            "other_libraries_gflops": others}


def square_gemm_peak(dtype, n=1024, repeats=5):
    import numpy as np

    gemm = deltaprop_gemm(dtype)[1]
    a = np.asfortranarray(np.random.default_rng(2).random((n, n)).astype(dtype))
    c = np.zeros((n, n), dtype, order="F")
    gemm(1.0, a, a, beta=0.0, c=c, overwrite_c=1)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        gemm(1.0, a, a, beta=0.0, c=c, overwrite_c=1)
        best = min(best, time.perf_counter() - start)
    return 2.0 * n ** 3 / best / 1e9


# ---- timing --------------------------------------------------------------------------------

def percentiles(values):
    import numpy as np

    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return float(q1), float(median), float(q3)


def settle(seconds):
    """Busy-wait: lets other threads' spinning pools time out and fall asleep while this core
    stays busy (a sleep instead lets the CPU idle, and the next epoch starts cold: P4's
    1.5 ms epochs were up to 2x slower after time.sleep)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def run_config(cfg, args, peers_module):
    import numpy as np

    rows = cfg.rows
    if cfg.kind == "train" and args.epochs_rows is not None:
        rows = args.epochs_rows
    if cfg.kind == "predict" and args.predict_rows is not None:
        rows = args.predict_rows
    if cfg.kind == "train":
        rows = max(cfg.batch, rows - rows % cfg.batch)
    data = make_data(cfg, rows)
    steps, m, flops = work(cfg, rows)

    init_net = peers_module.deltaprop_network(cfg, seed=0)
    init = [(W.copy(), b.copy()) for W, b in zip(init_net.weights, init_net.biases)]
    classes = peers_module.INFERENCE if cfg.kind == "predict" else peers_module.TRAINING
    wanted = None if args.peers is None else set(args.peers.split(","))

    impls, notes = [], {}
    for cls in classes:
        if wanted is not None and cls.name not in wanted:
            continue
        try:
            impls.append(cls(cfg, data, init))
        except peers_module.Unavailable as exc:
            notes[cls.name] = f"skipped: {exc}"
    print(f"\n== {cfg.name}: {cfg.title}; {rows} rows, {steps} steps, "
          f"{flops / 1e9:.3f} GFLOP per epoch ==", flush=True)
    for name, note in notes.items():
        print(f"   {name}: {note}")

    # Warm-up epoch from the initial weights: also the run whose result is checked.
    initial_loss = peers_module.loss64(cfg, init, data.X, data.Y)
    results = {}
    for impl in impls:
        impl.reset()
        start = time.perf_counter()
        impl.run()
        impl.sync()
        warm = time.perf_counter() - start
        entry = {"warmup_s": warm, "note": impl.note, "compare_loss": impl.compare_loss}
        if cfg.kind == "predict":
            entry["outputs"] = np.asarray(impl.outputs(), np.float64)
        else:
            entry["final_loss"] = peers_module.loss64(cfg, impl.parameters(), data.X, data.Y)
        results[impl.name] = entry
    n_repeats = {impl.name: min(args.repeats, max(args.min_repeats,
                                                  int(args.budget // max(results[impl.name]["warmup_s"], 1e-9))))
                 for impl in impls}

    # Interleaved rounds; the order rotates so drifts of a shared machine hit all alike.
    times = {impl.name: [] for impl in impls}
    cpu = {impl.name: [] for impl in impls}
    gc_enabled = gc.isenabled()
    try:
        for round_index in range(max(n_repeats.values(), default=0)):
            shift = round_index % max(len(impls), 1)
            for impl in impls[shift:] + impls[:shift]:
                if len(times[impl.name]) >= n_repeats[impl.name]:
                    continue
                impl.reset()
                if args.settle > 0:
                    settle(args.settle)
                # The collector is off while timing (as timeit does); no gc.collect() here: a
                # full collection right before the timer evicts the caches and charged ~0.2-0.4
                # ms of cold start to every epoch (most to the Python-heavy callers).
                gc.disable()
                wall0, cpu0 = time.perf_counter(), time.process_time()
                impl.run()
                impl.sync()
                wall1, cpu1 = time.perf_counter(), time.process_time()
                if gc_enabled:
                    gc.enable()
                times[impl.name].append(wall1 - wall0)
                cpu[impl.name].append((cpu1 - cpu0) / max(wall1 - wall0, 1e-12))
    finally:
        if gc_enabled:
            gc.enable()

    peak = None
    if not args.no_gemm_peak:
        peak = gemm_peak(cfg, m)
        peak["square_1024_gflops"] = square_gemm_peak(cfg.dtype)

    reference_name = "deltaprop" if "deltaprop" in results else next(iter(results), None)
    rows_out = []
    for impl in impls:
        name = impl.name
        q1, median, q3 = percentiles(times[name])
        entry = results[name]
        gflops = flops / median / 1e9
        row = {
            "implementation": name, "median_s": median, "q1_s": q1, "q3_s": q3,
            "iqr_s": q3 - q1, "min_s": float(min(times[name])), "repeats": len(times[name]),
            "times_s": times[name], "cpu_per_wall": float(np.median(cpu[name])),
            "samples_per_s": rows / median, "gflops": gflops,
            "gemm_peak_fraction": (gflops / peak["gflops_corrected"])
            if peak and peak["gflops_corrected"] else None,
            "warmup_s": entry["warmup_s"], "note": entry["note"],
            "compare_loss": entry["compare_loss"],
        }
        if cfg.kind == "predict":
            ref = results[reference_name]["outputs"]
            row["max_abs_output_diff"] = float(np.max(np.abs(entry["outputs"] - ref)))
        else:
            row["final_loss"] = entry["final_loss"]
            ref = results[reference_name]["final_loss"]
            row["loss_rel_diff"] = abs(entry["final_loss"] - ref) / max(abs(ref), 1e-300)
        rows_out.append(row)
    medians = {row["implementation"]: row["median_s"] for row in rows_out}
    ratios = {a: {b: medians[b] / medians[a] for b in medians} for a in medians}
    return {"config": asdict(cfg), "name": cfg.name, "rows": rows, "steps": steps,
            "rows_per_step": m, "flops_per_epoch": flops, "initial_loss": initial_loss,
            "skipped": notes, "gemm_peak": peak, "results": rows_out, "ratios": ratios}


# ---- reporting -----------------------------------------------------------------------------

def fmt_time(seconds):
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


SHORT = {"deltaprop": "dp", "deltaprop.engine": "dp.eng", "reference": "ref",
         "numpy-loop": "np-loop", "jax.scan": "jax.scan", "jax.jit": "jax.jit"}


def best_peer(run):
    peers = [r for r in run["results"] if r["implementation"] not in ("deltaprop", "deltaprop.engine")]
    return min(peers, key=lambda r: r["median_s"]) if peers else None


def report_config(run, out):
    res = run["results"]
    peak = run["gemm_peak"]
    base = {r["implementation"]: r for r in res}.get("deltaprop")
    train = run["config"]["kind"] == "train"
    check_head = "final loss   rel.diff" if train else "max|out-dp|"
    header = (f"{'implementation':<17}{'median':>10}{'IQR':>10}{'n':>3}{'samples/s':>12}"
              f"{'GFLOP/s':>9}{'%peak':>7}{'cpu/wall':>9}  {check_head}   note")
    out(f"\n{run['name']}: {run['config']['title']}")
    out(f"  {run['rows']} rows, {run['steps']} steps of {run['rows_per_step']} rows, "
        f"{run['flops_per_epoch'] / 1e9:.3f} GFLOP per epoch; loss before training "
        f"{run['initial_loss']:.6g}")
    if peak:
        corrected = (f"{peak['gflops_corrected']:.1f}" if peak["gflops_corrected"]
                     else "not measurable from Python")
        out(f"  GEMM peak of deltaprop's BLAS ({peak.get('blas', 'scipy.linalg.blas')}) on this "
            f"step's {peak['calls_per_step']} "
            f"products: {corrected} GFLOP/s ({peak['gflops']:.1f} with the "
            f"{peak['call_overhead_s'] * 1e6:.2f} us/call overhead from Python); 1024^3 GEMM: "
            f"{peak['square_1024_gflops']:.1f} GFLOP/s")
        others = peak.get("other_libraries_gflops") or {}
        if others:
            out("  the same products through " + ", ".join(
                f"{name} matmul: {value:.1f} GFLOP/s" for name, value in others.items())
                + " (per-call overhead included)")
    out(header)
    out("-" * len(header))
    for r in res:
        if train:
            check = f"{r['final_loss']:<12.7g} {r['loss_rel_diff']:8.1e}"
            if not r["compare_loss"]:
                check = f"{r['final_loss']:<12.7g} {'(n/a)':>8}"
        else:
            check = f"{r['max_abs_output_diff']:.1e}"
        pct = f"{100 * r['gemm_peak_fraction']:6.1f}%" if r["gemm_peak_fraction"] is not None else "      -"
        out(f"{r['implementation']:<17}{fmt_time(r['median_s']):>10}{fmt_time(r['iqr_s']):>10}"
            f"{r['repeats']:>3}{r['samples_per_s']:>12,.0f}{r['gflops']:>9.2f}{pct}"
            f"{r['cpu_per_wall']:>9.2f}  {check}   {r['note']}")
    for name, note in run["skipped"].items():
        out(f"{name:<17}{note}")
    if train and base is not None:
        compared = [r for r in res if r["compare_loss"]]
        worst = max((r["loss_rel_diff"] for r in compared), default=0.0)
        out(f"  max relative difference of the final losses vs deltaprop's (same objective): "
            f"{worst:.2e}")
    names = [r["implementation"] for r in res]
    width = 9
    out("  speed ratio: row is X times as fast as column (median_column / median_row)")
    out(" " * 19 + "".join(f"{SHORT.get(n, n)[:width - 1]:>{width}}" for n in names))
    for a in names:
        out(f"  {a:<17}" + "".join(f"{run['ratios'][a][b]:>{width}.2f}" for b in names))
    if base is not None:
        peer = best_peer(run)
        if peer is not None:
            out(f"  deltaprop vs best peer ({peer['implementation']}): "
                f"{peer['median_s'] / base['median_s']:.2f}x")


def summary(runs, out):
    out("\nSummary (samples/s; ratio = best peer median / deltaprop median; %peak = deltaprop "
        "GFLOP/s / BLAS GEMM GFLOP/s on the same products)")
    header = (f"{'config':<8}{'threads':>8}{'deltaprop':>12}{'engine':>12}{'best peer':>22}"
              f"{'ratio':>8}{'%peak':>8}")
    out(header)
    out("-" * len(header))
    for child in runs:
        for run in child["configs"]:
            by = {r["implementation"]: r for r in run["results"]}
            dp = by.get("deltaprop")
            eng = by.get("deltaprop.engine")
            peer = best_peer(run)
            if dp is None:
                continue
            peer_text = f"{peer['implementation']} {peer['samples_per_s']:,.0f}" if peer else "-"
            ratio = f"{peer['median_s'] / dp['median_s']:.2f}x" if peer else "-"
            pct = (f"{100 * dp['gemm_peak_fraction']:.1f}%"
                   if dp["gemm_peak_fraction"] is not None else "-")
            out(f"{run['name']:<8}{child['threads']:>8}{dp['samples_per_s']:>12,.0f}"
                f"{(eng['samples_per_s'] if eng else float('nan')):>12,.0f}{peer_text:>22}"
                f"{ratio:>8}{pct:>8}")
    if len(runs) > 1:
        out("\nThread scaling (samples/s at each thread count, and the ratio to the first)")
        base = runs[0]
        for run in base["configs"]:
            for r in run["results"]:
                values = []
                for child in runs:
                    other = {c["name"]: c for c in child["configs"]}.get(run["name"])
                    match = [x for x in (other or {}).get("results", [])
                             if x["implementation"] == r["implementation"]]
                    values.append(match[0]["samples_per_s"] if match else float("nan"))
                text = "  ".join(f"{v:>12,.0f}" for v in values)
                scale = "  ".join(f"{v / values[0]:.2f}x" for v in values[1:])
                out(f"  {run['name']:<8}{r['implementation']:<17}{text}   {scale}")


def plot(runs, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(len(runs), 1, figsize=(12, 4.2 * len(runs)), squeeze=False)
    impl_names = []
    for child in runs:
        for run in child["configs"]:
            for r in run["results"]:
                if r["implementation"] not in impl_names:
                    impl_names.append(r["implementation"])
    colors = plt.get_cmap("tab10")
    for ax, child in zip(axes[:, 0], runs):
        configs = [run["name"] for run in child["configs"]]
        width = 0.8 / max(len(impl_names), 1)
        for k, name in enumerate(impl_names):
            values = []
            for run in child["configs"]:
                match = [r for r in run["results"] if r["implementation"] == name]
                values.append(match[0]["samples_per_s"] if match else 0.0)
            x = np.arange(len(configs)) + (k - (len(impl_names) - 1) / 2) * width
            ax.bar(x, values, width, label=name, color=colors(k % 10))
        ax.set_yscale("log")
        ax.set_xticks(np.arange(len(configs)))
        ax.set_xticklabels(configs)
        ax.set_ylabel("samples / s (log)")
        ax.set_title(f"{child['threads']} thread(s): samples per second, higher is better "
                     f"(P5: predicted rows / s)")
        ax.grid(axis="y", which="both", alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, ncol=len(labels), fontsize=8, loc="lower center")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- environment ---------------------------------------------------------------------------

def cpu_model():
    try:
        with open("/proc/cpuinfo") as stream:
            for line in stream:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(threads):
    import numpy as np
    import scipy

    env = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "cpu": cpu_model(), "cpu_count": os.cpu_count(), "python": sys.version.split()[0],
           "platform": platform.platform(), "numpy": np.__version__, "scipy": scipy.__version__,
           "threads": threads, "XLA_FLAGS": os.environ.get("XLA_FLAGS"),
           "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
           "command": " ".join([os.path.basename(sys.executable)] + sys.argv)}
    import deltaprop

    env["deltaprop"] = os.path.dirname(deltaprop.__file__)
    engine = getattr(getattr(deltaprop, "_engine", None), "__file__", None)
    if engine:
        env["deltaprop_engine_built"] = datetime.datetime.fromtimestamp(
            os.path.getmtime(engine)).astimezone().isoformat(timespec="seconds")
    try:
        repo = os.path.dirname(HERE)
        head = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "csrc", "src"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        env["git"] = head + (" (csrc/src modified)" if dirty else "") if head else None
    except (OSError, subprocess.SubprocessError):
        env["git"] = None
    for module in ("torch", "jax", "jaxlib", "sklearn", "threadpoolctl"):
        try:
            env[module] = __import__(module).__version__
        except ImportError:
            env[module] = None
    try:
        import threadpoolctl

        env["threadpools"] = [{k: info.get(k) for k in ("user_api", "internal_api", "num_threads",
                                                       "version", "filepath")}
                              for info in threadpoolctl.threadpool_info()]
    except ImportError:
        pass
    return env


# ---- main ----------------------------------------------------------------------------------

def run_one(args, threads):
    set_thread_environment(threads)
    pinned = None
    if args.pin is None or args.pin:
        pinned = pin_cpus(threads)
    deltaprop = import_deltaprop()
    sys.path.insert(0, HERE)
    import peers

    # Import the peers' libraries now so that threadpoolctl sees their pools.
    for module in ("torch", "jax", "sklearn"):
        try:
            __import__(module)
        except ImportError:
            pass
    limiter = limit_threads(threads)  # noqa: F841 (kept alive for the whole run)
    env = environment(threads)
    env["pinned_cpus"] = pinned
    if env["loadavg_at_start"] and env["loadavg_at_start"][0] > 1.0:
        print(f"warning: load average {env['loadavg_at_start'][0]:.2f} before the run: other "
              f"processes share the CPUs, so the timings are noisy")
    print(f"threads {threads} (pinned to CPUs {pinned}); {env['cpu']} ({env['cpu_count']} CPUs); deltaprop from "
          f"{env['deltaprop']}; numpy {env['numpy']}, scipy {env['scipy']}, torch {env['torch']}, "
          f"jax {env['jax']}, sklearn {env['sklearn']}", flush=True)
    configs = []
    for cfg in select_configs(args.config, args.dtype):
        configs.append(run_config(cfg, args, peers))
        report_config(configs[-1], print)
    del deltaprop
    env["loadavg_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return {"threads": threads, "environment": env, "configs": configs}


def main(argv=None):
    args = parse_args(argv)
    lines = []

    def out(text=""):
        print(text, flush=True)
        lines.append(text)

    configs = select_configs(args.config, args.dtype)
    if args.no_isolate or (len(args.threads) == 1 and len(configs) == 1):
        runs = [run_one(args, args.threads[0])]
        for run in runs:  # run_one printed the tables; keep them for --table too
            for cfg_run in run["configs"]:
                report_config(cfg_run, lines.append)
    else:
        # One fresh process per (thread count, configuration): the thread settings must be in
        # place before the libraries load, and a configuration run after others in the same
        # process was measurably slower and noisier (P4 after P3: jax.scan 1.6 -> 2.8 ms,
        # deltaprop's fit 1.5 -> 2.3 ms per epoch).
        runs = []
        for threads in args.threads:
            run = {"threads": threads, "environment": None, "configs": []}
            for cfg in configs:
                with tempfile.TemporaryDirectory() as tmp:
                    child_json = os.path.join(tmp, "run.json")
                    command = [sys.executable, os.path.abspath(__file__), "--threads", str(threads),
                               "--config", cfg.name, "--json", child_json,
                               "--repeats", str(args.repeats), "--min-repeats", str(args.min_repeats),
                               "--budget", str(args.budget), "--settle", str(args.settle)]
                    for option, value in (("--epochs-rows", args.epochs_rows),
                                          ("--predict-rows", args.predict_rows),
                                          ("--peers", args.peers)):
                        if value is not None:
                            command += [option, str(value)]
                    if args.no_gemm_peak:
                        command.append("--no-gemm-peak")
                    if args.pin is not None:
                        command.append("--pin" if args.pin else "--no-pin")
                    out(f"\n######## threads = {threads}, {cfg.name}: {' '.join(command[1:])}")
                    subprocess.run(command, check=True)
                    with open(child_json) as stream:
                        child = json.load(stream)["runs"][0]
                if run["environment"] is None:
                    run["environment"] = child["environment"]
                run["environment"]["loadavg_at_end"] = child["environment"].get("loadavg_at_end")
                run["configs"].extend(child["configs"])
                for cfg_run in child["configs"]:
                    report_config(cfg_run, lines.append)
            runs.append(run)
    env = runs[0]["environment"]
    out(f"\nmachine: {env['cpu']}, {env['cpu_count']} CPUs; {env['platform']}; date {env['date']}")
    for run in runs:
        start, end = run["environment"].get("loadavg_at_start"), run["environment"].get("loadavg_at_end")
        if start and end:
            out(f"threads {run['threads']}: load average {start[0]:.2f} before, {end[0]:.2f} after "
                f"(this process included); pinned to CPUs {run['environment'].get('pinned_cpus')}")
    out(f"python {env['python']}, numpy {env['numpy']}, scipy {env['scipy']}, torch {env['torch']}, "
        f"jax {env['jax']}, scikit-learn {env['sklearn']}; deltaprop from {env['deltaprop']} "
        f"(git {env.get('git')}, engine built {env.get('deltaprop_engine_built')})")
    summary(runs, out)
    if args.json:
        with open(args.json, "w") as stream:
            json.dump({"runs": runs}, stream, indent=1)
        out(f"\nwrote {args.json}")
    if args.plot:
        plot(runs, args.plot)
        out(f"wrote {args.plot}")
    if args.table:
        with open(args.table, "w") as stream:
            stream.write("\n".join(lines) + "\n")
        print(f"wrote {args.table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
