"""Models that are not VGG16, for the tests of the helper on "the reader's own model" (chapter "your_model").

- `resnet50()`: `keras.applications.ResNet50(weights=None)` (random weights, no download), built once per test
  session (about 3 s), with its maps of the cat photo (`resnet50_maps()`).
- `slim_resnet_v1_50(size)`: ResNet-50 v1 laid out as TF-Slim's `resnet_v1_50` (tensorflow/models,
  research/slim/nets/resnet_v1.py and resnet_utils.py), the network whose receptive fields Araujo et al. (2019)
  published: the stride of each block sits in the 3×3 convolution of its LAST unit, `conv2d_same` pads
  explicitly before a strided convolution and lets TensorFlow's "same" pad a stride-1 one, and `pool1` is a 3×3/2
  max-pool with "same" padding. Channels are 1/16 of the real ones: a receptive field does not depend on them.
- `small_residual()`: a small Functional network with ResNet's parts: a zero-padded 7×7/2 "valid" stem, a
  zero-padded 3×3/2 pool, a block whose 1×1 stride-2 shortcut convolution meets the main path in an Add, a block
  with an identity shortcut, a 3×3/2 "same" convolution on an even map, a 3×3/2 "same" average pool on an odd one.
- `reached(model, names, line_rows)`: the receptive fields MEASURED, independently of `vggbook.layer_table`:
  with every kernel positive, every bias zero and every batch norm the identity, a unit is positive exactly when
  a positive input pixel lies in its receptive field, so a one-pixel-high line of ones at row p lights up
  exactly the rows of units whose field holds row p.
"""

from __future__ import annotations

import functools

import keras
import numpy as np

import vggbook

layers = keras.layers


@functools.cache
def resnet50() -> keras.Model:
    """ResNet50 with its head, seeded random weights, 224×224 input: 177 layers, 53 convolutions."""
    keras.utils.set_random_seed(0)
    return keras.applications.ResNet50(weights=None)


@functools.cache
def resnet50_maps() -> dict[str, np.ndarray]:
    """`vggbook.feature_maps(resnet50(), preprocess(cat))`: every convolution's map and the pool."""
    return vggbook.feature_maps(resnet50(), vggbook.preprocess(vggbook.sample_image("chelsea")))


