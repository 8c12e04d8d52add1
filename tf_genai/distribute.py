"""tf.distribute strategies by name, logical CPU devices, and replica-count-independent noise.

``training.train(strategy=...)`` builds and compiles its model inside the scope of
:func:`get_strategy`'s strategy; Keras 3's ``fit`` then distributes the dataset and runs
``train_step`` once per replica. Three things make a multi-replica run equal a single-device run
on the same global batches:

1. Each replica's batch-mean loss is weighted by its share of the global batch
   (:func:`replica_weight`, local / global batch size): Keras 3 optimizers *sum* gradients over
   replicas, and the weighted sum is then the global batch's mean even when a batch splits
   unevenly (dividing by the replica count is not: 8 + 7 images weighted 1/2 each).
2. Random draws inside ``train_step`` (reparameterisation noise, latent codes, WGAN-GP's
   interpolation weights) are drawn for the *global* batch and each replica takes its own
   slice (:func:`random_for_batch`). A plain ``keras.random.normal((local_batch, d), seed=gen)``
   gives every replica the same numbers (each holds an identical copy of the seed state), and
   numbers that differ from a single-device draw of shape ``(global_batch, d)``.
3. Batch statistics (BatchNormalization) are synchronised over replicas
   (``BatchNormalization(synchronized=True)``); otherwise each replica normalises its own slice.

This module depends on nothing else of ours but :mod:`tf_genai.errors`, so models may use it.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Sequence

import keras
import tensorflow as tf

from tf_genai.errors import ConfigError

STRATEGIES = ("default", "mirrored", "multiworker")
_MULTIWORKER: dict[str, tf.distribute.Strategy] = {}  # TF_CONFIG -> its strategy


def get_strategy(name: str | None = None) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy called ``name``.

    Args:
        name: ``None`` or ``"default"``: the current strategy (the no-op default one outside any
            scope); ``"mirrored"``: one replica per local GPU, or per logical CPU device when
            there is no GPU (see :func:`split_cpu`); ``"multiworker"``:
            ``MultiWorkerMirroredStrategy`` over the cluster that the ``TF_CONFIG`` environment
            variable describes.

    Returns:
        The strategy; build and compile the model inside ``strategy.scope()``.

    Raises:
        ConfigError: an unknown name, or ``"multiworker"`` without a valid ``TF_CONFIG``.
    """
    if name is None or name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = local_devices()
        cross_device_ops = None
        if not tf.config.list_logical_devices("GPU"):
            # On CPU devices the default (collective) all-reduce can launch a GAN's two
            # optimizers' reductions in a different order on each replica and abort with
            # "Shape mismatch in the collective instance"; reducing on one device cannot.
            cross_device_ops = tf.distribute.ReductionToOneDevice()
        return tf.distribute.MirroredStrategy(devices=devices, cross_device_ops=cross_device_ops)
    if name == "multiworker":
        text = os.environ.get("TF_CONFIG")
        check_tf_config(text)
        # One per process: a second MultiWorkerMirroredStrategy reuses the first one's collective
        # instance keys, and the workers' collectives then abort ("Collective instance 100
        # expected ... data_type").
        if text not in _MULTIWORKER:
            # RING collectives work on CPUs and GPUs alike (NCCL would need GPUs).
            options = tf.distribute.experimental.CommunicationOptions(
                implementation=tf.distribute.experimental.CommunicationImplementation.RING)
            _MULTIWORKER[text] = tf.distribute.MultiWorkerMirroredStrategy(
                communication_options=options)
        return _MULTIWORKER[text]
    raise ConfigError(
        f"unknown distribution strategy {name!r}; choose one of: {', '.join(STRATEGIES)}"
    )


