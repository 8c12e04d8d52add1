"""The diffusion family: schedules, loss, fit, EMA, save/load, DDIM/DDPM samplers, inversion."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

import tf_genai.models.diffusion  # noqa: F401
from tf_genai import losses, registry
from tf_genai.errors import ConfigError, DataError
from tf_genai.models.diffusion import Diffusion, schedules
from tf_genai.models.diffusion.networks import build_unet

SHAPE = (8, 8, 1)
TINY = dict(image_shape=SHAPE, widths=(8, 16), timesteps=10, sample_steps=5, seed=0)


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, *SHAPE)).astype("float32")


def weights(net: keras.Model) -> list[np.ndarray]:
    return [np.array(w) for w in net.weights]


def randomize_output(model: Diffusion, seed: int = 1) -> None:
    """Give the (zero-initialised) output layers random weights, so the network says something."""
    rng = np.random.default_rng(seed)
    for net in (model.denoiser, model.ema_denoiser):
        layer = net.get_layer(f"{net.name}_output")
        layer.set_weights([rng.normal(0, 0.1, w.shape).astype("float32")
                           for w in layer.get_weights()])


@pytest.fixture(scope="module")
def trained():
    """A tiny ddpm after 2 fit steps, with its weights before training."""
    model = registry.create("ddpm", **TINY)
    model.compile()
    before = weights(model.denoiser), weights(model.ema_denoiser)
    history = model.fit(images(16), batch_size=8, epochs=1, verbose=0)
    return model, before, history


# ------------------------------------------------------------------------------ schedules


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_alpha_bar_is_the_product_of_one_minus_beta(schedule):
    beta = schedules.betas(schedule, 50)
    abar = schedules.alphas_cumprod(beta)
    assert beta.shape == (50,) and np.all(beta > 0) and np.all(beta <= 0.999)
    np.testing.assert_allclose(abar, [np.prod(1 - beta[: t + 1]) for t in range(50)], rtol=1e-12)


def test_linear_schedule_is_ho_et_al_at_t_1000():
    beta = schedules.betas("linear", 1000)
    assert beta[0] == pytest.approx(1e-4) and beta[-1] == pytest.approx(0.02)


def test_cosine_alpha_bar_follows_nichol_dhariwal_eq_17():
    T, s = 100, 0.008
    abar = schedules.alphas_cumprod(schedules.betas("cosine", T))
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 10, 50, 90):  # 0-based t is the paper's step t + 1; unclipped there
        assert abar[t] == pytest.approx(f(t + 1) / f(0), rel=1e-10)
    assert schedules.betas("cosine", T)[-1] == pytest.approx(0.999)  # the clipped last beta


def test_posterior_variance_formula():
    beta = schedules.betas("linear", 20)
    abar = np.cumprod(1 - beta)
    var = schedules.posterior_variance(beta)
    assert var[0] == 0.0
    for t in (1, 7, 19):
        assert var[t] == pytest.approx(beta[t] * (1 - abar[t - 1]) / (1 - abar[t]), rel=1e-12)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_output_to_x0_eps_inverts_the_forward_process(prediction):
    rng = np.random.default_rng(0)
    x0, eps = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    abar = 0.3
    x_t = math.sqrt(abar) * x0 + math.sqrt(1 - abar) * eps
    target = np.array(losses.diffusion_target(prediction, x0, eps, abar), np.float64)
    got_x0, got_eps = schedules.to_x0_eps(prediction, target, x_t, abar)
    np.testing.assert_allclose(np.array(got_x0), x0, atol=1e-5)
    np.testing.assert_allclose(np.array(got_eps), eps, atol=1e-5)


# ------------------------------------------------------------------------------ loss


def test_diffusion_targets_and_mse_by_hand():
    x0 = np.array([[1.0, -1.0]], "float32")  # (1, 2)
    noise = np.array([[0.5, 2.0]], "float32")
    abar = 0.64  # sqrt 0.8, sqrt(1 - abar) 0.6
    np.testing.assert_allclose(losses.diffusion_target("eps", x0, noise, abar), noise)
    np.testing.assert_allclose(losses.diffusion_target("x0", x0, noise, abar), x0)
    np.testing.assert_allclose(losses.diffusion_target("v", x0, noise, abar),
                               [[0.8 * 0.5 - 0.6, 0.8 * 2.0 + 0.6]], rtol=1e-6)
    target = np.array([[[1.0, 2.0]], [[0.0, 0.0]]], "float32")  # (2, 1, 2)
    pred = np.array([[[0.0, 0.0]], [[3.0, 1.0]]], "float32")
    # per example: mean(1, 4) = 2.5 and mean(9, 1) = 5; batch mean 3.75
    assert float(losses.diffusion_mse(target, pred)) == pytest.approx(3.75)
    with pytest.raises(ConfigError):
        losses.diffusion_target("score", x0, noise, abar)


def test_min_snr_weights_by_hand_and_in_x0_units_for_every_prediction():
    abar = np.array([1.0, 0.999, 0.8, 0.5, 0.1, 0.0], "float32")  # SNR inf, 999, 4, 1, 1/9, 0
    snr = np.divide(abar, 1 - abar, out=np.full_like(abar, np.inf), where=abar < 1)
    gamma = 5.0
    capped = np.minimum(snr, gamma)  # what each timestep counts as an x0 error
    eps = np.array(losses.min_snr_weights("eps", abar, gamma))
    np.testing.assert_allclose(eps, [0.0, 5 / 999, 1.0, 1.0, 1.0, 1.0], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(losses.min_snr_weights("x0", abar, gamma), capped, rtol=1e-5)
    np.testing.assert_allclose(losses.min_snr_weights("v", abar, gamma), capped / (snr + 1),
                               rtol=1e-5, atol=1e-7)
    # The same (x0, noise) errors give the same weighted loss whatever the network predicts:
    # an eps error e is an x0 error e / sqrt(SNR), a v error e sqrt(1 + SNR) / sqrt(SNR).
    x0 = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    noise = np.random.default_rng(1).normal(size=(4, 3)).astype("float32")
    a = np.array([0.9, 0.6, 0.3, 0.05], "float32")[:, None]
    x0_hat = x0 + 0.1  # one prediction of x0, expressed in each parametrisation
    eps_hat = (np.sqrt(a) * x0 + np.sqrt(1 - a) * noise - np.sqrt(a) * x0_hat) / np.sqrt(1 - a)
    v_hat = np.sqrt(a) * eps_hat - np.sqrt(1 - a) * x0_hat
    out = {"x0": x0_hat, "eps": eps_hat, "v": v_hat}
    values = [float(losses.diffusion_mse(losses.diffusion_target(p, x0, noise, a), out[p],
                                         losses.min_snr_weights(p, a[:, 0], gamma)))
              for p in ("eps", "x0", "v")]
    np.testing.assert_allclose(values, values[0], rtol=1e-4)
    assert np.isfinite(values).all()
    with pytest.raises(ConfigError):
        losses.min_snr_weights("eps", abar, 0.0)
    with pytest.raises(ConfigError):
        Diffusion(image_shape=SHAPE, widths=(8,), min_snr_gamma=-1.0)


# ------------------------------------------------------------------------------ training


def test_fit_changes_the_denoiser_and_moves_the_ema(trained):
    model, (net_before, ema_before), history = trained
    assert np.isfinite(history.history["loss"]).all()
    changed = [not np.array_equal(b, a) for b, a in zip(net_before, weights(model.denoiser))]
    moved = [not np.array_equal(b, a) for b, a in zip(ema_before, weights(model.ema_denoiser))]
    assert sum(changed) > len(changed) // 2 and sum(moved) > len(moved) // 2
    assert float(model.ema_updates) == 2.0
    assert not model.ema_denoiser.trainable


def test_test_step_reports_the_loss_on_held_out_data(trained):
    model = trained[0]
    result = model.evaluate(images(8, seed=5), batch_size=8, verbose=0, return_dict=True)
    assert set(result) == {"loss"} and np.isfinite(result["loss"]) and result["loss"] > 0


def test_keras_save_load_restores_weights_and_ema_and_fit_continues(trained, tmp_path):
    model = trained[0]
    path = tmp_path / "ddpm.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, Diffusion) and loaded.get_config() == model.get_config()
    for a, b in zip(weights(model.denoiser) + weights(model.ema_denoiser),
                    weights(loaded.denoiser) + weights(loaded.ema_denoiser)):
        np.testing.assert_array_equal(a, b)
    assert float(loaded.ema_updates) == 2.0
    history = loaded.fit(images(8), batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all() and float(loaded.ema_updates) == 3.0


# ------------------------------------------------------------------------------ sampling


def test_sample_is_reproducible_and_in_range(trained):
    model = trained[0]
    a, b = np.array(model.sample(4, seed=1)), np.array(model.sample(4, seed=1))
    assert a.shape == (4, *SHAPE) and np.array_equal(a, b)
    assert a.min() >= -1.0 and a.max() <= 1.0
    assert not np.array_equal(a, np.array(model.sample(4, seed=2)))


def test_ddim_with_all_steps_and_eta_1_is_ddpm_ancestral_sampling():
    model = Diffusion(image_shape=SHAPE, widths=(8,), timesteps=10, sample_steps=10, seed=0)
    randomize_output(model)
    x_T = np.random.default_rng(2).normal(size=(3, *SHAPE)).astype("float32")
    ddim = np.array(model.ddim_sample(x_T, steps=10, eta=1.0, seed=3))
    ddpm = np.array(model.ddpm_sample(x_T, seed=3))
    # Same per-step noise, two algebraically equal update formulas: float32 rounding only.
    np.testing.assert_allclose(ddim, ddpm, atol=1e-5)
    assert not np.allclose(ddim, np.array(model.ddim_sample(x_T, steps=10, eta=0.0)), atol=1e-3)
    assert not np.allclose(ddpm, np.array(model.ddpm_sample(x_T, seed=4)), atol=1e-3)
    fewer = np.array(model.ddim_sample(x_T, steps=3, eta=0.5, seed=3))  # any S <= T
    assert fewer.shape == x_T.shape and np.isfinite(fewer).all()
    with pytest.raises(ConfigError):
        model.ddim_sample(x_T, steps=11)


def test_ddim_inversion_round_trips_when_the_network_predicts_no_noise():
    # The output layer starts at zero, so an untrained eps-network predicts eps = 0 everywhere:
    # each inversion step is then x * sqrt(abar_to / abar_from) and each generation step its
    # exact inverse (x0 stays the image, inside [-1, 1], so the clip is a no-op).
    model = Diffusion(image_shape=SHAPE, widths=(8,), timesteps=10, sample_steps=4, seed=0,
                      prediction="eps")
    x = images(3)
    x_T = model.encode(x)
    assert x_T.shape == x.shape  # the latent of DDIM inversion is x_T itself
    back = np.array(model.ddim_sample(x_T, eta=0.0))
    np.testing.assert_allclose(back, x, atol=1e-5)
    np.testing.assert_allclose(np.array(model.reconstruct(x)), x, atol=1e-5)


def test_encode_then_render_is_deterministic_for_a_trained_model(trained):
    model = trained[0]
    x = images(2, seed=9)
    z1, z2 = model.encode(x), model.encode(x)
    np.testing.assert_array_equal(np.array(z1), np.array(z2))
    r1, r2 = np.array(model.render(z1)), np.array(model.render(z2))
    assert r1.shape == x.shape and np.array_equal(r1, r2)


def test_interpolation_plot_encodes_two_images_and_slerps_their_x_T(trained):
    """plot_interpolation on a diffusion model: DDIM inversion of both images, a slerp between
    the image-shaped x_T (norms kept), all of it rendered in one call; its ends are the
    reconstructions."""
    from tf_genai import plotting

    model = trained[0]
    x = images(2, seed=9)
    z = np.array(model.encode(x))  # (2, H, W, C)
    seen = []
    render = model.render
    model.render = lambda zs, labels=None: seen.append(np.array(zs)) or render(zs, labels)
    try:
        fig = plotting.plot_interpolation(model, x[0], x[1], steps=5, method="slerp")
    finally:
        del model.render
    assert len(seen) == 1 and seen[0].shape == (5, *model.image_shape)
    np.testing.assert_allclose(seen[0][[0, -1]], z, rtol=1e-5, atol=1e-5)
    norms = np.linalg.norm(seen[0].reshape(5, -1), axis=1)
    assert norms.min() > 0.95 * min(np.linalg.norm(z.reshape(2, -1), axis=1))  # no midway dip
    strip = np.asarray(fig.axes[0].images[0].get_array())
    recon = (np.array(model.reconstruct(x)) + 1) / 2
    np.testing.assert_allclose(strip[:, -8:], recon[1, ..., 0], atol=1e-4)


# ------------------------------------------------------------------------------ shapes, cfg


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (32, 32, 3), (30, 26, 2)])
def test_any_image_shape_builds(shape):
    net = build_unet(shape, widths=(8, 16, 16), num_classes=10 if shape[2] == 3 else None,
                     seed=0, dropout=0.1)
    x = np.zeros((2, *shape), "float32")
    inputs = [x, np.array([0, 9], "int32")] + ([np.array([3, 10], "int32")]
                                               if shape[2] == 3 else [])
    assert tuple(net(inputs).shape) == (2, *shape)
    assert len({layer.name for layer in net.layers}) == len(net.layers)


def test_cddpm_guidance_labels_and_conditional_fit(tmp_path):
    model = registry.create("cddpm", image_shape=SHAPE, widths=(8,), timesteps=10,
                            sample_steps=3)
    assert model.num_classes == 10 and model.guidance == 3.0 and model.cond_dropout == 0.1
    model.compile()
    y = np.arange(8, dtype="int32") % 10
    history = model.fit(images(8), y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    randomize_output(model)
    labels = np.array([0, 1, 2, 9], "int32")
    x = np.array(model.sample(4, seed=1, labels=labels))
    assert x.shape == (4, *SHAPE) and np.array_equal(x, np.array(model.sample(4, 1, labels)))
    z = np.array(model.latents(4, seed=1))
    # Ho & Salimans 2022 eq. 6: (1 + w) eps(x, y) - w eps(x, null), null = num_classes.
    t = np.full((4,), 7, "int32")
    cond = np.array(model.ema_denoiser([z, t, labels]))
    uncond = np.array(model.ema_denoiser([z, t, np.full((4,), 10, "int32")]))
    assert not np.allclose(cond, uncond, atol=1e-4)  # the null class is its own embedding
    guided = np.array(model._guided_output(z, 7, labels, 3.0))
    np.testing.assert_allclose(guided, 4.0 * cond - 3.0 * uncond, atol=1e-5)
    with pytest.raises(DataError):
        model.sample(2, seed=1, labels=np.array([0, 10]))
    with pytest.raises(DataError):
        model.render(z[:2], np.array([-1, 3]))
    with pytest.raises(DataError):
        model.fit(images(8), y + 5, batch_size=8, verbose=0)  # labels 5..12: 10+ invalid
    # .keras round trip: the same guided samples, and fit goes on with labels
    model.save(tmp_path / "cddpm.keras")
    loaded = keras.saving.load_model(tmp_path / "cddpm.keras")
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(np.array(loaded.sample(4, seed=1, labels=labels)), x)
    steps = int(loaded.optimizer.iterations.numpy())
    assert steps == int(model.optimizer.iterations.numpy()) >= 1  # the optimizer state came back
    assert np.isfinite(loaded.fit(images(8), y, batch_size=8, epochs=1,
                                  verbose=0).history["loss"]).all()
    assert int(loaded.optimizer.iterations.numpy()) == steps + 1


def test_config_round_trip_and_zoo_entries():
    for name, classes in (("ddpm", None), ("cddpm", 10)):
        entry = registry.entry(name)
        assert entry.cls is Diffusion and entry.family == "diffusion"
        assert entry.defaults.get("num_classes") == classes
    model = Diffusion(image_shape=(30, 26, 2), widths=(8, 16, 16), schedule="linear",
                      prediction="v", eta=0.5, name="d")
    config = model.get_config()
    assert set(config) == {"image_shape", "num_classes", "timesteps", "schedule", "prediction",
                           "widths", "blocks", "attention_levels", "dropout", "patch_size", "ema_decay",
                           "sample_steps", "sampler", "eta", "guidance", "cond_dropout",
                           "min_snr_gamma", "seed", "name"}
    assert Diffusion.from_config(config).get_config() == config
    assert model.latent_shape == (30, 26, 2) and model.latent_dim is None
    assert model.data_range == "symmetric"
    meta = model.export_metadata()
    assert {k: meta[k] for k in ("schedule", "prediction", "timesteps", "sample_steps", "eta",
                                 "sample_defaults", "latent_shape", "latent_dim")} == {
        "schedule": "linear", "prediction": "v", "timesteps": 1000, "sample_steps": 50,
        "eta": 0.5, "sample_defaults": {"steps": 50}, "latent_shape": [30, 26, 2],
        "latent_dim": None}
    for bad in (dict(prediction="score"), dict(schedule="quad"), dict(sample_steps=20,
                                                                      timesteps=10)):
        with pytest.raises(ConfigError):
            Diffusion(image_shape=SHAPE, widths=(8,), **bad)


def test_serving_signatures_add_denoise(trained):
    model = trained[0]
    signatures = model.serving_signatures()
    assert {"generate", "sample", "denoise"} <= set(signatures)
    assert list(signatures["denoise"].inputs) == ["x_t", "t"]
    x = images(2)
    out = signatures["denoise"].fn(x_t=x, t=np.array([0, 9], "int32"))["prediction"]
    expected = model.ema_denoiser([x, np.array([0, 9], "int32")])
    np.testing.assert_allclose(np.array(out), np.array(expected), atol=1e-6)
    assert model.serving_default == "sample"


def test_sampling_options_trajectory_and_export_defaults(tmp_path):
    """sample(**options) reaches the sampler and refuses what a family does not take; the
    trajectory ends at sample's images; an export's sample fills steps/guidance from metadata."""
    from tf_genai import export, plotting, registry

    m = registry.create("cddpm", image_shape=(8, 8, 1), widths=(8,), timesteps=20,
                        sample_steps=5)
    states, timesteps = m.trajectory(3, seed=4, record=4)
    assert np.asarray(states).shape == (3, 4, 8, 8, 1)
    assert timesteps[0] == 20 and timesteps[-1] == 0
    sample = np.asarray(m.sample(3, seed=4))
    np.testing.assert_array_equal(np.asarray(states)[:, -1], sample)
    np.testing.assert_array_equal(  # the option reaches the sampler
        np.asarray(m.sample(3, seed=4, steps=2, eta=1.0)),
        np.asarray(m.ddim_sample(m.latents(3, 4), steps=2, eta=1.0, labels=np.arange(3))))
    for bad in (dict(steps=99), dict(eta=2.0), dict(guidance=-1.0), dict(foo=1)):
        with pytest.raises(ConfigError):
            m.sample(2, seed=0, **bad)
    with pytest.raises(ConfigError, match="no sampling option steps"):
        registry.create("vae", image_shape=(8, 8, 1)).sample(2, steps=3)
    out = export.export_saved_model(m, tmp_path / "e")
    np.testing.assert_allclose(export.sample_from_export(out, 3, 4), sample, atol=1e-4)
    np.testing.assert_allclose(export.sample_from_export(out, 3, 4, steps=3, guidance=1.0),
                               np.asarray(m.sample(3, seed=4, steps=3, guidance=1.0)), atol=1e-4)
    with pytest.raises(ConfigError, match="no input eta"):
        export.sample_from_export(out, 3, 4, eta=0.5)
    with pytest.raises(ConfigError, match="steps must lie"):
        export.sample_from_export(out, 3, 4, steps=500)
    fig = plotting.plot_trajectory(m, n=2, path=tmp_path / "t.png")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()][-1] == "t=0"
    assert (tmp_path / "t.png").stat().st_size > 0


def test_dpm_solver_converges_faster_than_ddim_to_the_same_ode_solution():
    """DPM-Solver++(2M) integrates the ODE DDIM (eta = 0) discretises: at 10 steps it is far
    closer than 10 DDIM steps to the fine DDIM solution (every one of T = 200 timesteps)."""
    model = Diffusion(**{**TINY, "timesteps": 200, "sample_steps": 10})
    randomize_output(model)
    z = model.latents(6, seed=4)
    fine = np.array(model.render(z, steps=200, eta=0.0))
    dpm = np.array(model.render(z, steps=10, sampler="dpmpp_2m"))
    ddim = np.array(model.render(z, steps=10, eta=0.0))
    dpm_error, ddim_error = np.abs(dpm - fine).mean(), np.abs(ddim - fine).mean()
    assert dpm_error < ddim_error / 3, (dpm_error, ddim_error)
    assert dpm.min() >= -1.0 and dpm.max() <= 1.0
    np.testing.assert_array_equal(dpm, np.array(model.sample(6, seed=4, steps=10,
                                                             sampler="dpmpp_2m")))
    with pytest.raises(ConfigError, match="deterministic"):
        model.sample(2, seed=1, sampler="dpmpp_2m", eta=0.5)
    with pytest.raises(ConfigError, match="sampler"):
        model.sample(2, seed=1, sampler="euler")


def test_the_export_samples_with_the_configs_sampler(tmp_path):
    from tf_genai import export

    model = Diffusion(**{**TINY, "sampler": "dpmpp_2m"})
    randomize_output(model)
    export_dir = export.export_saved_model(model, tmp_path / "export")
    assert export.read_metadata(export_dir)["sampler"] == "dpmpp_2m"
    np.testing.assert_allclose(export.sample_from_export(export_dir, 3, seed=2, steps=4),
                               np.array(model.sample(3, seed=2, steps=4)), atol=1e-5)
