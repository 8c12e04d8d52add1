"""Per-device training options: the speed levers tf_genai turns on, chosen by what the hardware has.

:func:`training_options` answers "how should ``compile`` and the dtype policy be set on this
device?". Each lever is on only where ``benchmarks/throughput.py`` measured it to help:

===================  =========================================  ===================================
lever                CPU                                        GPU
===================  =========================================  ===================================
mixed precision      ``mixed_bfloat16`` when the CPU has bf16   ``mixed_float16`` (compute
                     dot-product units (``avx512_bf16`` or       capability >= 7.0, tensor cores),
                     AMX ``amx_bf16`` in /proc/cpuinfo),        else float32
                     else float32
steps_per_execution  16: fewer Python round trips per epoch     16
XLA (jit_compile)    off: XLA's CPU convolutions measured       on
                     about 2x slower than oneDNN's
===================  =========================================  ===================================

The ``tf.data`` cache/prefetch lever lives in :func:`tf_genai.data.make_dataset`; compiled
sampling is :func:`compiled_sampler`.

Mixed precision (Micikevicius et al. 2018, "Mixed Precision Training", arXiv:1710.03740): the
layers compute in 16 bits and keep float32 weights; tf_genai models compute their losses in
float32 and pass them through ``optimizer.scale_loss`` so ``mixed_float16`` loss scaling works.
bfloat16 has float32's exponent range, so it needs no loss scaling. A policy must be set
*before* a model is built: Keras layers read the global policy when they are constructed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from typing import Any, Callable, Iterator

import keras
import tensorflow as tf

from tf_genai import capabilities
from tf_genai.errors import ConfigError

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
DEVICE_KINDS = ("cpu", "gpu")
# CPU flags (Linux /proc/cpuinfo names) of units that multiply bfloat16 natively: AVX-512 BF16
# (vdpbf16ps, Intel Cooper Lake+ / AMD Zen 4+) and AMX tiles (Intel Sapphire Rapids+). Without
# them oneDNN emulates bf16 and mixed_bfloat16 is slower than float32.
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
# Environment overrides of single levers, for comparing runs or a machine the flags misjudge
# (``python benchmarks/levers.py`` times the choices on the machine at hand and prints them).
ENV_OVERRIDES = {
    "mixed_precision_policy": "TF_GENAI_POLICY",
    "steps_per_execution": "TF_GENAI_STEPS_PER_EXECUTION",
    "jit_compile": "TF_GENAI_JIT_COMPILE",
}
# Below this many steps per execution the per-step Python/dispatch cost shows on small models;
# above it callbacks (progress bar, NaN check) see batches too rarely for no measured gain.
STEPS_PER_EXECUTION = 16


@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    """What :func:`training_options` needs to know about a device.

    Attributes:
        kind: ``"cpu"`` or ``"gpu"``.
        name: a human-readable name (CPU model or GPU device name).
        bf16: native bfloat16 multiply units (CPU flags above; GPU compute capability >= 8.0).
        fp16: fast float16 (GPU tensor cores, compute capability >= 7.0); False on CPU.
        amx: Intel AMX tiles present (CPU only).
        flags: the CPU flags read (empty for a GPU).
    """

    kind: str
    name: str
    bf16: bool
    fp16: bool
    amx: bool = False
    flags: frozenset[str] = frozenset()
    cores: int = 1

    def summary(self) -> str:
        """One line: ``"cpu: AMD EPYC (2 cores; avx512_bf16; no AMX)"``."""
        if self.kind == "gpu":
            units = ", ".join(u for u, on in (("fp16", self.fp16), ("bf16", self.bf16)) if on)
            return f"gpu: {self.name} ({units or 'no fast 16-bit units'})"
        simd = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in self.flags]
        return (f"cpu: {self.name} ({self.cores} core{'s' if self.cores != 1 else ''}; "
                f"{' '.join(simd) or 'no AVX2/AVX-512 flags read'}; "
                f"{'AMX' if self.amx else 'no AMX'})")


def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU feature flags of the first processor in ``path``; empty where it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):  # x86 / ARM spelling
                    return frozenset(value.split())
    except OSError:
        pass  # not Linux (or no procfs): assume no bf16 units, the safe float32 choice
    return frozenset()


def _cpu_name(path: str = "/proc/cpuinfo") -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    return value.strip()
    except OSError:
        pass
    return "cpu"


@functools.lru_cache(maxsize=None)
def _gpu_info() -> DeviceInfo | None:
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    details = tf.config.experimental.get_device_details(gpus[0])
    major, minor = details.get("compute_capability", (0, 0))
    return DeviceInfo(
        kind="gpu",
        name=str(details.get("device_name", gpus[0].name)),
        bf16=(major, minor) >= (8, 0),
        fp16=(major, minor) >= (7, 0),
    )


def describe(device: str | None = None, *, cpuinfo: str = "/proc/cpuinfo") -> DeviceInfo:
    """Describe ``device`` (``"cpu"``, ``"gpu"``, or None = the GPU if TensorFlow sees one).

    Raises:
        ConfigError: an unknown device name, or ``"gpu"`` on a machine without one.
    """
    if device is not None and device not in DEVICE_KINDS:
        raise ConfigError(f"device must be one of {', '.join(DEVICE_KINDS)} or None, got {device!r}")
    if device in (None, "gpu"):
        gpu = _gpu_info()
        if gpu is not None:
            return gpu
        if device == "gpu":
            raise ConfigError("device='gpu' but TensorFlow sees no GPU on this machine")
    flags = cpu_flags(cpuinfo)
    return DeviceInfo(
        kind="cpu",
        name=_cpu_name(cpuinfo),
        bf16=bool(flags & BF16_CPU_FLAGS),
        fp16=False,
        amx="amx_bf16" in flags,
        flags=flags,
        cores=_cores(),
    )


def _cores() -> int:
    """The cores this process may run on (its affinity mask, which a container limits)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def training_options(device: str | DeviceInfo | None = None) -> dict[str, Any]:
    """The fastest measured training settings for ``device``.

    Args:
        device: ``"cpu"``, ``"gpu"``, a :class:`DeviceInfo`, or None (the GPU if there is one).
            The environment overrides single levers (:func:`env_overrides`):
            ``TF_GENAI_POLICY`` (e.g. ``float32`` when comparing runs),
            ``TF_GENAI_STEPS_PER_EXECUTION`` and ``TF_GENAI_JIT_COMPILE`` (``0``/``1``).

    The choice rests on CPU flags and GPU compute capability, as measured on the machines in the
    table above; ``python benchmarks/levers.py --model NAME --data DATA`` times each lever for a
    model on the machine at hand and prints the overrides that would make a run faster there.

    Returns:
        ``{"steps_per_execution": int, "jit_compile": bool, "mixed_precision_policy": str}``:
        pass the first two to ``model.compile``, the policy to :func:`mixed_precision` (or
        :func:`apply_mixed_precision`) before the model is built.
    """
    info = device if isinstance(device, DeviceInfo) else describe(device)
    if info.kind == "gpu":
        policy = "mixed_float16" if info.fp16 else "float32"
        jit = True
    else:
        policy = "mixed_bfloat16" if info.bf16 else "float32"
        jit = False  # measured: XLA on CPU halves Keras' training throughput
    options = {
        "steps_per_execution": STEPS_PER_EXECUTION,
        "jit_compile": jit,
        "mixed_precision_policy": policy,
    }
    return {**options, **env_overrides()}


