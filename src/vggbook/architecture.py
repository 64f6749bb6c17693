"""VGG as data, a builder, and a per-layer table of what every layer costs.

Chapter "architecture" explains all of it; every block chapter reads `layer_table`.
"""

from __future__ import annotations

import functools
import gc

import keras
import numpy as np
import pandas as pd

from vggbook.weights import apply_weights

# Simonyan & Zisserman (2015), Table 1, in the paper's own notation: "conv3-64" is a 3x3
# convolution with 64 output channels; each inner tuple is one block, closed by a 2x2 max-pool.
VGG_CONFIGS: dict[str, tuple[tuple[str, ...], ...]] = {
    "A": (
        ("conv3-64",),
        ("conv3-128",),
        ("conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512"),
    ),
    "B": (
        ("conv3-64", "conv3-64"),
        ("conv3-128", "conv3-128"),
        ("conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512"),
    ),
    "C": (
        ("conv3-64", "conv3-64"),
        ("conv3-128", "conv3-128"),
        ("conv3-256", "conv3-256", "conv1-256"),
        ("conv3-512", "conv3-512", "conv1-512"),
        ("conv3-512", "conv3-512", "conv1-512"),
    ),
    "D": (
        ("conv3-64", "conv3-64"),
        ("conv3-128", "conv3-128"),
        ("conv3-256", "conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512", "conv3-512"),
    ),
    "E": (
        ("conv3-64", "conv3-64"),
        ("conv3-128", "conv3-128"),
        ("conv3-256", "conv3-256", "conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512", "conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512", "conv3-512", "conv3-512"),
    ),
}

FC_UNITS = 4096


def parse_conv(spec: str) -> tuple[int, int]:
    """`"conv3-64"` -> `(3, 64)`: kernel size and channels (chapter "architecture")."""
    kind, _, channels = spec.partition("-")
    if not kind.startswith("conv") or not channels.isdigit():
        raise ValueError(f"not a VGG layer spec like 'conv3-64': {spec!r}")
    return int(kind[4:]), int(channels)


def _initializer(name: str, seed: int) -> keras.initializers.Initializer:
    """A fresh seeded copy of a Keras initializer, one per layer, so builds are repeatable."""
    template = keras.initializers.get(name)
    config = template.get_config()
    if "seed" in config:
        config["seed"] = seed
    return type(template).from_config(config)


def build_vgg(
    config: str = "D",
    *,
    include_top: bool = True,
    input_shape: tuple[int, int, int] = (224, 224, 3),
    classes: int = 1000,
    width: float = 1.0,
    batch_norm: bool = False,
    kernel_initializer: str = "glorot_uniform",
    dropout: float = 0.0,
    weights: str = "random",
    seed: int = 0,
) -> keras.Model:
    """Build VGG configuration A–E as a Functional model with Keras' layer names.

    `width` scales every layer's channels and units (for CPU training, chapter "training");
    `batch_norm=True` puts BatchNormalization between each convolution and its ReLU
    (torchvision's `vgg16_bn`). `kernel_initializer` starts the convolutions and the two hidden
    dense layers; `predictions` always starts from Glorot's uniform (as in Keras' VGG16). `dropout` > 0
    puts a Dropout layer of that rate after fc1 and after fc2, as the paper trained (chapter "training");
    it acts in training only and has no weights, so Keras' files still load. `weights`
    is "random" (seeded), "imagenet", "auto" or a file path; `model.weights_source` says which
    were used. Chapter "architecture".
    """
    if config not in VGG_CONFIGS:
        raise ValueError(f"unknown VGG config {config!r}; choose one of {sorted(VGG_CONFIGS)}")
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels), got {input_shape}")
    smallest = 2 ** len(VGG_CONFIGS[config])  # each of the five pools halves the map
    if min(input_shape[:2]) < smallest:
        raise ValueError(f"input_shape {input_shape} is too small: VGG needs at least {smallest}×{smallest} pixels")
    if include_top and classes < 1:
        raise ValueError(f"classes must be at least 1, got {classes}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a rate in [0, 1), got {dropout}")
    vgg = functools.partial(
        _vgg,
        config,
        include_top=include_top,
        input_shape=input_shape,
        classes=classes,
        width=width,
        dropout=dropout,
        batch_norm=batch_norm,
        seed=seed,
    )
    if weights == "random":
        return apply_weights(vgg(init=kernel_initializer), weights, include_top=include_top)
    # A weights file overwrites every weight: start from zeros, which cost no random numbers (138 M of them
    # for VGG16, and about 0.35 GB of TensorFlow's memory), and draw the seeded ones only if "auto" falls back.
    model = apply_weights(vgg(init="zeros"), weights, include_top=include_top)
    if model.weights_source.startswith("random"):
        fallback = model.weights_source
        del model
        gc.collect()  # Keras models hold reference cycles: free the zeros before drawing the random weights
        model = vgg(init=kernel_initializer)
        model.weights_source = fallback
    return model


