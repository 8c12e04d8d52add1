"""plot_history from a dict, a keras History and a history.json file."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from tf_genai import plotting
from tf_genai.errors import DataError

HISTORY = {
    "loss": [120.0, 100.0, 95.0],
    "reconstruction_loss": [110.0, 90.0, 84.0],
    "kl_loss": [10.0, 10.0, 11.0],
    "val_loss": [118.0, 101.0, 99.0],
}


def lines_by_axes(fig):
    return {ax.get_title(): [list(map(float, line.get_ydata())) for line in ax.lines]
            for ax in fig.axes}


def test_one_axes_per_metric_group(tmp_path, png):
    fig = plotting.plot_history(HISTORY, path=tmp_path / "h.png")
    assert len(fig.axes) == 3
    lines = lines_by_axes(fig)
    assert list(lines) == ["loss", "reconstruction_loss", "kl_loss"]  # loss first
    assert len(lines["loss"]) == 2  # train and validation on the same axes
    np.testing.assert_array_equal(lines["loss"][1], HISTORY["val_loss"])
    assert len(lines["kl_loss"]) == 1
    assert png(tmp_path / "h.png").shape[1] > 300


def test_keras_history_and_json_file(tmp_path):
    history = keras.callbacks.History()
    history.history = {"d_loss": [1.0, 0.8], "g_loss": [2.0, 1.5], "val_d_loss": [1.1, 0.9]}
    fig = plotting.plot_history(history)
    assert len(fig.axes) == 2
    path = tmp_path / "history.json"
    path.write_text(json.dumps({"history": history.history}))
    assert lines_by_axes(plotting.plot_history(path)) == lines_by_axes(fig)
    path.write_text(json.dumps(HISTORY))
    assert len(plotting.plot_history(str(path), ncols=2).axes) == 3


def test_gan_loss_parts_share_their_loss_axes():
    history = {"d_loss": [1.0, 0.9], "d_loss_fake": [0.4, 0.5], "d_loss_real": [0.6, 0.4],
               "g_loss": [2.0, 1.8], "gp": [0.1, 0.05], "val_d_loss": [1.1, 1.0]}
    groups = plotting.history.metric_groups(history)
    assert groups == {"d_loss": ["d_loss", "val_d_loss", "d_loss_fake", "d_loss_real"],
                      "g_loss": ["g_loss"], "gp": ["gp"]}
    fig = plotting.plot_history(history)
    assert [ax.get_title() for ax in fig.axes] == ["d_loss", "g_loss", "gp"]
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["d_loss", "val_d_loss", "d_loss_fake", "d_loss_real"]


def test_bad_history(tmp_path):
    with pytest.raises(DataError, match="not found"):
        plotting.plot_history(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="JSON"):
        plotting.plot_history(tmp_path / "bad.json")
    with pytest.raises(DataError, match="no numeric"):
        plotting.plot_history({"loss": []})


def test_epoch_ticks_are_whole_numbers():
    one = plotting.plot_history({"loss": [3.0], "val_loss": [4.0]})
    assert list(one.axes[0].get_xticks()) == [1.0]
    many = plotting.plot_history({"loss": list(np.linspace(5, 1, 40))})
    ticks = [t for t in many.axes[0].get_xticks() if 1 <= t <= 40]
    assert ticks and all(float(t).is_integer() for t in ticks)
