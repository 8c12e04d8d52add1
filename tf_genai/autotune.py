"""Training levers chosen by measurement: a short, bounded, timed probe of the real train step.

:func:`tf_genai.devices.training_options` picks the speed levers from CPU flags and GPU
compute capability, tuned on the machines we measured. Another CPU can disagree: on a 2-core
AMD Zen 4 (``avx512_bf16``) the default VAE on the 8x8 digits ran 6.7 ms a step in float32 and
7.1 ms in ``mixed_bfloat16``, the flags' choice; the DCGAN on MNIST 127 ms and 85 ms. So
:func:`tf_genai.training.train` hands the choice to a :class:`Tuner`:

1. **Fixed choices first.** A lever the environment sets (``TF_GENAI_POLICY``,
   ``TF_GENAI_FLOAT32_WEIGHT_GRADIENTS``, ``TF_GENAI_FUSED_LAYERS``,
   ``TF_GENAI_STEPS_PER_EXECUTION``, ``TF_GENAI_JIT_COMPILE``) is never probed. ``--resume``
   reuses the levers the run started with (``backup/autotune.json``). ``--no-autotune``
   (``autotune="off"``, or ``TF_GENAI_AUTOTUNE=0``) keeps the flag choice. Multi-worker runs keep
   it too: every worker must build the same model, and each would time its own machine.
   ``--deterministic`` never probes (timings are noise): it takes this machine's cached choice for
   the same model config, else the flag choice, so reruns pick the same levers.
2. **The cache.** A probe's result is kept in ``$TF_GENAI_CACHE/autotune.json`` (default
   ``~/.cache/tf_genai``), keyed by the machine fingerprint (:meth:`DeviceInfo.fingerprint`: CPU
   or GPU name, kernel-relevant flags, cores, TensorFlow and Keras versions) and the model config
   (zoo name, constructor arguments, batch size, strategy and replicas). A later run of the same
   config on the same machine reuses it at no cost (and probes what it left pending: 5);
   ``--retune`` measures again.
3. **The probe.** Levers are probed one at a time, from the flag choice, in the order of their
   likely gain: the precision policy (CPU: float32 and ``mixed_bfloat16``, the latter only where
   the CPU has bf16 units, since oneDNN emulates it elsewhere; GPU: ``mixed_float16``, float32,
   ``mixed_bfloat16`` where compute capability >= 8), float32 weight gradients for the
   convolutions (CPU, under ``mixed_bfloat16``, for a model with :class:`tf_genai.layers.Conv2D`
   or ``Conv2DTranspose`` layers: :func:`tf_genai.layers.conv2d_float32_weight_gradients`;
   oneDNN's bf16 backward-weights kernels ran at 3-12 % of the AMX bf16 peak at the zoo's
   layer shapes; on a 2-core Zen 4 they ran 0.80-1.18x as fast as float32 ones and the lever
   made the zoo steps 3-6 % slower, so the flags leave it off), the fused layers
   (``fused_layers``: :class:`tf_genai.layers.FusedBatchNormalization`'s fused kernel and
   :class:`~tf_genai.layers.FastDropout`'s 16-bit mask against Keras' batch norm and a float32
   uniform per element, for a model that has such layers; the flags keep them on), XLA
   (``jit_compile``), then
   ``steps_per_execution`` (x4, only for steps short enough, < 10 ms, for the per-execution
   Python round trip to matter). Each candidate is a model built with the run's own arguments
   (same seed, hence the same initial weights), compiled as the run compiles it, and trained by
   Keras' own ``fit`` on one real batch of the run's data, repeated; after a warm-up execution
   (the trace), the candidates are timed in interleaved windows, ``ROUNDS`` of them each.
   A lever changes only when a candidate is at least ``MARGIN`` (5 %) faster than the current
   choice over the stage's rounds, paired by round (:func:`paired_times`), and still is after
   as many rounds again (the confirmation; skipped for a gain of ``CLEAR_GAIN``, 1.25x, or
   more; a gain the budget leaves no time to confirm is not taken), so noise cannot make the
   choice slower than the flags'. The model
   that wins is the run's model: its weights and random-generator states are put back to what
   they were before the probe, and it is compiled afresh, so the probe leaves no trace in the
   training itself.
4. **The budget.** The probe spends at most ``BUDGET_FRACTION`` (3 %) of the run's predicted
   training time (remaining steps x the measured step), and stops adding candidates when the
   next one's predicted cost (its build, a trace as long as the first one's -- four times as long
   for XLA on a CPU -- and its windows) would cross it. A run too short for even one candidate
   keeps the flag choice after timing the baseline alone, and remembers that step time, so the
   next run of the config decides without timing anything. The default ``tf-genai train vae``
   run (about 18 s of training on a 2-core Zen 4) is such a run. ``--retune`` allows at least
   ``RETUNE_BUDGET_S`` seconds. (At 4 % the probe used its whole budget once the fused-layer
   candidate came in, and a default ``tf-genai train dcgan`` on MNIST on a 2-core Zen 4 cost
   +3.5 to +5.2 % per ABBA pair of whole CLI runs, +9.1 % in one pair with the machine's speed
   drifting, against the issue's 5 % target: ``benchmarks/results/autotune_cost_zen4_*.md``;
   in one library run the probe was 8.2 of the 9 extra seconds, and the training that followed
   ran as fast as without it, 218.8 against 219.9 s.)
5. **Pending levers.** A lever whose candidates the budget left out (or whose gain it left no
   time to confirm) is *pending*: the cache keeps it with the choice so far, and the next run of
   the config in ``auto`` mode starts from that choice and probes the pending levers, within its
   own 3 % budget (a run too short for the next one's predicted cost times nothing). So a
   default ``tf-genai train dcgan`` on MNIST, whose budget covers the precision policy alone,
   leaves float32 weight gradients, the fused layers and XLA to the runs after it, one run's
   budget at a time, instead of never probing them; each run costs at most its own share.
   ``--deterministic`` uses the choice so far and probes nothing; ``--retune`` starts again
   from the flag choice. Pending levers are named in the printed line and in ``run.json``.

What was chosen, why, what each candidate measured and what the probe cost go into ``run.json``
(``training_options.autotune``) and into one printed line (:meth:`Decision.summary`).

XLA on CPU is probed late and rarely fits the budget (its compile alone took 5 s for the
digits VAE, whose step it made slower).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import statistics
import time
import warnings
from pathlib import Path
from typing import Any, Callable

from tf_genai.errors import ConfigError

MODES = ("auto", "off", "retune")
AUTOTUNE_ENV = "TF_GENAI_AUTOTUNE"
LEVERS = ("mixed_precision_policy", "float32_weight_gradients", "fused_layers", "jit_compile",
          "steps_per_execution")
# Levers added after runs were saved: a resume file without one gets this value (what those
# runs trained with).
LEVER_DEFAULTS = {"float32_weight_gradients": False, "fused_layers": True}
BUDGET_FRACTION = 0.03
RETUNE_BUDGET_S = 60.0
MARGIN = 0.05
CLEAR_GAIN = 1.25  # a measured gain this large is taken without confirmation rounds
ROUNDS = 3
WINDOW_S = 0.1  # the least time a timed window runs; shorter windows are timer noise
SPE_STEP_LIMIT_S = 0.010  # steps longer than this: the per-execution round trip is < 1 %
XLA_TRACE_FACTOR = 4.0
CACHE_FILE = "autotune.json"
RESUME_FILE = "autotune.json"  # in the run's backup folder
CACHE_VERSION = 4  # 2: the float32_weight_gradients lever; 3: fused_layers; 4: pending levers


def resolve_mode(mode: str | None) -> str:
    """``mode``, or ``TF_GENAI_AUTOTUNE`` (``0``/``off``/``false`` -> ``"off"``), else ``"auto"``.

    Raises:
        ConfigError: an unknown mode.
    """
    if mode is None:
        text = os.environ.get(AUTOTUNE_ENV, "").strip().lower()
        mode = {"": "auto", "0": "off", "false": "off", "no": "off", "1": "auto",
                "true": "auto"}.get(text, text)
    if mode not in MODES:
        raise ConfigError(f"autotune must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def cache_path() -> Path:
    from tf_genai.evaluation.features import cache_root

    return cache_root() / CACHE_FILE


def config_key(fingerprint: dict[str, Any], config: dict[str, Any]) -> str:
    """A stable hash of the machine fingerprint and the model config."""
    text = json.dumps({"machine": fingerprint, "config": config}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        warnings.warn(f"ignoring unreadable autotune file {str(path)!r}: {err}", stacklevel=3)
        return None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` whole or not at all (``outputs.write_bytes``)."""
    from tf_genai.outputs import write_bytes

    write_bytes(path, json.dumps(data, indent=2, default=str).encode())


