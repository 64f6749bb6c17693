"""VGG as data, a builder, and a per-layer table of what every layer costs.

Chapter "architecture" explains all of it; every block chapter reads `layer_table`.
"""

from __future__ import annotations

import functools
import gc

import keras
import numpy as np
import pandas as pd

from vggbook.features import _input_tensors, ensure_built
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


# Layers that act on each position alone (or merge maps position by position): a unit's field is its input's,
# or the union of its inputs' fields.
POINTWISE = (
    keras.layers.InputLayer,
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.PReLU,
    keras.layers.ELU,
    keras.layers.Softmax,
    keras.layers.Dropout,
    keras.layers.SpatialDropout2D,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.ActivityRegularization,
    keras.layers.Rescaling,
    keras.layers.Normalization,
    keras.layers.Identity,
    keras.layers.Add,
    keras.layers.Subtract,
    keras.layers.Multiply,
    keras.layers.Average,
    keras.layers.Maximum,
    keras.layers.Minimum,
    keras.layers.Concatenate,
)
# Layers after which a unit no longer has a window in the input (it reads every position).
FLAT = (
    keras.layers.Flatten,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.Reshape,
)

Field = tuple[int, int, int]  # receptive field, effective stride, effective padding along one axis (pixels)


def _same_padding(size_in: int, size_out: int, kernel: int, stride: int) -> int:
    """The rows (or columns) TensorFlow's "same" padding adds BEFORE the input: half the total, rounded down. For
    stride 1 that is (kernel - 1) // 2; for stride 2 on an even map it is (kernel - 2) // 2 (a 3×3/2 pool: 0)."""
    total = max((size_out - 1) * stride + kernel - size_in, 0)
    return total // 2


def _window(layer: keras.layers.Layer, axis: int) -> tuple[int, int, int] | None:
    """Kernel (dilated), stride and padding before the input along `axis` (0 rows, 1 columns) of a layer that
    slides a window, or None for a layer that does not."""
    if isinstance(layer, keras.layers.ZeroPadding2D):
        return 1, 1, layer.padding[axis][0]
    if isinstance(layer, keras.layers.Cropping2D):
        return 1, 1, -layer.cropping[axis][0]
    if isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D | keras.layers.SeparableConv2D):
        kernel, stride = layer.kernel_size[axis], layer.strides[axis]
        kernel = layer.dilation_rate[axis] * (kernel - 1) + 1
    elif isinstance(layer, keras.layers.MaxPooling2D | keras.layers.AveragePooling2D):
        kernel, stride = layer.pool_size[axis], layer.strides[axis]
    else:
        return None
    if layer.padding == "valid":
        return kernel, stride, 0
    size_in, size_out = layer.input.shape[1 + axis], layer.output.shape[1 + axis]
    return kernel, stride, _same_padding(size_in, size_out, kernel, stride)


def _field(layer: keras.layers.Layer, fields: list[Field | None], axis: int) -> Field | None:
    """The receptive field, effective stride and padding (Araujo et al. 2019) of `layer`'s output along `axis`,
    from those of its inputs; None where a unit has no window in the input (after Flatten or a dense layer)
    or the layer is one whose window the helper does not know."""
    if isinstance(layer, keras.layers.InputLayer):
        return 1, 1, 0
    if any(f is None for f in fields):
        return None
    window = _window(layer, axis)
    if window is not None:
        (rf, jump, padding), (kernel, stride, pad) = fields[0], window
        return rf + (kernel - 1) * jump, jump * stride, padding + pad * jump
    pointwise = isinstance(layer, POINTWISE) or (isinstance(layer, keras.layers.Dense) and len(layer.output.shape) == 4)
    axes = getattr(layer, "axis", -1)  # Concatenate, LayerNormalization, Softmax: along the channels only
    if not pointwise or len(layer.output.shape) != 4 or not set(np.atleast_1d(axes)) <= {-1, 3}:
        return None
    if len({jump for _, jump, _ in fields}) != 1:  # maps of different strides: no single window per unit
        return None
    # A merge (Add, Concatenate, …): unit u of input i sees pixels u·jump − p_i … u·jump − p_i + r_i − 1, so the
    # union starts at the largest padding and ends at the largest r_i − p_i (one interval: the paths overlap).
    jump = fields[0][1]
    padding = max(p for _, _, p in fields)
    end = max(rf - p for rf, _, p in fields)
    return end + padding, jump, padding


