"""What the autotuner costs and gains in a real ``tf-genai train`` run (issue 19, item 1).

Each config is trained by the CLI in its own process, alternately with ``--no-autotune`` (the
flag choice of ``devices.training_options``) and with the default autotuning from an empty cache
(``TF_GENAI_CACHE`` a fresh folder per run: the first run on a machine, the one that pays for the
probe), in ABBA order so drift hits both alike. Reported: wall seconds of the whole command
(imports, data, training, saving, plots), the probe's own seconds (``run.json``), the choice
and what the probe measured. The targets: the autotuned run costs < 5 % more than the flag run
(``cost``), and its choice is never slower (a changed choice must show a shorter run).

``--shared-cache`` gives a config's autotuned runs one cache instead: the first probes from
the flag choice, each later one starts from the cached choice and probes the levers the earlier
budgets left pending (``tf_genai.autotune``, rule 5), as a user's successive runs of one config
do. The report then lists each autotuned run's probe in order. ``--after-first`` measures the
run after the first instead: one autotuned run fills a cache (reported, not paired), and every
autotuned run of the rounds starts from a copy of that cache, so each pays for probing what the
first left pending.

    python benchmarks/autotune_cost.py --configs vae:digits dcgan:mnist --rounds 2 \\
        --out benchmarks/results/autotune_cost_zen4.md

``mnist`` means the shared MNIST folder (``../shared/data/mnist`` or ``$TF_GENAI_SHARED_DATA``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _data(name: str) -> str:
    if name != "mnist":
        return name
    root = os.environ.get("TF_GENAI_SHARED_DATA") or str(REPO.parent / "shared" / "data")
    return str(Path(root) / "mnist")


def run_env(cache: str) -> dict:
    """The environment of a measured run: autotune cache ``cache``, no lever or autotune mode
    fixed by the caller's environment."""
    from tf_genai.devices import ENV_OVERRIDES

    env = {**os.environ, "TF_GENAI_CACHE": cache}
    for var in (*ENV_OVERRIDES.values(), "TF_GENAI_AUTOTUNE"):
        env.pop(var, None)
    return env


def run_once(model: str, data: str, autotune: bool, extra: list[str],
             cache: str | None = None) -> dict:
    """One CLI run; ``cache``: the autotune cache folder (default: a fresh one)."""
    with tempfile.TemporaryDirectory(prefix="autotune_cost_") as tmp:
        out = Path(tmp) / "run"
        env = run_env(cache or str(Path(tmp) / "cache"))
        cmd = [sys.executable, "-m", "tf_genai.cli", "train", model, "--data", _data(data),
               "--out", str(out), "--quiet", *extra, *([] if autotune else ["--no-autotune"])]
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
        options = json.loads((out / "run.json").read_text())["training_options"]
    tune = options["autotune"]
    return {"autotune": autotune, "wall_s": round(wall, 2), "source": tune["source"],
            "reason": tune["reason"], "probe_s": tune["probe_s"], "speedup": tune["speedup"],
            "options": tune["options"], "flags": tune["flags"], "measured": tune["measured"],
            "skipped": [s["why"] for s in tune["skipped"]], "pending": tune.get("pending", [])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["vae:digits", "dcgan:mnist"],
                        help="model:data pairs (tf-genai train MODEL --data DATA)")
    parser.add_argument("--rounds", type=int, default=2, help="ABBA pairs per config")
    parser.add_argument("--extra", default="", help="more tf-genai train arguments, e.g. "
                        "'--epochs 20'")
    parser.add_argument("--out", default=None, help="a .md file (a .json is written beside it)")
    parser.add_argument("--shared-cache", action="store_true",
                        help="one autotune cache for a config's autotuned runs (later runs "
                        "probe the levers earlier ones left pending)")
    parser.add_argument("--after-first", action="store_true",
                        help="each autotuned run starts from the cache one autotuned run left")
    args = parser.parse_args(argv)
    if args.shared_cache and args.after_first:
        parser.error("--shared-cache or --after-first, not both")

    from tf_genai import devices

    machine = devices.describe().summary()
    print(machine, flush=True)
    results = {"machine": machine, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "configs": {}}
    for config in args.configs:
        model, _, data = config.partition(":")
        runs = []
        with tempfile.TemporaryDirectory(prefix="autotune_cost_cache_") as shared:
            first, first_row = Path(shared) / "first", None
            if args.after_first:
                first_row = run_once(model, data or "digits", True, args.extra.split(),
                                     cache=str(first))
                print(f"{config} first autotuned run (not paired): {first_row['wall_s']} s, "
                      f"{first_row['source']} ({first_row['reason']}), probe "
                      f"{first_row['probe_s']} s, pending {first_row['pending']}", flush=True)
            for r in range(args.rounds):
                order = (False, True) if r % 2 == 0 else (True, False)
                for autotune in order:
                    cache = shared if args.shared_cache else None
                    if args.after_first and autotune:
                        cache = str(Path(shared) / f"round{r}")
                        shutil.copytree(first, cache)
                    row = run_once(model, data or "digits", autotune, args.extra.split(),
                                   cache=cache)
                    runs.append(row)
                    print(f"{config} {'auto' if autotune else 'flags'}: {row['wall_s']} s, "
                          f"{row['source']} ({row['reason']}), probe {row['probe_s']} s, "
                          f"pending {row['pending']}", flush=True)
        results["configs"][config] = summarise(runs)
        if first_row is not None:
            results["configs"][config]["first_run"] = first_row
    text = report(results, args)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
        Path(args.out).with_suffix(".json").write_text(json.dumps(results, indent=2))
    return 0