def is_multiworker(strategy: tf.distribute.Strategy) -> bool:
    """Whether ``strategy`` spans several workers (each with its own process and machine)."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def local_devices() -> list[str]:
    """The logical devices a mirrored strategy should use: every GPU, else every CPU device.

    ``MirroredStrategy()`` without arguments uses only ``/CPU:0`` on a machine without GPUs, even
    when the CPU was split into several logical devices; naming them gives one replica each.
    """
    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


def check_tf_config(text: str | None) -> dict[str, Any]:
    """Parse and check a ``TF_CONFIG`` value for a multi-worker run.

    Args:
        text: the JSON in the ``TF_CONFIG`` environment variable, e.g.
            ``{"cluster": {"worker": ["host1:port", "host2:port"]},
            "task": {"type": "worker", "index": 0}}``.

    Returns:
        The parsed configuration.

    Raises:
        ConfigError: missing, not JSON, or without a worker list and a task that is in it.
    """
    source = "environment variable TF_CONFIG"
    if not text:
        raise ConfigError(
            f"strategy 'multiworker' needs the {source}: JSON naming the cluster and this task, "
            'e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}'
        )
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{source} is not valid JSON: {err}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{source} must be a JSON object, got {type(config).__name__}")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise ConfigError(f"{source} has no 'cluster' object listing the workers")
    for role, addresses in cluster.items():
        if (not isinstance(addresses, list) or not addresses
                or not all(isinstance(a, str) and ":" in a for a in addresses)):
            raise ConfigError(
                f"{source}: cluster[{role!r}] must be a non-empty list of 'host:port' strings, "
                f"got {addresses!r}"
            )
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ConfigError(f"{source} has no 'task' object with a 'type' and an 'index'")
    role, index = task["type"], task["index"]
    if role not in cluster:
        raise ConfigError(
            f"{source}: task type {role!r} is not in the cluster ({', '.join(cluster)})")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[role]):
        raise ConfigError(
            f"{source}: task index {index!r} is out of range for {len(cluster[role])} {role}(s)"
        )
    return config


def split_cpu(num_devices: int) -> list[str]:
    """Split the first physical CPU into ``num_devices`` logical devices (one replica each).

    This must run before TensorFlow initialises its devices, that is before the first op, tensor,
    variable, dataset or strategy is created in the process (importing TensorFlow is fine). Tests
    therefore run distributed training in a fresh subprocess that calls this first.

    Args:
        num_devices: how many logical CPU devices to create (>= 1).

    Returns:
        The logical CPU device names, e.g. ``["/device:CPU:0", "/device:CPU:1"]``.

    Raises:
        ConfigError: ``num_devices`` < 1, or the devices are already initialised with a
            different layout.
    """
    if isinstance(num_devices, bool) or not isinstance(num_devices, int) or num_devices < 1:
        raise ConfigError(f"num_devices must be a positive integer, got {num_devices!r}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)]
        )
    except RuntimeError as err:  # "Virtual devices cannot be modified after being initialized"
        current = tf.config.list_logical_devices("CPU")
        if len(current) != num_devices:
            raise ConfigError(
                f"cannot split the CPU into {num_devices} logical devices: TensorFlow already "
                f"initialised {len(current)}; call split_cpu before any TensorFlow op ({err})"
            ) from None
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def random_for_batch(
    sampler: Callable[..., Any],
    shape: Sequence[Any],
    *,
    batch_axis: int = 0,
    **kwargs: Any,
) -> Any:
    """Draw ``sampler(shape)`` so that the numbers do not depend on the number of replicas.

    Outside a multi-replica ``train_step`` this is just ``sampler(shape, **kwargs)``. Inside one,
    it draws for the whole global batch (every replica holds the same seed state, so all draw
    the same global tensor) and returns this replica's slice along ``batch_axis``, so a run on N
    replicas sees exactly the noise a single-device run sees on the same global batch. Works
    with uneven per-replica batches: the offsets come from an all-gather of the local sizes.

    Args:
        sampler: a ``keras.random`` function taking a shape, e.g. ``keras.random.normal``.
        shape: the per-replica shape; ``shape[batch_axis]`` is the local batch size (an int or
            a scalar tensor).
        batch_axis: which axis of ``shape`` is the batch axis.
        **kwargs: passed to ``sampler`` (``seed=``, ``mean=``, ``minval=``, ...).

    Returns:
        A tensor of shape ``shape``.
    """
    strategy = tf.distribute.get_strategy()
    context = tf.distribute.get_replica_context()
    if context is None or strategy.num_replicas_in_sync == 1:
        return sampler(tuple(shape), **kwargs)
    local = tf.cast(shape[batch_axis], tf.int32)
    sizes = context.all_gather(tf.reshape(local, (1,)), axis=0)  # (replicas,)
    replica = context.replica_id_in_sync_group
    offset = tf.reduce_sum(sizes[:replica])
    total = tf.reduce_sum(sizes)
    full_shape = list(shape)
    full_shape[batch_axis] = total
    full = sampler(tuple(full_shape), **kwargs)  # the global batch's draw, same on every replica
    begin = [0] * len(full_shape)
    begin[batch_axis] = offset
    size = [-1] * len(full_shape)
    size[batch_axis] = local
    return tf.slice(full, tf.stack(begin), tf.stack(size))


def replica_weight(local_batch: Any) -> Any:
    """This replica's share of the global batch, ``local / global`` (1.0 outside a strategy).

    Multiply a replica's batch-mean loss by it before ``tape.gradient``: the optimizer sums the
    replicas' gradients, so the sum is the gradient of the global batch's mean loss, for even
    and uneven splits alike (the last batch of an epoch, or a data set smaller than a batch).
    """
    context = tf.distribute.get_replica_context()
    if context is None or tf.distribute.get_strategy().num_replicas_in_sync == 1:
        return 1.0
    local = tf.cast(local_batch, tf.float32)
    return local / context.all_reduce(tf.distribute.ReduceOp.SUM, local)


def scalar_logs_for_multiworker(model: Any) -> None:
    """Work around Keras 3's multi-worker log reduction failing on scalar metrics.

    Under ``MultiWorkerMirroredStrategy`` Keras 3 reduces every ``train_step``/``test_step``
    output with ``strategy.reduce("MEAN", value, axis=0)``, which fails on the scalar metric
    values every model returns ("Invalid reduction dimension 0 for input with 0 dimensions";
    tensorflow/tensorflow#72388). Returning each value with a leading axis of one makes that
    reduction the mean over replicas, a scalar again. Call it on the model after ``compile``;
    other strategies do not need it.
    """
    for name in ("train_step", "test_step"):
        step = getattr(model, name)

        def with_axis(data, step=step):
            logs = step(data)
            return {key: keras.ops.reshape(value, (1,)) for key, value in logs.items()}

        setattr(model, name, with_axis)