def read_cache(key: str) -> dict[str, Any] | None:
    data = _read_json(cache_path()) or {}
    if data.get("version") != CACHE_VERSION:
        return None
    entry = data.get("entries", {}).get(key)
    return entry if isinstance(entry, dict) else None


def write_cache(key: str, entry: dict[str, Any]) -> None:
    """Add ``entry`` under ``key``; a cache that cannot be written only costs a later probe."""
    path = cache_path()
    try:
        data = _read_json(path) or {}
        if data.get("version") != CACHE_VERSION:
            data = {"version": CACHE_VERSION, "entries": {}}
        data.setdefault("entries", {})[key] = entry
        _write_json(path, data)
    except OSError as err:
        warnings.warn(f"could not write the autotune cache {str(path)!r}: {err}", stacklevel=2)


@dataclasses.dataclass
class Decision:
    """What the tuner chose and why (``run.json``'s ``training_options.autotune``).

    Attributes:
        options: the levers the run trains with.
        source: ``"probe"``, ``"cache"``, ``"flags"`` (the flag choice kept: off, too short a
            run, multi-worker, deterministic without a cached choice), ``"resume"``.
        reason: one sentence.
        flags: the flag-based choice (with the environment's overrides).
        fixed: the levers the environment fixed.
        measured: ``{"options", "ms_per_step", "trace_s"}`` per probed candidate.
        skipped: ``{"options", "why"}`` per candidate left out.
        speedup: the flag choice's time per step over the chosen one's (measured by the
            probes of this config on this machine, this run's and the cached ones).
        probe_s: seconds the probe spent (0 without one).
        device: :meth:`DeviceInfo.summary` of the machine.
        pending: the levers no probe has decided yet for lack of budget, in probe order; a
            later run of the config that is long enough probes them (module docstring, 5).
    """

    options: dict[str, Any]
    source: str
    reason: str
    flags: dict[str, Any]
    fixed: dict[str, Any] = dataclasses.field(default_factory=dict)
    measured: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    skipped: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    speedup: float | None = None
    probe_s: float = 0.0
    device: str = ""
    pending: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        """One line for ``tf-genai train``: the choice, where it came from, gain and cost."""
        o = self.options
        what = (f"{o['mixed_precision_policy']}, steps_per_execution "
                f"{o['steps_per_execution']}, XLA {'on' if o['jit_compile'] else 'off'}")
        if o.get("float32_weight_gradients"):
            what += ", float32 weight gradients"
        if not o.get("fused_layers", True):
            what += ", unfused layers"
        line = f"autotune: {what} ({self.source}: {self.reason}"
        if self.speedup is not None:
            line += f"; {self.speedup:.2f}x the flag choice's step"
        if self.probe_s:
            line += f"; probe {self.probe_s:.1f} s"
        if self.pending:
            line += "; left to a later run: " + ", ".join(LEVER_NAMES[k] for k in self.pending)
        return line + ")"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


