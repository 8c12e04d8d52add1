"""tf_genai.devices: device detection, per-device training options, policy handling, sampling."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import tf_genai
from tf_genai import devices
from tf_genai.devices import DeviceInfo
from tf_genai.errors import ConfigError

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Test CPU
flags\t\t: fpu sse sse2 avx2 avx512f {extra}

processor\t: 1
model name\t: Test CPU
flags\t\t: fpu
"""


@pytest.fixture(autouse=True)
def float32_policy():
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


def _cpuinfo(tmp_path, extra: str) -> str:
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO.format(extra=extra))
    return str(path)


@pytest.mark.parametrize(
    "extra, bf16, amx",
    [("", False, False), ("avx512_bf16", True, False), ("amx_tile amx_bf16", True, True)],
)
def test_cpu_bf16_units_choose_mixed_bfloat16(tmp_path, extra, bf16, amx):
    info = devices.describe("cpu", cpuinfo=_cpuinfo(tmp_path, extra))
    assert (info.kind, info.name, info.bf16, info.amx) == ("cpu", "Test CPU", bf16, amx)
    options = devices.training_options(info)
    assert options == {
        "steps_per_execution": devices.STEPS_PER_EXECUTION,
        "jit_compile": False,
        "mixed_precision_policy": "mixed_bfloat16" if bf16 else "float32",
    }


def test_unreadable_cpuinfo_means_float32(tmp_path):
    info = devices.describe("cpu", cpuinfo=str(tmp_path / "missing"))
    assert info.flags == frozenset() and not info.bf16
    assert devices.training_options(info)["mixed_precision_policy"] == "float32"


@pytest.mark.parametrize("fp16, policy", [(True, "mixed_float16"), (False, "float32")])
def test_gpu_options_use_xla_and_float16_on_tensor_cores(fp16, policy):
    info = DeviceInfo(kind="gpu", name="test gpu", bf16=fp16, fp16=fp16)
    assert devices.training_options(info) == {
        "steps_per_execution": devices.STEPS_PER_EXECUTION,
        "jit_compile": True,
        "mixed_precision_policy": policy,
    }


def test_policy_override_from_the_environment(monkeypatch, tmp_path):
    info = devices.describe("cpu", cpuinfo=_cpuinfo(tmp_path, "avx512_bf16"))
    monkeypatch.setenv("TF_GENAI_POLICY", "float32")
    assert devices.training_options(info)["mixed_precision_policy"] == "float32"
    monkeypatch.setenv("TF_GENAI_POLICY", "half")
    with pytest.raises(ConfigError, match="TF_GENAI_POLICY"):
        devices.training_options(info)


def test_bad_device_and_policy_names_raise_config_error():
    with pytest.raises(ConfigError, match="device"):
        devices.describe("tpu")
    with pytest.raises(ConfigError, match="mixed_bfloat16"):
        devices.apply_mixed_precision("bfloat16")
    assert keras.mixed_precision.global_policy().name == "float32"


def test_apply_returns_the_previous_policy_and_context_restores_it():
    assert devices.apply_mixed_precision("mixed_bfloat16") == "float32"
    with devices.mixed_precision("float32"):
        assert keras.mixed_precision.global_policy().name == "float32"
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"


def test_this_machine_gets_valid_options():
    options = devices.training_options()
    assert options["mixed_precision_policy"] in devices.POLICIES
    assert options["steps_per_execution"] >= 1


@pytest.mark.parametrize("name, kwargs, low", [
    ("vae", dict(image_shape=(8, 8, 1), latent_dim=4, filters=(8, 16), hidden_units=(32,)), 0.0),
    ("dcgan", dict(image_shape=(8, 8, 1), latent_dim=8, base_filters=8), -1.0),
    ("cgan", dict(image_shape=(8, 8, 1), latent_dim=8, base_filters=8), -1.0),
])
def test_compiled_sampler_is_seeded_and_in_range(name, kwargs, low):
    model = tf_genai.create(name, **kwargs)
    sample = devices.compiled_sampler(model)
    a, b, c = sample(6, seed=3), sample(6, seed=3), sample(6, seed=4)
    assert a.shape == (6, 8, 8, 1)
    values = np.asarray(a)
    assert values.min() >= low and values.max() <= 1.0
    np.testing.assert_array_equal(values, np.asarray(b))
    assert not np.allclose(values, np.asarray(c))
    assert sample(3).shape == (3, 8, 8, 1)  # a new size retraces


def test_compiled_sampler_refuses_other_models():
    with pytest.raises(ConfigError, match="needs a tf_genai model"):
        devices.compiled_sampler(keras.Sequential([keras.layers.Dense(1)]))
