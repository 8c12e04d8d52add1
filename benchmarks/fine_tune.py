"""Fine-tuning a preset against training from scratch, at the same short budget, on a folder.

    python benchmarks/fine_tune.py --folder FOLDER --preset sngan --budget 120
    python benchmarks/fine_tune.py --folder FOLDER --preset sngan --scratch dcgan sngan --budget 600
    python benchmarks/fine_tune.py --write-cifar-heldout /tmp/cifar_batch5   # a test folder

A user's small folder of colour photos is the case presets are for. Every arm runs the commands
a user types, in fresh processes:

    tf-genai train MODEL --data FOLDER --image-size S --time-budget B --out DIR/scratch
    tf-genai train MODEL --from-preset PRESET --data FOLDER --image-size S --time-budget B \\
        --out DIR/preset
    tf-genai evaluate DIR/ARM/model.keras --data FOLDER --split heldout --features inception \\
        --num-generated N --json

(MODEL is the preset's zoo model, or for the scratch arms each ``--scratch`` model; S the
preset's image size; the held-out split is the folder's last fifth of a fixed permutation,
which no arm trains on.) Prints a table of KID (with its
standard error), FID, precision and recall in the FID Inception space, with the command, CPU and
date; ``--out`` also writes it as markdown and JSON.

``--write-cifar-heldout DIR`` writes the 932 images of the CIFAR-10 subset's ``x_test`` (batch 5
of the CIFAR-10 release, never trained on by the colour presets) as a flat folder of PNG files:
a folder of real 32x32 photos of ten kinds of object that the presets have not seen.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "tf_genai.cli"]


def write_cifar_heldout(folder: Path, data_root: Path) -> int:
    """Write the CIFAR-10 subset's held-out images as PNG files; returns how many."""
    import numpy as np
    from PIL import Image

    with np.load(data_root / "cifar10" / "cifar10_subset.npz") as arrays:
        images = arrays["x_test"]
    folder.mkdir(parents=True, exist_ok=False)  # never writes into an existing folder
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:04d}.png")
    return len(images)


def run(cmd: list[str]) -> str:
    """Run a tf-genai command; its standard output, or an error with its last lines."""
    done = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def arm(name: str, args: argparse.Namespace, model: str, size: int, work: Path) -> dict:
    """Train one arm (``scratch`` or ``preset``) and evaluate it on the folder's held-out part."""
    out = work / f"{name}-{model}"
    train = [*CLI, "train", model, "--data", str(args.folder), "--image-size", str(size),
             "--time-budget", f"{args.budget:g}", "--epochs", "100000", "--seed", str(args.seed),
             "--quiet", "--out", str(out)]
    if name == "preset":
        train[4:4] = ["--from-preset", args.preset]
    start = time.perf_counter()
    run(train)
    seconds = time.perf_counter() - start
    run_json = json.loads((out / "run.json").read_text())
    if args.grid_dir:  # the run's own sample grid (tf-genai train writes samples.png)
        args.grid_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / "samples.png", args.grid_dir / f"{name}_{model}.png")
    evaluate = [*CLI, "evaluate", str(out / "model.keras"), "--data", str(args.folder),
                "--split", "heldout", "--features", "inception", "--num-generated",
                str(args.num_generated), "--seed", "0", "--json"]
    result = json.loads(run(evaluate))
    return {"arm": f"{name} {model}", "train_seconds": round(seconds, 1), "train": shlex.join(train),
            "evaluate": shlex.join(evaluate), "epochs": run_json["epochs_done"],
            **{k: result.get(k) for k in ("kid", "kid_std", "fid", "precision", "recall")}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--folder", type=Path, help="the folder of images to fine-tune on")
    parser.add_argument("--preset", default="sngan", help="the preset to start from")
    parser.add_argument("--budget", type=float, default=120.0, help="training seconds per arm")
    parser.add_argument("--num-generated", type=int, default=2000, help="samples per arm")
    parser.add_argument("--scratch", nargs="+", metavar="MODEL",
                        help="zoo models trained from scratch (default: the preset's model)")
    parser.add_argument("--seed", type=int, default=0, help="every arm's training seed")
    parser.add_argument("--out", type=Path, help="write the table as OUT.md and OUT.json")
    parser.add_argument("--grid-dir", type=Path,
                        help="keep each arm's sample grid there as ARM_MODEL.png")
    parser.add_argument("--write-cifar-heldout", type=Path, metavar="DIR",
                        help="only write the CIFAR-10 subset's held-out images into DIR")
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data",
                        help="the shared data folder (for --write-cifar-heldout)")
    args = parser.parse_args(argv)
    if args.write_cifar_heldout:
        n = write_cifar_heldout(args.write_cifar_heldout, args.data_root)
        print(f"wrote {n} images into {args.write_cifar_heldout}")
        return 0
    if args.folder is None or not args.folder.is_dir():
        parser.error(f"--folder must be a folder of images, got {args.folder}")

    from tf_genai import devices, presets

    folder = presets.check(args.preset)  # an unknown or damaged preset fails before training
    model, size = folder.zoo_name, folder.config["config"]["image_shape"][0]
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    with tempfile.TemporaryDirectory(prefix="fine-tune-") as tmp:
        rows = [*(arm("scratch", args, m, size, Path(tmp)) for m in args.scratch or [model]),
                arm("preset", args, model, size, Path(tmp))]
    command = shlex.join(["python", "benchmarks/fine_tune.py", *(argv or sys.argv[1:])])
    title = (f"# Fine-tuning `{args.preset}` against scratch on {args.folder.name}, "
             f"{args.budget:g} s each")
    each = (f"- each arm: `{rows[-1]['train']}` (scratch: its model, without `--from-preset`), "
            f"then `{rows[-1]['evaluate']}`")
    lines = [title, "",
             f"- {date}; {devices.describe().summary()}", f"- command: `{command}`",
             each, "",
             "| arm | epochs | train s | KID ↓ | KID s.e. | FID ↓ | precision ↑ | recall ↑ |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['arm']} | {r['epochs']} | {r['train_seconds']:.0f} | {r['kid']:.4f} "
                     f"| {r['kid_std']:.4f} | {r['fid']:.2f} | {r['precision']:.3f} "
                     f"| {r['recall']:.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.with_suffix(".md").write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(
            {"date": date, "command": command, "device": devices.describe().summary(),
             "preset": args.preset, "folder": str(args.folder), "budget": args.budget,
             "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