LEVER_NAMES = {"mixed_precision_policy": "precision policy",
               "float32_weight_gradients": "float32 weight gradients",
               "fused_layers": "fused layers", "jit_compile": "XLA",
               "steps_per_execution": "steps per execution"}


def _lever_text(options: dict[str, Any], lever: str) -> str:
    value = options[lever]
    if lever == "jit_compile":
        return f"XLA {'on' if value else 'off'}"
    if lever == "steps_per_execution":
        return f"steps_per_execution {value}"
    if lever == "float32_weight_gradients":
        return f"float32 weight gradients {'on' if value else 'off'}"
    if lever == "fused_layers":
        return f"fused layers {'on' if value else 'off'}"
    return str(value)


def _Clock():
    """A Keras callback timing each execution (``steps_per_execution`` steps), begin to end."""
    import keras

    class Clock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.durations = []

        def on_train_batch_begin(self, batch, logs=None):
            self._begin = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.durations.append(time.perf_counter() - self._begin)

    return Clock()


@dataclasses.dataclass
class _Candidate:
    options: dict[str, Any]
    net: Any
    snapshot: list[tuple[Any, Any]]
    spe: int  # the effective steps per execution it is compiled with
    trace_s: float = 0.0
    windows: list[float] = dataclasses.field(default_factory=list)  # seconds per step

    @property
    def step_s(self) -> float:
        return statistics.median(self.windows)


