"""tf_genai.autotune: levers chosen by a timed probe of the real train step, cached per machine
and config, overridable, recorded in run.json and reused on --resume and under --deterministic."""

from __future__ import annotations

import json
import statistics
import time
import types

import keras
import numpy as np
import pytest

from tf_genai import autotune, cli, devices
from tf_genai.devices import DeviceInfo
from tf_genai.errors import ConfigError
from tf_genai.training import train

# A CPU with bf16 units: both float32 and mixed_bfloat16 are candidates (on a CPU without them
# oneDNN emulates bf16: slower, but it runs, so the probe itself is tested on any machine).
BF16_CPU = DeviceInfo(kind="cpu", name="Test CPU", bf16=True, fp16=False,
                      flags=frozenset({"avx2", "avx512f", "avx512_bf16"}), cores=2)
CONFIG = {"model": "mlp_vae", "kwargs": {"image_shape": (8, 8, 1), "seed": 0},
          "batch_size": 64, "strategy": "default", "replicas": 1}


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Each test its own autotune cache and no lever fixed by the caller's environment."""
    monkeypatch.setenv("TF_GENAI_CACHE", str(tmp_path / "cache"))
    for var in [*devices.ENV_OVERRIDES.values(), autotune.AUTOTUNE_ENV]:
        monkeypatch.delenv(var, raising=False)
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


def _run_json(out) -> dict:
    return json.loads((out / "run.json").read_text())["training_options"]


def test_pick_moves_only_for_a_clear_gain():
    assert autotune.pick(10.0, []) is None
    assert autotune.pick(10.0, [9.6, 9.7]) is None  # 4 % faster: inside the margin, kept
    assert autotune.pick(10.0, [9.6, 9.0]) == 1  # 10 % faster: taken
    assert autotune.pick(10.0, [12.0]) is None  # slower: never taken
    assert autotune.pick(10.0, [9.0], margin=0.2) is None


def test_paired_times_cancel_a_slow_round_and_ignore_earlier_stages():
    # The incumbent is timed in this stage only; a round where the machine is twice as slow
    # for both sides leaves the challenger's ratio at 0.98: no move.
    current_s, (challenger_s,) = autotune.paired_times([10.0, 20.0, 10.0], [[9.8, 19.6, 9.8]])
    assert current_s == 10.0 and challenger_s == pytest.approx(9.8)
    assert autotune.pick(current_s, [challenger_s]) is None
    # Unpaired medians of windows from different stretches of time would have moved it: an
    # incumbent timed earlier in a slow spell (20, 20, 20) against the same challenger.
    assert autotune.pick(statistics.median([20.0, 20.0, 20.0, 10.0, 20.0, 10.0]),
                         [statistics.median([9.8, 19.6, 9.8])]) == 0
    # A real gain in every round is taken.
    current_s, times = autotune.paired_times([10.0, 12.0, 10.0], [[9.0, 10.8, 9.1], [10.0] * 3])
    assert times[0] == pytest.approx(9.0) and autotune.pick(current_s, times) == 0


def test_environment_fixes_levers_and_bad_values_fail_before_anything_is_written(
        tmp_path, monkeypatch):
    monkeypatch.setenv("TF_GENAI_STEPS_PER_EXECUTION", "4")
    monkeypatch.setenv("TF_GENAI_JIT_COMPILE", "off")
    assert devices.env_overrides() == {"steps_per_execution": 4, "jit_compile": False}
    options = devices.training_options(BF16_CPU)
    assert options["steps_per_execution"] == 4 and options["jit_compile"] is False
    tuner = autotune.Tuner(CONFIG, device=BF16_CPU)
    assert set(tuner.fixed) == {"steps_per_execution", "jit_compile"}

    for var, bad, words in [("TF_GENAI_STEPS_PER_EXECUTION", "0", "positive integer"),
                            ("TF_GENAI_JIT_COMPILE", "maybe", "0 or 1"),
                            ("TF_GENAI_POLICY", "float8", "mixed_bfloat16")]:
        monkeypatch.setenv(var, bad)
        with pytest.raises(ConfigError, match=var) as err:
            train("mlp_vae", "digits", epochs=1, out_dir=tmp_path / "run", verbose=0)
        assert words in str(err.value)
        assert not (tmp_path / "run").exists()
        monkeypatch.delenv(var)
    monkeypatch.setenv(autotune.AUTOTUNE_ENV, "sometimes")
    with pytest.raises(ConfigError, match="autotune must be one of"):
        train("mlp_vae", "digits", epochs=1, out_dir=tmp_path / "run", verbose=0)
    assert not (tmp_path / "run").exists()


