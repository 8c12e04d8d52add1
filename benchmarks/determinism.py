"""What --deterministic costs: training speed with and without TensorFlow's deterministic ops.

Each (model, mode) trains in its own process (op determinism is a process-wide switch) on the
embedded digits, as ``tf-genai train`` does, and reports the median epoch time after the first
epoch (which traces). Interleaved: plain, deterministic, plain, ... per model.

    python benchmarks/determinism.py --models vae dcgan ddpm --epochs 6 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def worker(name: str, deterministic: bool, epochs: int) -> None:
    import time

    import keras

    from tf_genai.training import train

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.start)

    timer = EpochTimer()
    timer.times = []
    train(name, data="digits", epochs=epochs, seed=3, deterministic=deterministic,
          callbacks=[timer], verbose=0, plots=False)
    print("RESULT", json.dumps({"median_epoch_s": statistics.median(timer.times[1:])}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vae", "mlp_vae", "dcgan", "ddpm"])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    rows = []
    for name in args.models:
        times = {False: [], True: []}
        for _ in range(args.rounds):
            for det in (False, True):
                proc = subprocess.run(
                    [sys.executable, __file__, "--worker", name, str(int(det)), str(args.epochs)],
                    capture_output=True, text=True, env=env, check=True)
                line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")][-1]
                times[det].append(json.loads(line[7:])["median_epoch_s"])
        plain, det = statistics.median(times[False]), statistics.median(times[True])
        rows.append((name, plain, det, det / plain - 1.0))
        print(f"{name}: plain {plain:.3f} s/epoch, deterministic {det:.3f} s/epoch "
              f"({100 * (det / plain - 1):+.1f} %)", flush=True)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    print(f"\n{cpu}, {os.cpu_count()} CPUs; digits, {args.epochs} epochs, {args.rounds} rounds\n")
    print("| model | s/epoch | s/epoch --deterministic | cost |\n| --- | ---: | ---: | ---: |")
    for name, plain, det, cost in rows:
        print(f"| {name} | {plain:.3f} | {det:.3f} | {100 * cost:+.1f} % |")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], bool(int(sys.argv[3])), int(sys.argv[4]))
    else:
        sys.exit(main())