def _snapshot(net) -> list[tuple[Any, Any]]:
    """Every variable of ``net`` (weights, random-generator states) and of its optimizers
    (slots, step counts, loss scale) with its value now."""
    from tf_genai.checkpointing import model_optimizers

    variables, seen = [], set()
    for v in [*net.variables, *(w for opt, _ in model_optimizers(net) for w in opt.variables)]:
        if id(v) not in seen:
            seen.add(id(v))
            variables.append(v)
    return [(v, v.numpy()) for v in variables]


def _restore(snapshot) -> None:
    for variable, value in snapshot:
        variable.assign(value)


class Tuner:
    """Chooses a run's speed levers; see the module docstring for the rules.

    Args:
        config: the model config the choice is for (zoo name, constructor arguments, batch
            size, strategy): the cache key together with the machine fingerprint.
        mode: ``"auto"``, ``"off"``, ``"retune"``, or None (``TF_GENAI_AUTOTUNE``, else auto).
        deterministic: never probe; use the cached choice or the flag choice.
        multiworker: keep the flag choice (every worker must agree).
        resume_file: the run's ``backup/autotune.json``; when it exists its levers are reused.
        device: a :class:`tf_genai.devices.DeviceInfo` (default: ``devices.describe()``).

    Raises:
        ConfigError: a bad mode or environment override (before anything is built).
    """

    def __init__(self, config: dict[str, Any], *, mode: str | None = None,
                 deterministic: bool = False, multiworker: bool = False,
                 resume_file: Path | None = None, device: Any = None) -> None:
        from tf_genai import devices

        self.mode = resolve_mode(mode)
        self.info = device if device is not None else devices.describe()
        self.fixed = devices.env_overrides()
        self.flags = devices.training_options(self.info)
        self.key = config_key(self.info.fingerprint(), config)
        self.deterministic = deterministic
        self.probe_needed = False
        self._time_budget: float | None = None
        self._conv_layers = 0  # the model's layers the float32_weight_gradients lever applies to
        self._fused_layers = 0  # the model's layers the fused_layers lever changes
        self._cached_cost: tuple[float, float] | None = None  # (step_s, probe cost_s)
        self._continued: dict[str, Any] | None = None  # a cached probe with pending levers
        self.decision = self._plan(multiworker, resume_file)

    @property
    def policy(self) -> str:
        """The policy to build the run's first model with."""
        return self.decision.options["mixed_precision_policy"]

    def _decide(self, options, source, reason, **extra) -> Decision:
        return Decision(options={**options, **self.fixed} if source != "resume" else options,
                        source=source, reason=reason, flags=dict(self.flags),
                        fixed=dict(self.fixed), device=self.info.summary(), **extra)

    def _plan(self, multiworker: bool, resume_file: Path | None) -> Decision:
        if resume_file is not None and resume_file.is_file():
            saved = _read_json(resume_file)
            if saved and isinstance(saved.get("options"), dict):
                options = {k: saved["options"].get(k, LEVER_DEFAULTS.get(k)) for k in LEVERS}
                if all(v is not None for v in options.values()):
                    return self._decide(options, "resume", "the levers this run started with")
        if self.mode == "off":
            return self._decide(self.flags, "flags", "autotune off")
        if multiworker:
            return self._decide(self.flags, "flags",
                                "multi-worker: every worker keeps the same flag choice")
        if len(self.fixed) == len(LEVERS):
            return self._decide(self.flags, "flags", "every lever set by the environment")
        cached = None if self.mode == "retune" else read_cache(self.key)
        if cached and cached.get("probed"):
            pending = [k for k in LEVERS if k in cached.get("pending", ()) and k not in self.fixed]
            decision = self._decide(
                cached["options"], "cache",
                f"measured on this machine {cached.get('when', '')}".strip(),
                speedup=cached.get("speedup"), pending=pending)
            if pending and not self.deterministic:  # this run may probe what is left
                self._continued = cached
                self._cached_cost = _cost(cached)
                self.probe_needed = True
            return decision
        if self.deterministic:
            return self._decide(self.flags, "flags",
                                "--deterministic never probes and no cached choice exists")
        self._cached_cost = _cost(cached) if cached else None
        self.probe_needed = True
        return self._decide(self.flags, "flags", "not probed yet")

    # ------------------------------------------------------------------------------ the probe
    def settle(self, net, *, build: Callable[[str], Any],
               compile: Callable[..., int], train_ds, steps_per_epoch: int,
               remaining_steps: int, time_budget: float | None = None
               ) -> tuple[Any, dict[str, Any], Decision]:
        """The run's model, compiled with the chosen levers, and the decision.

        Args:
            net: the model built under :attr:`policy`.
            build: ``build(policy) -> model``: a fresh model with the run's arguments.
            compile: ``compile(model, options, spe=None) -> steps_per_execution used``: the
                run's own compile (``spe`` forces the steps per execution of a probe).
            train_ds: the run's training dataset (the probe repeats its first batch).
            steps_per_epoch: the run's (the steps per execution divide it).
            remaining_steps: the optimizer steps the run will take.
            time_budget: the run's time budget in seconds, if it has one: the training time
                the probe's budget is a share of is then at most that.
        """
        from tf_genai.training import largest_divisor

        self._time_budget = time_budget
        self._final_spe = lambda options: largest_divisor(
            steps_per_epoch, options["steps_per_execution"])
        if not self.probe_needed:
            compile(net, self.decision.options)
            return net, self.decision.options, self.decision
        if self._cached_cost is not None and self._budget(
                self._cached_cost[0], remaining_steps) < self._cached_cost[1]:
            step_s, _ = self._cached_cost
            if self._continued is None:  # else: the cached choice, its pending levers listed
                self.decision.reason = self._too_short(step_s, remaining_steps)
            compile(net, self.decision.options)
            return net, self.decision.options, self.decision
        return self._probe(net, build, compile, train_ds.take(1).cache().repeat(),
                           remaining_steps)

    def _training_s(self, step_s: float, remaining_steps: int) -> float:
        """The run's predicted training seconds (at most its time budget)."""
        seconds = remaining_steps * step_s
        return seconds if self._time_budget is None else min(seconds, self._time_budget)

    def _budget(self, step_s: float, remaining_steps: int) -> float:
        budget = BUDGET_FRACTION * self._training_s(step_s, remaining_steps)
        return max(budget, RETUNE_BUDGET_S) if self.mode == "retune" else budget

    def _probe(self, net, build, compile, probe_ds, remaining_steps):
        from tf_genai.layers import fused_layers, weight_gradient_layers

        start = time.perf_counter()
        self._conv_layers = len(weight_gradient_layers(net))
        self._fused_layers = len(fused_layers(net))
        # The starting point: the flag choice, or a cached probe's choice whose pending levers
        # this run probes. Compiled as the run will be: if it stays, the run keeps its trace.
        flags = dict(self.decision.options)
        continued = self._continued or {}
        levers = [k for k in LEVERS if k not in self.fixed and (
            not continued or k in self.decision.pending)]
        base = self._candidate(net, flags, compile, probe_ds, spe=None)
        shared_trace = base.trace_s
        self._window(base, probe_ds)
        step_s = base.step_s
        budget = self._budget(step_s, remaining_steps)
        # Long executions make long windows: heavier models are compared at fewer steps per
        # execution (the per-step cost is the same; the round trip per execution is < 1 % there).
        probe_spe = base.spe if base.spe * step_s <= 2 * WINDOW_S else max(
            1, min(base.spe - 1, int(WINDOW_S / step_s)))
        window_s = max(WINDOW_S, probe_spe * step_s)
        ref = base if probe_spe == base.spe else None  # the flag choice at probe_spe
        best = ref
        measured = {json.dumps(m["options"], sort_keys=True): m
                    for m in continued.get("measured", [])}  # earlier runs' rows, then ours
        skipped, pending = [], []
        timed = False  # whether a candidate was timed in this run
        build_s = 0.3  # replaced by the first build's measured time
        # The flag choice's time per step over the choice's, stage by stage (and run by run).
        gain = float(continued.get("speedup") or 1.0)
        first_cost = None  # predicted cost of the first candidate the budget left out
        for lever in levers:
            current = (best or base).options
            stage = []
            for options, why_not in self._alternates(lever, current, step_s):
                if why_not:
                    skipped.append({"options": options, "why": why_not})
                    continue
                xla = options["jit_compile"] and self.info.kind == "cpu"
                cost = build_s + shared_trace * (XLA_TRACE_FACTOR if xla else 1.0) + \
                    2 * ROUNDS * window_s
                if ref is None:  # the flag choice must be timed at probe_spe too
                    cost += build_s + shared_trace + ROUNDS * window_s
                spent = time.perf_counter() - start - shared_trace
                if spent + cost > budget:
                    first_cost = cost if first_cost is None else first_cost
                    pending += [lever] if lever not in pending else []
                    skipped.append({"options": options, "why": (
                        f"budget: {cost:.1f} s more predicted, {max(0.0, budget - spent):.1f} s "
                        f"left of {budget:.1f} s ({BUDGET_FRACTION:.0%} of the predicted "
                        f"{self._training_s(step_s, remaining_steps):.0f} s of training)")})
                    continue
                if ref is None:
                    ref = best = self._candidate(build(flags["mixed_precision_policy"]), flags,
                                                 compile, probe_ds, spe=probe_spe)
                t = time.perf_counter()
                cand_net = build(options["mixed_precision_policy"])
                build_s = time.perf_counter() - t
                spe = None if lever == "steps_per_execution" else probe_spe
                stage.append(self._candidate(cand_net, options, compile, probe_ds, spe=spe))
            if not stage:
                continue
            timed = True
            stage.insert(0, best)
            earlier = len(best.windows)  # the incumbent's windows from earlier stages
            for _ in range(ROUNDS):
                for cand in stage:
                    self._window(cand, probe_ds)
            current_s, challengers_s = paired_times(
                best.windows[earlier:], [c.windows for c in stage[1:]])
            for cand, cand_s in zip(stage, [current_s, *challengers_s]):
                measured[json.dumps(cand.options, sort_keys=True)] = {
                    "options": cand.options, "ms_per_step": round(cand_s * 1e3, 3),
                    "trace_s": round(cand.trace_s, 2), "rounds": ROUNDS}
            winner = pick(current_s, challengers_s)
            if winner is None:
                continue
            # A lever moves only when the gain holds over as many rounds again: one stage's
            # three short windows a side put the same two candidates 0.92-1.12x apart on a
            # 2-core Zen 4 (benchmarks/autotune_repeat.py). A gain beyond CLEAR_GAIN (bf16
            # against float32: 1.4-1.6x there) is not noise and is taken at once.
            challenger = stage[1 + winner]
            if current_s / challengers_s[winner] >= CLEAR_GAIN:
                best = challenger
                gain *= current_s / challengers_s[winner]
                continue
            spent = time.perf_counter() - start - shared_trace
            if spent + 2 * ROUNDS * window_s > budget:
                if first_cost is None:  # a later run times the whole stage again
                    first_cost = build_s + shared_trace + 2 * ROUNDS * window_s
                pending += [lever] if lever not in pending else []
                skipped.append({"options": challenger.options, "why": (
                    f"budget: measured {current_s / challengers_s[winner]:.2f}x faster, no "
                    f"time left to confirm it ({max(0.0, budget - spent):.1f} s of "
                    f"{budget:.1f} s)")})
                continue
            for _ in range(ROUNDS):
                self._window(best, probe_ds)
                self._window(challenger, probe_ds)
            current_s, (challenger_s,) = paired_times(best.windows[earlier:],
                                                      [challenger.windows])
            for cand, cand_s in ((best, current_s), (challenger, challenger_s)):
                measured[json.dumps(cand.options, sort_keys=True)].update(
                    ms_per_step=round(cand_s * 1e3, 3), rounds=2 * ROUNDS)
            if pick(current_s, [challenger_s]) is not None:
                best = challenger
                gain *= current_s / challenger_s
        if best is None or best is ref:
            best = base  # the flag choice, compiled for the run
        probe_s = round(time.perf_counter() - start - shared_trace, 2)
        if not timed and continued:
            # The cached choice stays; what the budget left out stays pending. The step time
            # and the next candidate's cost let a later run decide without timing.
            self.decision.skipped, self.decision.probe_s = skipped, probe_s
            self.decision.pending = pending
            write_cache(self.key, {**continued, "pending": pending, "step_s": step_s,
                                   "cost_s": first_cost})
        elif not timed:
            self.decision.reason = (self._too_short(step_s, remaining_steps) if skipped
                                    else "no other candidate on this device")
            self.decision.skipped, self.decision.probe_s = skipped, probe_s
            self.decision.measured = [{"options": flags, "ms_per_step": round(step_s * 1e3, 3),
                                       "trace_s": round(base.trace_s, 2)}]
            if first_cost is not None:  # the next run of this config decides without timing
                write_cache(self.key, {"probed": False, "options": flags, "step_s": step_s,
                                       "cost_s": first_cost, "when": _now()})
        else:
            speedup = round(gain, 3)
            flag_choice = {**self.flags, **self.fixed}
            changed = [_lever_text(best.options, k) for k in LEVERS
                       if best.options[k] != flag_choice[k]]
            self.decision = self._decide(
                best.options, "probe",
                ("measured faster: " + ", ".join(changed)) if changed
                else "the flag choice measured fastest",
                measured=list(measured.values()), skipped=skipped, speedup=speedup,
                probe_s=probe_s, pending=pending)
            write_cache(self.key, {"probed": True, "options": best.options, "speedup": speedup,
                                   "when": _now(), "measured": list(measured.values()),
                                   "pending": pending, "step_s": step_s, "cost_s": first_cost})
        # The winner is the run's model, as it was before the probe. Compiled as the run
        # compiles it, it keeps its trace; otherwise it is compiled afresh (new optimizers).
        _restore(best.snapshot)
        if best.spe != self._final_spe(best.options):
            compile(best.net, best.options)
        return best.net, best.options, self.decision

    @staticmethod
    def _too_short(step_s: float, remaining_steps: int) -> str:
        return (f"kept: {remaining_steps} steps of {step_s * 1e3:.1f} ms are too short a run "
                f"for a probe to cost < {BUDGET_FRACTION:.0%} (--retune measures anyway)")

    def _alternates(self, lever: str, current: dict[str, Any], step_s: float):
        """``(options, why_not)`` for each alternative value of ``lever`` from ``current``."""
        out = []
        if lever == "mixed_precision_policy":
            if self.info.kind == "gpu":
                values = ["mixed_float16"] * self.info.fp16 + ["float32"] + \
                    ["mixed_bfloat16"] * self.info.bf16
            else:
                values = ["float32"] + ["mixed_bfloat16"] * self.info.bf16
            out = [({**current, lever: v}, None) for v in values if v != current[lever]]
        elif lever == "float32_weight_gradients":
            # Only where it can change anything and was looked into: the model's own
            # convolutions under bf16 on a CPU (on GPUs it is not measured, so not offered).
            if (self.info.kind == "cpu" and current["mixed_precision_policy"] == "mixed_bfloat16"
                    and self._conv_layers):
                out = [({**current, lever: not current[lever]}, None)]
        elif lever == "fused_layers":
            if self._fused_layers:  # a model without such layers would time the same step
                out = [({**current, lever: not current[lever]}, None)]
        elif lever == "jit_compile":
            out = [({**current, lever: not current[lever]}, None)]
        else:
            options = {**current, lever: current[lever] * 4}
            why = None
            if self._final_spe(options) == self._final_spe(current):
                why = "steps_per_epoch allows no more steps per execution"
            elif step_s >= SPE_STEP_LIMIT_S:
                why = f"steps of {step_s * 1e3:.0f} ms: one round trip per execution is < 1 %"
            out = [(options, why)]
        return out

    def _candidate(self, net, options, compile, probe_ds, *, spe) -> _Candidate:
        """``net`` compiled with ``options`` (at ``spe`` steps per execution if given), its
        state kept, and traced by one execution."""
        spe = compile(net, options, spe=spe)
        cand = _Candidate(options=options, net=net, snapshot=_snapshot(net), spe=spe)
        clock = _Clock()
        net.fit(probe_ds, epochs=1, steps_per_epoch=spe, verbose=0, callbacks=[clock],
                shuffle=False)
        cand.trace_s = clock.durations[0]
        return cand

    @staticmethod
    def _window(cand: _Candidate, probe_ds) -> None:
        """Time enough executions for ``WINDOW_S`` seconds (each from its batch begin to end)."""
        per_execution = cand.windows[-1] * cand.spe if cand.windows else WINDOW_S
        executions = max(1, math.ceil(WINDOW_S / max(per_execution, 1e-6)))
        clock = _Clock()
        cand.net.fit(probe_ds, epochs=1, steps_per_epoch=executions * cand.spe, verbose=0,
                     callbacks=[clock], shuffle=False)
        cand.windows.append(sum(clock.durations) / (len(clock.durations) * cand.spe))