def test_plan_rules_without_a_probe(tmp_path):
    off = autotune.Tuner(CONFIG, mode="off", device=BF16_CPU)
    assert (off.decision.source, off.probe_needed) == ("flags", False)
    assert off.decision.options == devices.training_options(BF16_CPU)
    worker = autotune.Tuner(CONFIG, multiworker=True, device=BF16_CPU)
    assert worker.decision.source == "flags" and "multi-worker" in worker.decision.reason
    fresh = autotune.Tuner(CONFIG, device=BF16_CPU)
    assert fresh.probe_needed and fresh.policy == "mixed_bfloat16"

    det = autotune.Tuner(CONFIG, deterministic=True, device=BF16_CPU)
    assert det.decision.source == "flags" and not det.probe_needed
    float32 = {**devices.training_options(BF16_CPU), "mixed_precision_policy": "float32"}
    autotune.write_cache(fresh.key, {"probed": True, "options": float32, "when": "today"})
    for tuner in (autotune.Tuner(CONFIG, deterministic=True, device=BF16_CPU),
                  autotune.Tuner(CONFIG, device=BF16_CPU)):
        assert (tuner.decision.source, tuner.policy, tuner.probe_needed) == (
            "cache", "float32", False)
    assert autotune.Tuner(CONFIG, mode="retune", device=BF16_CPU).probe_needed
    # Another config or another machine is another entry.
    other = {**CONFIG, "batch_size": 128}
    assert autotune.Tuner(other, device=BF16_CPU).probe_needed
    amx = DeviceInfo(**{**BF16_CPU.__dict__, "amx": True,
                        "flags": BF16_CPU.flags | {"amx_tile", "amx_bf16"}})
    assert autotune.Tuner(CONFIG, device=amx).key != fresh.key

    resume = tmp_path / "autotune.json"
    autotune.write_resume_file(resume, autotune.Tuner(CONFIG, mode="off",
                                                      device=BF16_CPU).decision)
    saved = json.loads(resume.read_text())["options"]
    saved["mixed_precision_policy"] = "float32"
    resume.write_text(json.dumps({"options": saved}))
    resumed = autotune.Tuner(CONFIG, mode="retune", resume_file=resume, device=BF16_CPU)
    assert (resumed.decision.source, resumed.policy, resumed.probe_needed) == (
        "resume", "float32", False)


def _settle(tuner, steps_per_epoch=12, remaining_steps=100_000, built=None, model="mlp_vae"):
    """Settle ``tuner`` on ``model``/digits the way training.train does; ``built`` collects
    each model built, by id, with its variables' values when it was built."""
    from tf_genai import data
    from tf_genai.distribute import get_strategy
    from tf_genai.training import _build, _compile, epoch_dataset

    dist = get_strategy(None)
    kwargs = CONFIG["kwargs"]

    def build(policy):
        net = _build(model, kwargs, dist, policy)
        if built is not None:
            built[id(net)] = [v.numpy() for v in net.variables]
        return net

    net = build(tuner.policy)
    images, _ = data.load("digits")
    ds, _ = epoch_dataset(images[:steps_per_epoch * 64], batch_size=64, scale=net.data_range,
                          seed=0, epochs=2)
    return tuner.settle(
        net, build=build,
        compile=lambda n, o, spe=None: _compile(n, dist, o, steps_per_epoch, None, 0.0, spe=spe),
        train_ds=ds, steps_per_epoch=steps_per_epoch, remaining_steps=remaining_steps)


