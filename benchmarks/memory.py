"""Memory across epochs: does training hold its memory flat?

For each training configuration of run.py (P1-P4) and P5's predict, one network runs
``--epochs`` calls of ``fit(epochs=1)`` (or ``predict``) on the same data, the way a training
loop with per-epoch callbacks or a serving loop would, and after each call the script
records, after a garbage collection, the process's resident set size (/proc/self/statm) and
the bytes Python's allocator holds (tracemalloc, which also sees NumPy's array buffers). The
first call allocates the workspaces; from the second on, a flat run grows by nothing.

    PYTHONPATH=src python benchmarks/memory.py                  # all, 50 calls each
    PYTHONPATH=src python benchmarks/memory.py --config P1-f64 --epochs 200

Reported per configuration: RSS after the first call, growth from the second call to the
last (RSS and tracemalloc), and the largest growth between two consecutive calls.
"""

import argparse
import array
import gc
import os
import sys
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run as harness  # noqa: E402  (the configurations and data of run.py)


def resident_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(cfg, calls):
    import deltaprop

    data = harness.make_data(cfg, cfg.rows)
    net = deltaprop.Network(list(cfg.sizes), activation=cfg.hidden, output=cfg.output,
                            loss=cfg.loss, dtype=cfg.dtype, seed=0)
    # Preallocated, so that the measurements themselves allocate nothing that tracemalloc sees.
    rss, traced = (array.array("q", bytes(8 * calls)) for _ in range(2))
    tracemalloc.start()
    for call in range(calls):
        if cfg.kind == "predict":
            net.predict(data.X)
        else:
            net.fit(data.X, data.Y, epochs=1, batch_size=cfg.batch, learning_rate=cfg.eta,
                    shuffle=True)
        gc.collect()  # what is still held, not garbage the cyclic collector has yet to see
        rss[call] = resident_bytes()
        traced[call] = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    steps = [later - earlier for earlier, later in zip(rss[1:], rss[2:])]
    return {
        "rss_first_mib": rss[0] / 2**20,
        "rss_growth_kib": (rss[-1] - rss[1]) / 1024,
        "traced_growth_kib": (traced[-1] - traced[1]) / 1024,
        "largest_step_kib": max(steps, default=0) / 1024,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", default=None,
                        help="P1, P1-f64, ..., P5 or all (repeatable; default all)")
    parser.add_argument("--epochs", type=int, default=50, help="calls per configuration")
    args = parser.parse_args(argv)
    if args.epochs < 3:
        parser.error("--epochs must be at least 3")
    configs = harness.select_configs(args.config or ["all"])
    print(f"{'config':8} {'calls':>6} {'RSS after 1st':>14} {'RSS growth 2nd..last':>21} "
          f"{'traced growth':>14} {'largest step':>13}")
    for cfg in configs:
        result = measure(cfg, args.epochs)
        print(f"{cfg.name:8} {args.epochs:>6} {result['rss_first_mib']:>10.1f} MiB "
              f"{result['rss_growth_kib']:>17.0f} KiB {result['traced_growth_kib']:>10.1f} KiB "
              f"{result['largest_step_kib']:>9.0f} KiB")


if __name__ == "__main__":
    main()