def options_text(options: dict) -> str:
    """One probe candidate's levers, e.g. ``mixed_bfloat16, XLA off, spe 16, unfused layers``."""
    parts = [options["mixed_precision_policy"], f"XLA {'on' if options['jit_compile'] else 'off'}",
             f"spe {options['steps_per_execution']}"]
    if options.get("float32_weight_gradients"):
        parts.append("float32 weight gradients")
    if not options.get("fused_layers", True):
        parts.append("unfused layers")
    return ", ".join(parts)


def summarise(runs: list[dict]) -> dict:
    """Medians of the flag and autotuned runs, the cost by medians and paired: the median over
    rounds of each round's autotuned / flag run (the two runs of a round are back to back, so
    a drift of the machine's speed over the whole benchmark cancels out of it)."""
    off = [r["wall_s"] for r in runs if not r["autotune"]]
    on = [r["wall_s"] for r in runs if r["autotune"]]
    paired = []
    for a, b in zip(runs[0::2], runs[1::2]):
        auto, flags = (a, b) if a["autotune"] else (b, a)
        paired.append(auto["wall_s"] / flags["wall_s"] - 1)
    return {"flags_wall_s": statistics.median(off), "auto_wall_s": statistics.median(on),
            "cost": round(statistics.median(on) / statistics.median(off) - 1, 4),
            "paired_costs": [round(c, 4) for c in paired],
            "paired_cost": round(statistics.median(paired), 4),
            "probe_share": round(statistics.median(r["probe_s"] for r in runs if r["autotune"])
                                 / statistics.median(on), 4),
            "runs": runs}


def report(results: dict, args) -> str:
    """The Markdown table and the probes' measurements."""
    lines = [f"# Autotune cost and gain in `tf-genai train` ({results['when']})", "",
             f"Machine: {results['machine']}. Command: `python benchmarks/autotune_cost.py --configs "
             f"{' '.join(args.configs)} --rounds {args.rounds}"
             + (f" --extra '{args.extra}'" if args.extra else "")
             + (" --shared-cache" if getattr(args, "shared_cache", False) else "")
             + (" --after-first" if getattr(args, "after_first", False) else "") + "`.", "",
             "| config | flag run (s) | autotuned run (s) | cost (medians) | cost (paired: "
             "median; per round) | probe s (share) | choice |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for config, res in results["configs"].items():
        auto = next(r for r in res["runs"] if r["autotune"])
        probe = statistics.median(r["probe_s"] for r in res["runs"] if r["autotune"])
        lines.append(f"| {config} | {res['flags_wall_s']:.1f} | {res['auto_wall_s']:.1f} | "
                     f"{res['cost']:+.1%} | {res['paired_cost']:+.1%}; "
                     f"{', '.join(f'{c:+.1%}' for c in res['paired_costs'])} | "
                     f"{probe:.1f} ({res['probe_share']:.1%}) | "
                     f"{auto['source']}: {auto['reason']} |")
    lines.append("")
    for config, res in results["configs"].items():
        auto = next(r for r in res["runs"] if r["autotune"])
        steps = "; ".join(f"{options_text(m['options'])}: {m['ms_per_step']} ms/step"
                          for m in auto["measured"])
        lines.append(f"- {config}: probe measured {steps or 'nothing'}"
                     + (f"; skipped: {'; '.join(auto['skipped'])}" if auto["skipped"] else ""))
        first = res.get("first_run")
        if first:
            lines.append(f"  - the first autotuned run (fills the cache the paired ones start "
                         f"from; not paired): {first['wall_s']} s, {first['source']}: "
                         f"{first['reason']}; probe {first['probe_s']} s; pending: "
                         f"{', '.join(first['pending']) or 'none'}")
        if first or getattr(args, "shared_cache", False):  # each autotuned run, in order
            for i, r in enumerate((r for r in res["runs"] if r["autotune"]), 1):
                lines.append(f"  - autotuned run {i}{' (from that cache)' if first else ''}: "
                             f"{r['wall_s']} s, {r['source']}: {r['reason']}; probe "
                             f"{r['probe_s']} s; chose {options_text(r['options'])}; pending: "
                             f"{', '.join(r['pending']) or 'none'}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
