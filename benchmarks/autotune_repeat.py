"""How often the autotuner's probe moves a lever, and which (issue 19, item 1: its choice must
never be slower than the flag choice).

Runs the probe of a ``tf-genai train`` run ``--repeats`` times in one process, each from an
empty cache, exactly as ``tf_genai.training.train`` sets it up (same model, data, batch size,
predicted run length and so the same budget), and stops before training. Prints what each
probe measured and chose. A lever that a benchmark measures slower but a probe takes is a
false positive; the 5 % margin and the paired comparison are what keep them rare.

    python benchmarks/autotune_repeat.py --model dcgan --data mnist --repeats 8
    python benchmarks/autotune_repeat.py --model dcgan --data mnist --repeats 4 --retune

``--retune`` gives each probe the retune budget (at least 60 s), so every candidate is timed.
``mnist`` means the shared MNIST folder (``../shared/data/mnist`` or ``$TF_GENAI_SHARED_DATA``).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from autotune_cost import _data, options_text  # noqa: E402


def probe_once(model: str, data: str, batch_size: int, retune: bool) -> dict:
    """One probe, set up as ``training.train`` sets it up; returns the decision as JSON."""
    import keras

    from tf_genai import distribute, registry, training

    images, labels = training._load(data, "train", None)
    entry = registry.entry(model)
    kwargs = training._model_kwargs(model, entry, images.shape[1:], labels, data, 0, None, None)
    dist = distribute.get_strategy(None)
    tuner = training._tuner(model, kwargs, batch_size, None, dist,
                            "retune" if retune else "auto", False, None)
    net = training._build(model, kwargs, dist, tuner.policy)
    train_ds, steps_per_epoch, _, epochs = training._datasets(
        net, images, labels, batch_size=batch_size, seed=0, epochs=None, initial_epoch=0,
        validation_fraction=0.1)
    _, _, decision = tuner.settle(
        net, build=lambda policy: training._build(model, kwargs, dist, policy),
        compile=lambda n, o, spe=None: training._compile(n, dist, o, steps_per_epoch, None, 0.0,
                                                          spe=spe),
        train_ds=train_ds, steps_per_epoch=steps_per_epoch,
        remaining_steps=steps_per_epoch * epochs)
    keras.backend.clear_session()
    return decision.to_json()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dcgan")
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--retune", action="store_true")
    parser.add_argument("--out", default=None, help="a .json file for every decision")
    args = parser.parse_args(argv)

    from tf_genai import devices

    for var in [*devices.ENV_OVERRIDES.values(), "TF_GENAI_AUTOTUNE"]:
        os.environ.pop(var, None)

    print(devices.describe().summary(), flush=True)
    decisions, choices = [], collections.Counter()
    with tempfile.TemporaryDirectory(prefix="autotune_repeat_") as tmp:
        for i in range(args.repeats):
            os.environ["TF_GENAI_CACHE"] = str(Path(tmp) / f"cache{i}")
            start = time.perf_counter()
            d = probe_once(args.model, _data(args.data), args.batch_size, args.retune)
            d["wall_s"] = round(time.perf_counter() - start, 1)
            decisions.append(d)
            moved = d["options"] != {**d["flags"], **d["fixed"]}
            choices[options_text(d["options"]) + (" (moved)" if moved else "")] += 1
            measured = "; ".join(f"{options_text(m['options'])}: {m['ms_per_step']}"
                                 for m in d["measured"])
            print(f"probe {i + 1}: {d['source']}: {d['reason']} (probe {d['probe_s']} s, "
                  f"{d['wall_s']} s in all) | {measured}", flush=True)
    print("\nchoices: " + ", ".join(f"{k} x{v}" for k, v in choices.most_common()))
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": devices.describe().summary(),
                                              "args": vars(args), "decisions": decisions},
                                             indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