def _vgg(
    config: str,
    *,
    include_top: bool,
    input_shape: tuple[int, int, int],
    classes: int,
    width: float,
    dropout: float,
    batch_norm: bool,
    init: str,
    seed: int,
) -> keras.Model:
    """The Functional model of `build_vgg`, every initializer seeded (`init` "zeros" for all layers)."""
    layers = keras.layers
    seeds = iter(range(seed * 1000, seed * 1000 + 1000))

    def initializer(name: str = init) -> keras.initializers.Initializer:
        return _initializer(name, next(seeds))

    inputs = keras.Input(shape=input_shape, name="input_layer")
    x = inputs
    for b, block in enumerate(VGG_CONFIGS[config], start=1):
        for c, spec in enumerate(block, start=1):
            kernel, channels = parse_conv(spec)
            channels = max(1, round(channels * width))
            name = f"block{b}_conv{c}"
            if batch_norm:
                conv = layers.Conv2D(
                    channels, kernel, padding="same", name=name, use_bias=False, kernel_initializer=initializer()
                )
                x = layers.BatchNormalization(name=f"block{b}_bn{c}")(conv(x))
                x = layers.Activation("relu", name=f"block{b}_relu{c}")(x)
            else:
                x = layers.Conv2D(
                    channels, kernel, padding="same", activation="relu", name=name, kernel_initializer=initializer()
                )(x)
        x = layers.MaxPooling2D((2, 2), strides=(2, 2), name=f"block{b}_pool")(x)

    if include_top:
        units = max(1, round(FC_UNITS * width))
        x = layers.Flatten(name="flatten")(x)
        for name in ("fc1", "fc2"):
            x = layers.Dense(units, activation="relu", name=name, kernel_initializer=initializer())(x)
            if dropout > 0:
                x = layers.Dropout(dropout, seed=seed, name=f"{name}_dropout")(x)
        last = "zeros" if init == "zeros" else "glorot_uniform"
        x = layers.Dense(classes, activation="softmax", name="predictions", kernel_initializer=initializer(last))(x)

    name = {"D": "vgg16", "E": "vgg19"}.get(config, f"vgg_{config}") + ("_bn" if batch_norm else "")
    model = keras.Model(inputs, x, name=name)
    model.vgg_config = config
    return model


def build_vgg16(**kwargs) -> keras.Model:
    """VGG16 = configuration D: `build_vgg("D", **kwargs)` (chapter "architecture")."""
    return build_vgg("D", **kwargs)


def block_layers(model: keras.Model, block: int) -> list[keras.layers.Layer]:
    """The layers of block `block` (1–5) in order, conv…pool (the block chapters)."""
    found = [layer for layer in model.layers if layer.name.startswith(f"block{block}_")]
    if not found:
        raise ValueError(f"model {model.name!r} has no block {block}; VGG has blocks 1–5")
    return found


def _spatial(layer: keras.layers.Layer) -> tuple[int, int, int] | None:
    """Kernel, stride and left padding along one axis, or None for a layer with no window."""
    if isinstance(layer, keras.layers.Conv2D):
        k, s = layer.kernel_size[0], layer.strides[0]
    elif isinstance(layer, keras.layers.MaxPooling2D | keras.layers.AveragePooling2D):
        k, s = layer.pool_size[0], layer.strides[0]
    else:
        return None
    # Keras "same" pads (k - 1) // 2 on the left for stride 1; "valid" pads nothing.
    pad = (k - 1) // 2 if layer.padding == "same" else 0
    return k, s, pad


def layer_table(model: keras.Model) -> pd.DataFrame:
    """One row per layer: output shape, parameters, multiply-accumulates, receptive field,
    effective stride and padding (Araujo et al. 2019), float32 activation memory.

    Chapter "architecture" derives every column; the block chapters read their rows.
    """
    rows = []
    rf, jump, padding = 1, 1, 0  # receptive field, effective stride, effective padding
    spatial_ok = True
    for layer in model.layers:
        shape = tuple(layer.output.shape)
        window = _spatial(layer)
        if window is not None:
            k, s, pad = window
            rf += (k - 1) * jump
            padding += pad * jump
            jump *= s
        elif isinstance(layer, keras.layers.Flatten | keras.layers.Dense):
            spatial_ok = False
        macs = 0
        if isinstance(layer, keras.layers.Conv2D):
            k_h, k_w = layer.kernel_size
            c_in = layer.input.shape[-1]
            macs = int(np.prod(shape[1:3])) * k_h * k_w * c_in * layer.filters
        elif isinstance(layer, keras.layers.Dense):
            macs = int(layer.input.shape[-1]) * layer.units
        rows.append(
            {
                "layer": layer.name,
                "type": type(layer).__name__,
                "output_shape": shape[1:],
                "params": layer.count_params(),
                "macs": macs,
                "receptive_field": rf if spatial_ok else None,
                "stride": jump if spatial_ok else None,
                "padding": padding if spatial_ok else None,
                "activation_bytes": 4 * int(np.prod(shape[1:])),
            }
        )
    table = pd.DataFrame(rows).set_index("layer")
    return table.astype({"receptive_field": "Int64", "stride": "Int64", "padding": "Int64"})
