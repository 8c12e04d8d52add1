"""The Keras internals tf_genai relies on, in one place, each pinned by a test.

tf_genai imports no private Keras module. Two behaviours of Keras' training loop have no
public API, and ``tests/test_keras_adapter.py`` checks both on the installed Keras (the range
``setup.cfg`` allows), so an upgrade that changes them fails there, not in a user's run:

* **Where ``fit`` starts.** ``keras.callbacks.BackupAndRestore`` resumes a run by setting the
  model's ``_initial_epoch`` in ``on_train_begin``; ``fit`` then starts at that epoch
  (``initial_epoch = self._initial_epoch or initial_epoch``). :func:`start_fit_at_epoch` is
  that assignment.
* **The symbolic build under a strategy.** ``fit`` under a ``tf.distribute`` strategy calls
  ``Model._maybe_symbolic_build`` with the first batch before training;
  :class:`tf_genai.models.base.GenerativeModel` overrides it (its models are built at
  construction), because Keras' version fails on a batch split unevenly over replicas.
"""

from __future__ import annotations

from typing import Any


def start_fit_at_epoch(model: Any, epoch: int) -> None:
    """Make the ``fit`` call now starting (from ``on_train_begin``) begin at ``epoch``."""
    model._initial_epoch = int(epoch)


def seed_generator_states(model: Any) -> list[Any]:
    """The state variables of every ``keras.random.SeedGenerator`` in ``model``, in a fixed order.

    Public API only: ``Layer.variables`` is ``weights`` plus the seed generators' states, and a
    Keras weights file holds only the ``weights``.
    """
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights]