def _macs(layer: keras.layers.Layer) -> int:
    """Multiply-accumulates of one image through `layer`: convolutions and dense layers; 0 for the rest."""
    shape = tuple(layer.output.shape)
    positions = int(np.prod(shape[1:3])) if len(shape) == 4 else 1
    if isinstance(layer, keras.layers.Conv2D):
        k_h, k_w = layer.kernel_size
        return positions * k_h * k_w * (layer.input.shape[-1] // layer.groups) * layer.filters
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        k_h, k_w = layer.kernel_size
        return positions * k_h * k_w * layer.input.shape[-1] * layer.depth_multiplier
    if isinstance(layer, keras.layers.SeparableConv2D):
        k_h, k_w = layer.kernel_size
        depthwise = layer.input.shape[-1] * layer.depth_multiplier
        return positions * (k_h * k_w * depthwise + depthwise * layer.filters)
    if isinstance(layer, keras.layers.Conv2DTranspose):
        k_h, k_w = layer.kernel_size
        return int(np.prod(layer.input.shape[1:3])) * k_h * k_w * layer.input.shape[-1] * layer.filters
    if isinstance(layer, keras.layers.Dense):
        return int(np.prod(layer.input.shape[1:])) * layer.units
    return 0


def layer_table(model: keras.Model) -> pd.DataFrame:
    """One row per layer: output shape, parameters, multiply-accumulates, receptive field,
    effective stride and padding (Araujo et al. 2019), float32 activation memory.

    Works for any built Keras image model, chains and graphs alike: a layer that merges maps (ResNet's Add)
    sees the union of its inputs' fields; "same" padding is TensorFlow's (for stride 2 on an even map it pads
    less before than after). The three field columns are empty where a unit has no window in the input (after
    Flatten, a dense layer or global pooling), where rows and columns disagree (non-square kernels or maps), and
    for layers whose window the helper does not know (upsampling, transposed convolutions, custom layers).
    Chapter "architecture" derives every column; the block chapters read their rows; chapter "your_model"
    reads ResNet50's.
    """
    ensure_built(model)
    if None in tuple(model.inputs[0].shape[1:3]):
        raise ValueError(
            f"model {model.name!r} takes images of any size {tuple(model.inputs[0].shape[1:])}, so its maps have no "
            "size to count: build it for one size, e.g. keras.Input(shape=(224, 224, 3)), to get its layer table"
        )
    # id of a symbolic tensor → its field on both axes; the input (whose layer a Sequential does not list) is 1 pixel
    fields: dict[int, tuple[Field | None, Field | None]] = {id(model.inputs[0]): ((1, 1, 0), (1, 1, 0))}
    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            inputs = []
        else:
            inputs = [fields.get(id(t), (None, None)) for t in _input_tensors(layer)]
        both = tuple(_field(layer, [f[axis] for f in inputs], axis) for axis in (0, 1))
        outputs = layer.output if isinstance(layer.output, list | tuple) else [layer.output]
        for tensor in outputs:
            fields[id(tensor)] = both
        field = both[0] if both[0] == both[1] else None
        shape = tuple(outputs[0].shape)
        rows.append(
            {
                "layer": layer.name,
                "type": type(layer).__name__,
                "output_shape": shape[1:],
                "params": layer.count_params(),
                "macs": _macs(layer),
                "receptive_field": None if field is None else field[0],
                "stride": None if field is None else field[1],
                "padding": None if field is None else field[2],
                "activation_bytes": 4 * int(np.prod(shape[1:])),
            }
        )
    table = pd.DataFrame(rows).set_index("layer")
    return table.astype({"receptive_field": "Int64", "stride": "Int64", "padding": "Int64"})