def env_overrides() -> dict[str, Any]:
    """The levers the environment fixes, checked (``ENV_OVERRIDES`` names the variables).

    Raises:
        ConfigError: a value that is not a policy name, a positive integer, or a boolean.
    """
    fixed: dict[str, Any] = {}
    for lever, var in ENV_OVERRIDES.items():
        text = os.environ.get(var, "").strip()
        if not text:
            continue
        if lever == "mixed_precision_policy":
            fixed[lever] = check_policy(text, var)
        elif lever == "steps_per_execution":
            if not text.isdigit() or int(text) < 1:
                raise ConfigError(f"{var} must be a positive integer, got {text!r}")
            fixed[lever] = int(text)
        else:
            value = {"1": True, "true": True, "on": True, "0": False, "false": False,
                     "off": False}.get(text.lower())
            if value is None:
                raise ConfigError(f"{var} must be 0 or 1 (true/false), got {text!r}")
            fixed[lever] = value
    return fixed


def check_policy(policy: str, source: str = "policy") -> str:
    """``policy`` itself; :class:`ConfigError` naming ``source`` if it is not a known policy."""
    if policy not in POLICIES:
        raise ConfigError(f"{source} must be one of {', '.join(POLICIES)}, got {policy!r}")
    return policy


def apply_mixed_precision(policy: str) -> str:
    """Set Keras' global dtype policy; returns the policy that was in force before.

    Models built afterwards compute in the policy's dtype. Prefer :func:`mixed_precision`,
    which restores the previous policy.

    Raises:
        ConfigError: an unknown policy name.
    """
    check_policy(policy)
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(policy)
    return previous


@contextlib.contextmanager
def mixed_precision(policy: str) -> Iterator[str]:
    """Context manager: ``policy`` is the global policy inside, the previous one after.

    Build (or load) the model inside the block; it keeps the policy after the block ends,
    because each layer stores its own dtype policy when it is constructed.
    """
    previous = apply_mixed_precision(policy)
    try:
        yield policy
    finally:
        keras.mixed_precision.set_global_policy(previous)


def compiled_sampler(
    model: keras.Model, *, jit_compile: bool | None = None
) -> Callable[..., tf.Tensor]:
    """A traced sampler ``f(num_samples, seed=0, labels=None) -> (n, H, W, C)`` for ``model``.

    Eager ``model.sample`` dispatches every layer from Python; this runs the model's own
    seeded sampler (``model.draw``, the code an export's ``sample`` signature traces too) as
    one graph, XLA compiled where :func:`training_options` enables XLA. One trace per distinct
    ``num_samples``. The draw depends only on ``seed`` (the model's own generator is
    untouched), and equals ``model.sample(n, seed=seed)``.

    Args:
        model: a tf_genai model.
        jit_compile: force XLA on or off; None follows :func:`training_options`.

    Raises:
        ConfigError: ``model`` is not a tf_genai model.
    """
    if capabilities.of(model) is None:
        raise ConfigError(f"compiled_sampler needs a tf_genai model, got {type(model).__name__}")
    if jit_compile is None:
        jit_compile = training_options()["jit_compile"]

    @tf.function(jit_compile=bool(jit_compile), reduce_retracing=True)
    def _run(n, seed, labels):
        return model.draw(n, seed, labels)

    def sample(num_samples: int, seed: int = 0, labels=None) -> tf.Tensor:
        n = int(num_samples)
        if n < 1:
            raise ConfigError(f"num_samples must be >= 1, got {num_samples!r}")
        labels = model.sample_labels(n, labels)  # checked, or cycled 0, 1, ..., K-1
        return _run(n, tf.constant(int(seed), tf.int64), labels)

    return sample
