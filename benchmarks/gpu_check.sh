#!/usr/bin/env bash
# On a GPU machine: the device's training options, the mixed-precision tests (mixed_float16 on
# tensor cores, XLA on), a short interleaved throughput benchmark and the levers timed.
# Run from anywhere: bash benchmarks/gpu_check.sh [--rounds N]   (default 2 rounds; ~10 minutes)
# The PyTorch rows are left out: the benchmark's PyTorch loop is a CPU loop.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
ROUNDS=2
if [[ "${1:-}" == "--rounds" ]]; then ROUNDS="$2"; fi

python - <<'PY'
import tensorflow as tf
from tf_genai import devices
gpus = tf.config.list_physical_devices("GPU")
if not gpus:
    raise SystemExit("gpu_check.sh: TensorFlow sees no GPU (is the CUDA build installed?)")
info = devices.describe()
print("device:", info)
print("training_options():", devices.training_options())
PY

python -m pytest -q -p no:cacheprovider tests/test_mixed_precision.py tests/test_devices.py

python benchmarks/throughput.py --rounds "$ROUNDS" --groups vae_kerasio vae dcgan \
    --impls tf_genai kerasio+opts keras-io

# float32 against mixed_float16, steps per execution, XLA on and off: the flags' GPU choice
python benchmarks/levers.py --model dcgan --data ../shared/data/mnist --rounds "$ROUNDS"