def _conv2d_same(x, filters: int, kernel: int, stride: int, name: str):
    """TF-Slim's resnet_utils.conv2d_same: stride 1 → "same"; else pad (k - 1) // 2 before and the rest after,
    then "valid"."""
    if stride == 1:
        return layers.Conv2D(filters, kernel, padding="same", name=name)(x)
    total = kernel - 1
    x = layers.ZeroPadding2D(((total // 2, total - total // 2),) * 2, name=f"{name}_pad")(x)
    return layers.Conv2D(filters, kernel, strides=stride, padding="valid", name=name)(x)


def slim_resnet_v1_50(size: int, width: float = 1 / 16) -> keras.Model:
    """TF-Slim's resnet_v1_50 without its head (see the module's docstring); block outputs named `block1` … `block4`,
    as Araujo et al.'s table names its end-points."""
    inputs = keras.Input((size, size, 3))
    x = _conv2d_same(inputs, max(1, round(64 * width)), 7, 2, "conv1")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    # resnet_v1_50: (base depth, units, stride of the block's last unit)
    for b, (depth, units, stride) in enumerate(((64, 3, 2), (128, 4, 2), (256, 6, 2), (512, 3, 1)), start=1):
        bottleneck, out = max(1, round(depth * width)), max(1, round(4 * depth * width))
        for u in range(1, units + 1):
            s = stride if u == units else 1
            name = f"block{b}_unit{u}"
            if x.shape[-1] == out:  # resnet_utils.subsample: a 1×1 max-pool of stride s
                shortcut = x if s == 1 else layers.MaxPooling2D(1, strides=s, name=f"{name}_shortcut")(x)
            else:
                shortcut = layers.Conv2D(out, 1, strides=s, name=f"{name}_shortcut")(x)
            r = layers.Conv2D(bottleneck, 1, activation="relu", name=f"{name}_conv1")(x)
            r = layers.ReLU(name=f"{name}_relu2")(_conv2d_same(r, bottleneck, 3, s, f"{name}_conv2"))
            r = layers.Conv2D(out, 1, name=f"{name}_conv3")(r)
            x = layers.ReLU(name=f"block{b}" if u == units else f"{name}_out")(layers.Add()([shortcut, r]))
    return keras.Model(inputs, x, name="slim_resnet_v1_50")


def small_residual(size: int = 176, classes: int = 4) -> keras.Model:
    """A small classifier with ResNet's parts (see the module's docstring)."""
    inputs = keras.Input((size, size, 3))
    x = layers.ZeroPadding2D(3, name="stem_pad")(inputs)
    # 16 stem channels, not 8: with 8, TensorFlow 2.20 and 2.21 (oneDNN) abort on an AVX2 CPU (AMD EPYC) when
    # they compute the kernel gradient of the 1×1 stride-2 shortcut below on its even 44×44 map, which every
    # gradient through this network does (Grad-CAM's tape records the whole forward pass).
    x = layers.Conv2D(16, 7, strides=2, name="stem_conv")(x)
    x = layers.Activation("relu", name="stem_relu")(layers.BatchNormalization(name="stem_bn")(x))
    x = layers.MaxPooling2D(3, strides=2, name="stem_pool")(layers.ZeroPadding2D(1, name="pool_pad")(x))
    shortcut = layers.BatchNormalization(name="a_0_bn")(layers.Conv2D(16, 1, strides=2, name="a_0_conv")(x))
    r = layers.ReLU(name="a_1_relu")(layers.Conv2D(8, 1, strides=2, name="a_1_conv")(x))
    r = layers.Conv2D(8, 3, padding="same", activation="relu", name="a_2_conv")(r)
    r = layers.BatchNormalization(name="a_3_bn")(layers.Conv2D(16, 1, name="a_3_conv")(r))
    x = layers.ReLU(name="a_out")(layers.Add(name="a_add")([shortcut, r]))
    r = layers.Conv2D(16, 3, padding="same", activation="relu", name="b_1_conv")(x)
    x = layers.ReLU(name="b_out")(layers.Add(name="b_add")([x, r]))
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="down_conv")(x)  # even map
    x = layers.AveragePooling2D(3, strides=2, padding="same", name="down_pool")(x)  # odd map
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(
        inputs, layers.Dense(classes, activation="softmax", name="predictions")(x), name="small_residual"
    )


def make_positive(model: keras.Model) -> keras.Model:
    """`model` with every kernel an average (all weights 1 / fan-in), every bias 0 and every batch norm the identity:
    each unit is then positive exactly when a positive input pixel lies in its receptive field. Changes `model`."""
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.set_weights(
                [np.ones_like(w) if i in (0, 3) else np.zeros_like(w) for i, w in enumerate(layer.get_weights())]
            )
        elif layer.get_weights():
            kernel, *rest = layer.get_weights()
            layer.set_weights([np.full_like(kernel, 1 / np.prod(kernel.shape[:-1])), *(np.zeros_like(w) for w in rest)])
    return model


def reached(model: keras.Model, names: list[str], line_rows: list[int]) -> dict[str, list[set[int]]]:
    """{layer: for each row p in `line_rows`, the rows of the layer's map that a line of ones at input row p makes
    positive} on a `make_positive` model."""
    height, width, channels = model.input_shape[1:]
    x = np.zeros((len(line_rows), height, width, channels), np.float32)
    for i, p in enumerate(line_rows):
        x[i, p] = 1.0
    probe = keras.Model(model.inputs[0], [model.get_layer(n).output for n in names])
    outputs = probe(x, training=False)
    outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
    found = {}
    for name, out in zip(names, outputs, strict=True):
        lit = keras.ops.convert_to_numpy(out).max(axis=(2, 3)) > 0  # (lines, rows of the map)
        found[name] = [set(np.flatnonzero(row).tolist()) for row in lit]
    return found


def field_problems(model: keras.Model, table, names: list[str], line_rows: list[int]) -> list[str]:
    """What the layer table gets wrong about the fields of `names`, measured with lines at `line_rows` on a
    `make_positive` model: a line that reaches a unit outside the unit's field (the field is too small), or the
    first or last row of a field that lies inside the image not reaching its unit (the field is too large or
    misplaced). Near the bottom edge a field may hold rows a strided 1×1 convolution skipped; inside the image
    it may not."""
    height = model.input_shape[1]
    got = reached(model, names, line_rows)
    problems = []
    for name in names:
        rf, stride, pad = (int(table.loc[name, k]) for k in ("receptive_field", "stride", "padding"))
        units = range(table.loc[name, "output_shape"][0])
        for p, lit in zip(line_rows, got[name], strict=True):
            inside = {u for u in units if u * stride - pad <= p <= u * stride - pad + rf - 1}
            if not lit <= inside:
                problems.append(f"{name}: a line at row {p} reaches units {sorted(lit - inside)} outside their fields")
            for u in units:
                first, last = u * stride - pad, u * stride - pad + rf - 1
                if 0 <= first and last < height and p in (first, last) and u not in lit:
                    problems.append(f"{name}: row {p}, an end of unit {u}'s field, does not reach it")
    return problems