def test_probe_times_candidates_caches_and_leaves_the_model_untouched(monkeypatch):
    monkeypatch.setenv("TF_GENAI_JIT_COMPILE", "0")  # XLA's compile would take most of the time
    tuner = autotune.Tuner(CONFIG, mode="retune", device=BF16_CPU)
    built = {}
    net, options, decision = _settle(tuner, built=built)
    assert decision.source == "probe" and decision.probe_s > 0
    policies = {m["options"]["mixed_precision_policy"] for m in decision.measured}
    assert policies == {"float32", "mixed_bfloat16"}
    assert all(m["ms_per_step"] > 0 for m in decision.measured)
    assert options == decision.options and options["jit_compile"] is False
    spe_rows = [s for s in decision.skipped if s["options"]["steps_per_execution"] == 64]
    assert spe_rows and "steps_per_epoch" in spe_rows[0]["why"]  # 12 steps: 12 at most
    # The model trains with what was chosen, and from where it started: its weights and
    # random-generator states as built (the probe trained it), its optimizer at step 0.
    assert len(built) >= 2
    first_dense = next(layer for layer in net.encoder.layers if hasattr(layer, "kernel"))
    assert first_dense.dtype_policy.name == options["mixed_precision_policy"]
    for variable, value in zip(net.variables, built[id(net)]):
        np.testing.assert_array_equal(variable.numpy(), value, err_msg=variable.path)
    assert int(net.optimizer.iterations.numpy()) == 0
    moments = [v for v in net.optimizer.variables if v.path.endswith(("momentum", "velocity"))]
    assert moments and all(not np.any(v.numpy()) for v in moments)
    assert net.steps_per_execution == 12
    # Cached: the next auto (and deterministic) run of this config takes it without timing.
    again = autotune.Tuner(CONFIG, device=BF16_CPU)
    assert again.decision.source == "cache" and again.decision.options == options
    line = decision.summary()
    assert line.startswith("autotune: ") and "probe" in line and "flag choice" in line


@pytest.mark.parametrize("float32_windows, moved, rounds", [
    ([0.009] * 3 + [0.0105] * 3, False, 6),  # 10 % faster, then not: noise, not taken
    ([0.009] * 6, True, 6),  # 10 % faster in the stage and in the confirmation: taken
    ([0.007] * 3, True, 3),  # 1.43x: a clear gain, taken without confirmation rounds
])
def test_a_lever_moves_only_when_its_gain_is_confirmed(monkeypatch, float32_windows, moved,
                                                       rounds):
    """The probe's decision rule on scripted timings (the real builds and traces, fake clock):
    mixed_bfloat16, the flag choice, times 10 ms a step throughout."""
    monkeypatch.setenv("TF_GENAI_JIT_COMPILE", "0")
    script = {"mixed_bfloat16": iter([0.010] * 20), "float32": iter(float32_windows)}

    def window(cand, probe_ds):
        cand.windows.append(next(script[cand.options["mixed_precision_policy"]]))

    monkeypatch.setattr(autotune.Tuner, "_window", staticmethod(window))
    _, options, decision = _settle(autotune.Tuner(CONFIG, mode="retune", device=BF16_CPU))
    assert options["mixed_precision_policy"] == ("float32" if moved else "mixed_bfloat16")
    row = next(m for m in decision.measured if m["options"]["mixed_precision_policy"] == "float32")
    assert row["rounds"] == rounds
    assert next(script["float32"], None) is None  # every scripted window was used
    if moved:
        assert decision.speedup == pytest.approx(0.010 / float32_windows[0], abs=1e-3)


def _fake_clock(monkeypatch, step_s):
    """Script the probe's clock: builds and traces take no time on it, each timed window
    advances it by ``WINDOW_S`` and measures ``step_s(options)`` seconds per step. Returns the
    list of the options of every window timed."""
    now = [0.0]
    monkeypatch.setattr(autotune, "time", types.SimpleNamespace(
        perf_counter=lambda: now[0], strftime=time.strftime))
    timed = []

    def window(cand, probe_ds):
        now[0] += autotune.WINDOW_S
        timed.append(cand.options)
        cand.windows.append(step_s(cand.options))

    monkeypatch.setattr(autotune.Tuner, "_window", staticmethod(window))
    return timed


