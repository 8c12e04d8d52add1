"""Where a training step's milliseconds go, by oneDNN primitive (issue 19, item 3).

Each group's tf_genai trainer (the same one ``throughput.py`` times: same networks, options
and data) runs in a child process with ``ONEDNN_VERBOSE=1``; after a warm-up epoch one epoch is
timed and every oneDNN primitive it executed is read from the verbose log: kind (convolution,
matmul, batch norm, reorder, ...), implementation (the ISA: ``avx512_core_amx_bf16`` is AMX,
``avx512_core_bf16`` the AVX-512 bf16 path, ``gemm:jit`` or ``ref`` the fallbacks), the problem
shape and its milliseconds. FLOPs are counted for convolutions, inner products and matmuls
(2 * MACs, forward and both backward passes alike), so each shape gets its GFLOP/s and its share
of the measured bf16 matmul peak. What oneDNN does not run (Eigen element-wise ops, casts, the
optimizer update, framework overhead) is the step's wall time minus the oneDNN sum.

    python benchmarks/profile_step.py --groups vae_kerasio dcgan \\
        --out benchmarks/results/profile_step_xeon_amx.md

The verbose log costs a little time itself (one line per primitive); the step time reported is
from the profiled epoch, and the unprofiled one from ``throughput.py`` is the reference.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import throughput  # noqa: E402  (the benchmark's trainers, data and peak measurement)

BEGIN, END = "@@profile begin", "@@profile end "


def _mark(text: str) -> None:
    """A marker line in stdout, ordered after everything oneDNN (C stdio) printed so far."""
    ctypes.CDLL(None).fflush(None)
    sys.stdout.flush()
    os.write(1, (text + "\n").encode())


def worker(group: str, data: str) -> None:
    n = throughput.GROUPS[group][0]
    trainer = throughput.build_keras_worker(group, "tf_genai", data, n, {})  # + warm-up epoch
    trainer.round()  # a second epoch: oneDNN's weight reorders and caches settle
    _mark(BEGIN)
    start = time.perf_counter()
    images_per_s = trainer.round()
    wall = time.perf_counter() - start
    steps = -(-n // throughput.BATCH)
    _mark(END + json.dumps({"steps": steps, "images_per_s": images_per_s, "wall_s": wall,
                            "epoch_s": n / images_per_s,
                            "flops_per_image": trainer.flops_per_image}))


# ------------------------------------------------------------------------------ the log
_DIMS = re.compile(r"([a-z]+)(\d+)")


def _problem_flops(kind: str, problem: str) -> int:
    """2 * MACs of a convolution / deconvolution / inner product / matmul descriptor."""
    if kind in ("convolution", "deconvolution"):
        d = collections.defaultdict(lambda: 1)
        for key, value in _DIMS.findall(problem.replace("_", "")):
            d[key] = int(value)
        groups = d["g"] if "g" in problem else 1
        spatial_out = d["od"] * d["oh"] * d["ow"]
        spatial_in = d["id"] * d["ih"] * d["iw"]
        kernel = d["kd"] * d["kh"] * d["kw"]
        # A deconvolution's MACs run over its input positions (it is a convolution's backward).
        positions = spatial_in if kind == "deconvolution" else spatial_out
        return 2 * d["mb"] * (d["ic"] // groups) * d["oc"] * positions * kernel
    if kind == "inner_product":
        d = dict((k, int(v)) for k, v in _DIMS.findall(problem))
        spatial = d.get("id", 1) * d.get("ih", 1) * d.get("iw", 1)
        return 2 * d["mb"] * d["ic"] * spatial * d["oc"]
    if kind == "matmul":  # "128x6272:6272x1024" (batch dims first when present)
        parts = [p for p in problem.split(":") if "x" in p][:2]
        if len(parts) != 2:
            return 0
        a = [int(x) for x in re.findall(r"\d+", parts[0])]
        b = [int(x) for x in re.findall(r"\d+", parts[1])]
        batch = 1
        for x in a[:-2]:
            batch *= x
        return 2 * batch * a[-2] * a[-1] * b[-1]
    return 0


def parse_log(text: str) -> tuple[list[dict], dict]:
    """The exec records between the markers and the worker's END payload."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(BEGIN))
    end = next(i for i, line in enumerate(lines) if line.startswith(END))
    info = json.loads(lines[end][len(END):])
    records = []
    for line in lines[start + 1:end]:
        if not line.startswith("onednn_verbose") or ",exec," not in line:
            continue
        fields = line.split(",")
        i = fields.index("exec")
        # exec, engine, kind, impl, prop, memory descs, attrs, aux, problem, time
        kind, impl, prop = fields[i + 2], fields[i + 3], fields[i + 4]
        problem, ms = fields[-2], float(fields[-1])
        src_dtype = next((m.split(":")[1] for m in fields[i + 5].split()
                          if m.startswith(("src:", "src_f32", "wei:"))), "?")
        records.append({"kind": kind, "impl": impl, "prop": prop, "problem": problem,
                        "dtype": src_dtype, "ms": ms, "flops": _problem_flops(kind, problem)})
    return records, info


