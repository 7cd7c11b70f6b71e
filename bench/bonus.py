"""Interleaved timing of the bonus cases of test_bench_bonus.py: each round runs every case once
(50 training steps of net A at batch 100 through the Trainer), in turn, so that drifts in the
machine's speed hit all of them alike; prints median seconds per case and the ratio to `plain`.

    python bench/bonus.py [--rounds 15]
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import impls  # noqa: E402
from test_bench_bonus import CASES  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    data = impls.bonus_data()
    runs = {case: impls.bonus_steps(data, **changes) for case, changes in CASES.items()}
    for run in runs.values():
        run()                                      # compile and warm up
    times = {case: [] for case in runs}
    for _ in range(args.rounds):
        for case, run in runs.items():
            tic = time.perf_counter()
            run()
            times[case].append(time.perf_counter() - tic)
    plain = statistics.median(times["plain"])
    print(f"| case | median ms / {impls.BONUS_STEPS} steps | ms / step | speed vs plain |")
    print("|---|---|---|---|")
    for case, t in times.items():
        m = statistics.median(t)
        print(f"| {case} | {m * 1e3:.1f} | {m * 1e3 / impls.BONUS_STEPS:.3f} | {plain / m:.2f} |")


if __name__ == "__main__":
    main()
