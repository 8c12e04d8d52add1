"""How long a shipped preset takes to load and draw 64 samples, after ``import tf_genai``.

    python benchmarks/preset_speed.py [--names ddpm flow ...] [--n 64]

Each preset is timed in a fresh process, as a user's first call: TensorFlow, Keras and
tf_genai are imported first (not timed), then ``tf_genai.from_preset(name)`` and
``model.sample(64, seed=0)`` are (the first sample call traces the sampler, and that is
counted). The target: under 1 s for a model that samples in one network pass, under 5 s for
an iterative sampler (diffusion, flow matching: ``capabilities.iterative``). Prints one row a
preset with the CPU and date, and exits with status 1 if any preset misses its target.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys

LIMITS = {False: 1.0, True: 5.0}  # seconds: one network pass / an iterative sampler

WORKER = """
import json, sys, time
import tensorflow, keras, tf_genai
name, n = sys.argv[1], int(sys.argv[2])
start = time.perf_counter()
model = tf_genai.from_preset(name)
loaded = time.perf_counter()
images = model.sample(n, seed=0)
done = time.perf_counter()
print(json.dumps({"load": loaded - start, "sample": done - loaded, "total": done - start,
                  "iterative": model.capabilities.iterative, "shape": list(images.shape)}))
"""


def time_preset(name: str, n: int) -> dict:
    """The timings of one preset, measured in a new process."""
    done = subprocess.run([sys.executable, "-c", WORKER, name, str(n)], capture_output=True,
                          text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{name}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    from tf_genai import devices, presets

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", nargs="+", default=None,
                        help="presets to time (default: every shipped one)")
    parser.add_argument("--n", type=int, default=64, help="samples to draw")
    args = parser.parse_args(argv)
    names = args.names or presets.available()
    if not names:
        print("no presets are shipped: build them first (benchmarks/build_presets.py)")
        return 1
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"# from_preset + sample({args.n}) after import, a fresh process each\n")
    print(f"- {date}; {devices.describe().summary()}; command: "
          f"python benchmarks/preset_speed.py {' '.join(argv or sys.argv[1:])}\n")
    print("| preset | load s | sample s | total s | target s | met |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    missed = 0
    for name in names:
        t = time_preset(name, args.n)
        limit = LIMITS[bool(t["iterative"])]
        missed += t["total"] > limit
        print(f"| {name} | {t['load']:.2f} | {t['sample']:.2f} | {t['total']:.2f} | {limit:g} | "
              f"{'yes' if t['total'] <= limit else 'NO'} |", flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