def aggregate(records: list[dict], steps: int) -> list[dict]:
    """One row per (primitive, pass, dtype, problem, implementation): ms per step and FLOPs
    per step, costliest first (what the .json keeps instead of every exec line)."""
    rows = collections.defaultdict(lambda: [0.0, 0, 0])
    for r in records:
        row = rows[(r["kind"], r["prop"], r["dtype"], r["problem"], r["impl"])]
        row[0] += r["ms"]
        row[1] += r["flops"]
        row[2] += 1
    keys = ("kind", "prop", "dtype", "problem", "impl")
    return [{**dict(zip(keys, key)), "ms_per_step": ms / steps, "flops_per_step": flops // steps,
             "calls_per_step": calls / steps}
            for key, (ms, flops, calls) in sorted(rows.items(), key=lambda kv: -kv[1][0])]


def summarize(group: str, records: list[dict], info: dict, peak: dict) -> str:
    steps = info["steps"]
    step_ms = 1000 * info["epoch_s"] / steps
    onednn_ms = sum(r["ms"] for r in records) / steps
    out = [f"### {group}", "",
           f"{info['images_per_s']:,.0f} images/s in the profiled epoch ({steps} steps of "
           f"{throughput.BATCH}): **{step_ms:.2f} ms per step**, of which oneDNN primitives "
           f"{onednn_ms:.2f} ms ({100 * onednn_ms / step_ms:.0f} %); the rest "
           f"({step_ms - onednn_ms:.2f} ms) is TensorFlow's own kernels (element-wise, casts, "
           f"the optimizer) and overhead. Whole step: "
           f"{info['flops_per_image'] * throughput.BATCH / (step_ms / 1000) / 1e9:.0f} GFLOP/s, "
           f"{100 * info['flops_per_image'] * throughput.BATCH / (step_ms / 1000) / 1e9 / peak['bfloat16']:.0f} % "
           f"of the bf16 matmul peak ({peak['bfloat16']:.0f} GFLOP/s).", ""]

    by_kind = collections.defaultdict(lambda: [0.0, 0])
    for r in records:
        row = by_kind[(r["kind"], r["impl"])]
        row[0] += r["ms"]
        row[1] += r["flops"]
    out += ["| primitive | implementation | ms/step | share of step | GFLOP/s | % bf16 peak |",
            "| --- | --- | ---: | ---: | ---: | ---: |"]
    for (kind, impl), (ms, flops) in sorted(by_kind.items(), key=lambda kv: -kv[1][0]):
        rate = flops / (ms / 1000) / 1e9 if flops and ms else 0
        out.append(f"| {kind} | `{impl}` | {ms / steps:.2f} | {100 * ms / steps / step_ms:.1f} % "
                   f"| {rate:.0f} | {100 * rate / peak['bfloat16']:.0f} % |" if flops else
                   f"| {kind} | `{impl}` | {ms / steps:.2f} | {100 * ms / steps / step_ms:.1f} % "
                   f"| | |")
    out += ["", "The costliest shapes (convolutions, deconvolutions, matmuls):", "",
            "| primitive | pass | dtype | problem | implementation | ms/step | GFLOP/s | % bf16 peak |",
            "| --- | --- | --- | --- | --- | ---: | ---: | ---: |"]
    for row in [r for r in aggregate(records, steps) if r["flops_per_step"]][:14]:
        rate = row["flops_per_step"] / (row["ms_per_step"] / 1000) / 1e9
        out.append(f"| {row['kind']} | {row['prop']} | {row['dtype']} | `{row['problem']}` | "
                   f"`{row['impl']}` | {row['ms_per_step']:.2f} | {rate:.0f} | "
                   f"{100 * rate / peak['bfloat16']:.0f} % |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", nargs="+", default=["vae_kerasio", "dcgan"],
                        choices=["vae_kerasio", "vae", "dcgan"])
    parser.add_argument("--data", default=str(throughput.DEFAULT_DATA))
    parser.add_argument("--out", default=None, help="a .md file (the per-shape rows go beside it "
                                                    "as .json)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.data)
        return 0

    peak = throughput.measure_peak()
    text = ["# Training step profile by oneDNN primitive", "",
            f"`python benchmarks/profile_step.py --groups {' '.join(args.groups)}` "
            f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}); machine: "
            f"{peak['machine']}; matmul peak {peak['float32']:.0f} GFLOP/s float32, "
            f"{peak['bfloat16']:.0f} bf16. Batch {throughput.BATCH}, the tf_genai options "
            f"of `devices.training_options()`.", ""]
    raw = {}
    for group in args.groups:
        env = {**os.environ, "ONEDNN_VERBOSE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
        proc = subprocess.run([sys.executable, __file__, "--worker", group, "--data", args.data],
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0 or END not in proc.stdout:
            raise SystemExit(f"{group}: the profiled worker failed:\n{proc.stderr[-3000:]}")
        records, info = parse_log(proc.stdout)
        if not records:
            raise SystemExit(f"{group}: no oneDNN exec lines between the markers (is this "
                             "TensorFlow built with oneDNN, TF_ENABLE_ONEDNN_OPTS=1?)")
        text.append(summarize(group, records, info, peak))
        raw[group] = {"info": info, "shapes": aggregate(records, info["steps"])}
        print(text[-1], flush=True)
    if args.out:
        Path(args.out).write_text("\n".join(text))
        Path(args.out).with_suffix(".json").write_text(json.dumps(
            {"machine": peak["machine"], "peak": peak, "groups": raw}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