def paired_times(current: list[float], challengers: list[list[float]]
                 ) -> tuple[float, list[float]]:
    """Seconds per step of a stage's incumbent and challengers, from windows timed in
    interleaved rounds (``current[r]`` and each ``challengers[i][r]`` in round ``r``).

    The incumbent's is the median of its windows in this stage only, the ones timed between
    the challengers' (the machine's speed drifts from one stage to the next). A challenger's is
    that median times the median of its per-round ratios to the incumbent, so a slow spell that
    hits one round hits both sides of its ratio.
    """
    current_s = statistics.median(current)
    return current_s, [current_s * statistics.median([c / i for c, i in zip(windows, current)])
                       for windows in challengers]


def pick(current_s: float, candidate_s: list[float], margin: float = MARGIN) -> int | None:
    """The index of the fastest candidate if it beats ``current_s`` (seconds per step) by at
    least ``margin``; else None: the current choice stays (a tie or noise never moves it)."""
    if not candidate_s:
        return None
    i = min(range(len(candidate_s)), key=candidate_s.__getitem__)
    return i if candidate_s[i] < current_s * (1 - margin) else None


def _cost(entry: dict[str, Any]) -> tuple[float, float] | None:
    """A cache entry's ``(step_s, cost_s)``: the step time it measured and the predicted cost
    of the first candidate its probe's budget left out (None if it has not both)."""
    if entry.get("step_s") and entry.get("cost_s"):
        return float(entry["step_s"]), float(entry["cost_s"])
    return None


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z")


def write_resume_file(path: Path, decision: Decision) -> None:
    """Keep ``decision`` in the run's backup folder, for ``--resume``."""
    _write_json(path, {"options": decision.options, "source": decision.source})
