"""Data sources, validation and the tf.data input pipeline."""