def test_levers_the_budget_left_out_are_probed_by_the_next_run_of_the_config(monkeypatch):
    """A run whose budget covers the policy alone leaves float32 weight gradients pending; the
    next run of the config starts from the cached choice and probes them (and takes them: 1.43x
    on the scripted clock); the one after that reuses the cache and times nothing. Real builds
    and traces of the conv VAE, scripted step times."""
    monkeypatch.setenv("TF_GENAI_JIT_COMPILE", "0")
    config = {**CONFIG, "model": "vae"}
    timed = _fake_clock(monkeypatch, lambda o: 0.014 if o["mixed_precision_policy"] == "float32"
                        else 0.007 if o["float32_weight_gradients"] else 0.010)
    # 4,000 steps of 10 ms: a budget of 1.2 s, a stage of two candidates costs 0.72-1.02 s.
    tuner = autotune.Tuner(config, device=BF16_CPU)
    _, options, first = _settle(tuner, model="vae", remaining_steps=4000)
    assert first.source == "probe" and first.reason == "the flag choice measured fastest"
    assert options == devices.training_options(BF16_CPU)
    assert first.pending == ["float32_weight_gradients"]
    assert "left to a later run: float32 weight gradients" in first.summary()
    assert {o["float32_weight_gradients"] for o in timed} == {False}
    entry = autotune.read_cache(tuner.key)
    assert entry["pending"] == ["float32_weight_gradients"] and entry["cost_s"] > 0

    # --deterministic takes the choice so far and times nothing; so does a run too short for
    # the pending lever's predicted cost (from the cache: nothing is timed to know it).
    det = autotune.Tuner(config, deterministic=True, device=BF16_CPU)
    assert (det.decision.source, det.probe_needed, det.decision.pending) == (
        "cache", False, ["float32_weight_gradients"])
    timed.clear()
    _, _, short = _settle(autotune.Tuner(config, device=BF16_CPU), model="vae",
                          remaining_steps=100)
    assert timed == [] and short.source == "cache"
    assert short.pending == ["float32_weight_gradients"]

    _, options, second = _settle(autotune.Tuner(config, device=BF16_CPU), model="vae",
                                 remaining_steps=4000)
    assert {o["mixed_precision_policy"] for o in timed} == {"mixed_bfloat16"}  # policy: done
    assert second.source == "probe" and options["float32_weight_gradients"] is True
    assert second.reason == "measured faster: float32 weight gradients on"
    assert second.pending == [] and second.speedup == pytest.approx(0.010 / 0.007, abs=1e-3)
    policies = {m["options"]["mixed_precision_policy"] for m in second.measured}
    assert policies == {"float32", "mixed_bfloat16"}  # the first run's rows are kept

    timed.clear()
    _, options, third = _settle(autotune.Tuner(config, device=BF16_CPU), model="vae",
                                remaining_steps=4000)
    assert timed == [] and third.source == "cache" and third.pending == []
    assert options["float32_weight_gradients"] is True


def test_a_short_run_keeps_the_flags_and_the_next_one_does_not_time_again():
    tuner = autotune.Tuner(CONFIG, device=BF16_CPU)
    net, options, decision = _settle(tuner, remaining_steps=200)
    assert decision.source == "flags" and "too short" in decision.reason
    assert options == devices.training_options(BF16_CPU)
    assert len(decision.measured) == 1 and decision.measured[0]["ms_per_step"] > 0
    assert any(s["why"].startswith("budget") for s in decision.skipped)
    entry = autotune.read_cache(tuner.key)
    assert entry["probed"] is False and entry["step_s"] > 0
    again = autotune.Tuner(CONFIG, device=BF16_CPU)
    _, _, second = _settle(again, remaining_steps=200)
    assert "too short" in second.reason and second.measured == [] and second.probe_s == 0


def test_train_records_the_choice_and_resume_reuses_it(tmp_path, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setenv("TF_GENAI_POLICY", "float32")
    train("mlp_vae", "digits", epochs=1, out_dir=out, verbose=0)
    first = _run_json(out)
    assert first["mixed_precision_policy"] == "float32"
    assert first["autotune"]["fixed"] == {"mixed_precision_policy": "float32"}
    assert json.loads((out / "backup" / autotune.RESUME_FILE).read_text())["options"] == {
        k: first[k] for k in autotune.LEVERS}
    monkeypatch.delenv("TF_GENAI_POLICY")
    train("mlp_vae", "digits", epochs=2, out_dir=out, resume=True, verbose=0)
    second = _run_json(out)
    assert second["autotune"]["source"] == "resume"
    assert second["mixed_precision_policy"] == "float32"


def test_cli_prints_the_choice_in_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "mlp_vae", "--epochs", "1", "--no-autotune", "--out",
                     str(out)]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("autotune:")]
    assert len(lines) == 1 and "autotune off" in lines[0]
    assert _run_json(out)["autotune"]["source"] == "flags"
    with pytest.raises(SystemExit):  # one or the other
        cli.build_parser().parse_args(["train", "vae", "--out", "x", "--retune",
                                       "--no-autotune"])


def test_describe_names_the_machine_it_saw():
    info = devices.describe("cpu")
    line = info.summary()
    assert line.startswith("cpu: ") and info.name in line and f"{info.cores} core" in line
    assert ("AMX" in line) and (info.cores >= 1)
    fp = info.fingerprint()
    assert fp["name"] == info.name and fp["cores"] == info.cores
    assert set(fp["flags"]) <= devices.FINGERPRINT_FLAGS and fp["tensorflow"]
