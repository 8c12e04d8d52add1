"""FID against sampling time and network evaluations, from the JSON that benchmarks/quality.py
writes: one line per trained model and sampler, one point per step count.

    python benchmarks/plot_sampling_cost.py results/a.json results/b.json --out fid_vs_time.png

Network evaluations (NFE) per sample of S steps: Heun 2S - 1, midpoint 2S, every other sampler
(Euler, DDIM, DPM-Solver++(2M)) S; a guided model doubles its batch, not its NFE.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

NFE_PER_STEP = {"heun": lambda s: 2 * s - 1, "midpoint": lambda s: 2 * s}


def nfe(sample_args: dict) -> int | None:
    steps = sample_args.get("steps")
    if steps is None:
        return None
    return NFE_PER_STEP.get(sample_args.get("sampler"), lambda s: s)(steps)


def lines(rows: list[dict]) -> dict[str, list[tuple[float, float, int]]]:
    """{'flow @ 1200 s, heun': [(sample s, FID, NFE), ...]} for rows with a step count."""
    out: dict[str, list] = defaultdict(list)
    for row in rows:
        args = row.get("sample_args") or {}
        count = nfe(args)
        if count is None or row.get("fid") is None:
            continue
        trained = re.sub(r"\s*\(.*\)$", "", row["model"])
        sampler = args.get("sampler") or ("ddim" if row.get("family") == "diffusion" else "default")
        out[f"{trained}, {sampler}"].append((row["sample s"], row["fid"], count))
    return {key: sorted(points, key=lambda p: p[2]) for key, points in out.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="quality.py JSON files")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--title", default="FID against sampling cost (2,000 samples)")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    rows = [row for path in args.results for row in json.loads(path.read_text())]
    fig, (by_time, by_nfe) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for label, points in lines(rows).items():
        seconds, fids, counts = zip(*points)
        by_time.plot(seconds, fids, marker="o", label=label)
        by_nfe.plot(counts, fids, marker="o", label=label)
        for x, y, n in points:
            by_time.annotate(str(n), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
    by_time.set(xscale="log", xlabel="seconds for 2,000 samples (NFE beside each point)",
                ylabel="FID (lower is better)")
    by_nfe.set(xscale="log", xlabel="network evaluations per sample (NFE)")
    for axis in (by_time, by_nfe):
        axis.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.xaxis.set_major_formatter(ticker.ScalarFormatter())
        axis.xaxis.set_minor_formatter(ticker.NullFormatter())
        axis.grid(alpha=0.3)
    by_nfe.legend(fontsize=7)
    fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
