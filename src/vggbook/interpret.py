"""Looking inside a trained (or untrained) network with gradients: the effective receptive
field (block chapters), Grad-CAM and activation maximisation (chapters "classifier", "training")."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from vggbook.features import _as_batch, check_layer_names

__all__ = ["effective_receptive_field", "effective_rf_size"]


def effective_receptive_field(
    model: keras.Model, x: np.ndarray, layer: str, row: int | None = None, col: int | None = None
) -> np.ndarray:
    """|∂ unit / ∂ input| summed over colour channels, shape (H, W): how much each input pixel
    moves the sum over channels of unit (row, col) of `layer` (default: the centre unit).
    Luo et al. (2016); the block chapters draw it beside the theoretical receptive field."""
    (layer,) = check_layer_names(model, [layer])
    output = model.get_layer(layer).output
    if len(output.shape) != 4:
        raise ValueError(f"layer {layer!r} has no spatial output (shape {output.shape})")
    h, w = output.shape[1:3]
    row = h // 2 if row is None else row
    col = w // 2 if col is None else col
    if not (0 <= row < h and 0 <= col < w):
        raise ValueError(f"unit ({row}, {col}) is outside {layer!r}'s {h}×{w} map")
    probe = keras.Model(model.inputs, output)
    inputs = tf.convert_to_tensor(_as_batch(model, x)[:1])
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        unit = tf.reduce_sum(probe(inputs, training=False)[0, row, col, :])
    return np.abs(tape.gradient(unit, inputs)[0].numpy()).sum(axis=-1)


def effective_rf_size(erf: np.ndarray, centre: tuple[int, int], fraction: float = 0.9) -> int:
    """Side of the smallest square around `centre` (row, col) holding `fraction` of the
    gradient mass of `erf`: the effective receptive field's size in pixels (block chapters)."""
    total = float(erf.sum())
    if total == 0:
        return 0
    r, c = centre
    for half in range(max(erf.shape)):
        window = erf[max(r - half, 0) : r + half + 1, max(c - half, 0) : c + half + 1]
        if window.sum() >= fraction * total:
            return 2 * half + 1
    return 2 * max(erf.shape) + 1
