"""Where a default run's time goes with and without the autotuner: before ``fit`` and in it.

``autotune_cost.py`` times whole CLI runs, whose run-to-run spread on a 2-core machine (+-5 s
of ~225 s) is larger than a 2 % probe. This script runs ``tf_genai.training.train`` (the
library call behind ``tf-genai train``) in a fresh process per run with a callback that times
the phases: import, everything before ``fit`` (data, build, the probe), ``fit`` itself. So it
shows whether the probe's cost stays in the probe or the training after it runs slower.

With ``--after-first`` one autotuned run first fills a cache (printed, not paired), and each
autotuned run of the rounds starts from a copy of it: the cost of a run that probes the levers
the first run left pending (``tf_genai.autotune``, rule 5). Runs alternate ABBA with
``autotune="off"``::

    python benchmarks/autotune_phases.py --model dcgan --data mnist --rounds 2 --after-first
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from autotune_cost import _data, run_env  # noqa: E402

CHILD = r"""
import json, os, sys, time
start = time.perf_counter()
import keras
from tf_genai import training

class Phase(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.begin = time.perf_counter()
    def on_train_end(self, logs=None):
        self.end = time.perf_counter()

phase = Phase()
imported = time.perf_counter()
training.train(sys.argv[1], sys.argv[2], autotune=sys.argv[3], callbacks=[phase], verbose=0,
               plots=False)
done = time.perf_counter()
print(json.dumps({"import_s": round(imported - start, 2),
                  "before_fit_s": round(phase.begin - imported, 2),
                  "fit_s": round(phase.end - phase.begin, 2), "total_s": round(done - start, 2)}))
"""


def run_once(model: str, data: str, mode: str, cache: str) -> dict:
    from tf_genai.autotune import CACHE_FILE

    proc = subprocess.run([sys.executable, "-c", CHILD, model, data, mode], env=run_env(cache),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{model} {mode} failed:\n{proc.stderr[-3000:]}")
    row = {"mode": mode, **json.loads(proc.stdout.strip().splitlines()[-1])}
    path = Path(cache) / CACHE_FILE
    entries = json.loads(path.read_text()).get("entries", {}) if path.is_file() else {}
    row["pending"] = [e.get("pending") for e in entries.values()]
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dcgan")
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--rounds", type=int, default=2, help="ABBA pairs")
    parser.add_argument("--after-first", action="store_true")
    args = parser.parse_args(argv)

    from tf_genai import devices

    print(devices.describe().summary(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
          flush=True)
    data = _data(args.data)
    with tempfile.TemporaryDirectory(prefix="autotune_phases_") as tmp:
        first = Path(tmp) / "first"
        if args.after_first:
            print("first (not paired):", json.dumps(run_once(args.model, data, "auto",
                                                              str(first))), flush=True)
        for r in range(args.rounds):
            for mode in (("off", "auto") if r % 2 == 0 else ("auto", "off")):
                cache = Path(tmp) / f"run{r}{mode}"
                if mode == "auto" and args.after_first:
                    shutil.copytree(first, cache)
                print(json.dumps(run_once(args.model, data, mode, str(cache))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
