"""How much the book's two "do it once" choices save, measured side by side on this machine.

(a) `vggbook.feature_maps` returns all 18 conv and pool outputs of VGG16 from ONE forward pass of a
    compiled graph; compared with one plain (eager) forward pass, with the same network compiled by
    `tf.function` up to block5_pool, the same arithmetic returning one map (goal: feature_maps at ≥ 0.9
    of its speed), and with the naive way (one keras.Model per block,
    each run on its own, so block 1 is computed five times).
(b) `vggbook.plot_feature_maps` draws a layer's 512 channels as ONE montage image; compared with
    the same channels drawn as 512 Matplotlib subplots. Both are saved to an in-memory PNG, so the
    drawing really happens.

Full VGG16 (with its head) at 224×224, seeded random weights: the timings do not depend on the
values. Prints a table, asserts nothing. Run: `python benchmarks/feature_maps_speed.py`.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import time
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import matplotlib  # noqa: E402
import tensorflow as tf  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import vggbook  # noqa: E402


def median_times(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall-clock seconds of each function over `repeats` runs, after one untimed warm-up.
    The functions take turns within each repeat, so a change in machine load hits all of them."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def naive_block_models(model: keras.Model) -> list[tuple[keras.Model, list[str]]]:
    """The way many tutorials do it: one model per block, input → that block's conv and pool outputs."""
    shown = vggbook.default_layers(model)
    models = []
    for block in range(1, 6):
        names = [n for n in shown if n.startswith(f"block{block}_")]
        outputs = {n: model.get_layer(n).output for n in names}
        models.append((keras.Model(model.input, outputs), names))
    return models


def run_naive(models: list[tuple[keras.Model, list[str]]], x: np.ndarray) -> dict[str, np.ndarray]:
    maps = {}
    for block_model, names in models:
        values = block_model(x, training=False)
        maps.update({n: keras.ops.convert_to_numpy(values[n]) for n in names})
    return maps


def run_naive_predict(models: list[tuple[keras.Model, list[str]]], x: np.ndarray) -> dict[str, np.ndarray]:
    """The same, with `Model.predict` as tutorials write it (it adds its own per-call overhead)."""
    maps = {}
    for block_model, _ in models:
        maps.update(block_model.predict(x, verbose=0))
    return maps


def draw_montage(fmap: np.ndarray, layer: str) -> int:
    fig = vggbook.plot_feature_maps(fmap, layer)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.tell()


def draw_subplots(fmap: np.ndarray, layer: str, width: float = 9.0) -> int:
    """The same channels, in the same (ranked) order, one Matplotlib axes each."""
    maps = fmap[0]
    order = vggbook.rank_channels(maps)
    cols = int(np.ceil(np.sqrt(len(order))))
    rows = int(np.ceil(len(order) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width, width * rows / cols + 0.6))
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, c in zip(axes.flat, order, strict=False):
        ax.imshow(maps[:, :, c], cmap="viridis", interpolation="nearest")  # imshow scales each channel
    fig.suptitle(f"{layer}: {len(order)} channels as subplots")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.tell()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per forward-pass measurement")
    parser.add_argument("--plot-repeats", type=int, default=3, help="timed runs per figure measurement")
    parser.add_argument("--layer", default="block4_conv3", help="a 512-channel layer to draw (28×28 or 14×14)")
    args = parser.parse_args()

    tf.get_logger().setLevel("ERROR")  # Model.predict's one-off tracing of each block model is expected
    keras.utils.set_random_seed(0)
    model = vggbook.build_vgg16(weights="random")
    x = vggbook.preprocess(vggbook.sample_image("chelsea"))
    table = vggbook.layer_table(model)

    # (a) forward passes --------------------------------------------------------------------
    shown = vggbook.default_layers(model)
    naive = naive_block_models(model)
    one_pass = vggbook.feature_maps(model, x)
    naive_maps = run_naive(naive, x)
    same = list(one_pass) == shown and all(np.allclose(one_pass[n], naive_maps[n], rtol=1e-4, atol=1e-3) for n in shown)

    # the same computation as feature_maps (input to block5_pool, no head) as one graph, returning one map
    base = keras.Model(model.input, model.get_layer("block5_pool").output)
    compiled = tf.function(lambda t: base(t, training=False))
    t = median_times(
        {
            "plain": lambda: keras.ops.convert_to_numpy(model(x, training=False)),
            "compiled": lambda: keras.ops.convert_to_numpy(compiled(tf.constant(x))),
            "ours": lambda: vggbook.feature_maps(model, x),
            "naive": lambda: run_naive(naive, x),
            "naive_predict": lambda: run_naive_predict(naive, x),
        },
        args.repeats,
    )
    plain = t["plain"]

    # What the naive way costs in arithmetic: block b's model recomputes blocks 1..b.
    conv_macs = table.macs[[n.startswith("block") for n in table.index]]
    block_macs = [conv_macs[[n.startswith(f"block{b}_") for n in conv_macs.index]].sum() for b in range(1, 6)]
    naive_macs = sum(sum(block_macs[:b]) for b in range(1, 6)) / sum(block_macs)

    # (b) figures -------------------------------------------------------------------------
    fmap = one_pass[args.layer]
    if fmap.shape[-1] != 512:
        parser.error(f"{args.layer} has {fmap.shape[-1]} channels, not 512")
    figures = median_times(
        {"montage": lambda: draw_montage(fmap, args.layer), "subplots": lambda: draw_subplots(fmap, args.layer)},
        args.plot_repeats,
    )
    montage_t, subplots_t = figures["montage"], figures["subplots"]

    # report ------------------------------------------------------------------------------
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print(
        f"VGG16 at 224×224, random weights; Keras backend {keras.config.backend()}, Keras {keras.__version__}, "
        f"{os.cpu_count()} CPUs, {platform.machine()}; load average {load}"
    )
    print(
        f"median of {args.repeats} runs (forward passes) and {args.plot_repeats} runs (figures), "
        "after a warm-up, the contenders taking turns\n"
    )
    rows = [
        ("plain forward pass  model(x)", plain, plain, ""),
        ("compiled, input to block5_pool, 1 map", t["compiled"], plain, ""),
        ("vggbook.feature_maps: 18 maps, 1 pass", t["ours"], plain, "goal ≤ 1.1"),
        ("naive: 5 block models, 5 passes", t["naive"], plain, f"arithmetic alone: {naive_macs:.2f}"),
        ("naive, each with .predict()", t["naive_predict"], plain, ""),
    ]
    print(f"{'(a) forward passes':42s} {'seconds':>9s} {'÷ plain':>8s}   ({len(shown)} maps, same both ways: {same})")
    for name, seconds, ref, note in rows:
        print(f"{name:42s} {seconds:9.3f} {seconds / ref:8.2f}   {note}")
    speed = t["compiled"] / t["ours"]
    print(f"{'feature_maps speed ÷ compiled, to block5_pool':42s} {speed:18.2f}   goal ≥ 0.9")
    print()
    print(f"{'(b) ' + args.layer + ' ' + '×'.join(map(str, fmap.shape[1:])):42s} {'seconds':>9s}")
    print(f"{'montage: plot_feature_maps + savefig':42s} {montage_t:9.3f}   goal ≤ 0.5 s")
    print(f"{'512 subplots + savefig':42s} {subplots_t:9.3f}")
    print(f"{'montage speed-up':42s} {subplots_t / montage_t:8.1f}×   goal ≥ 10×")


if __name__ == "__main__":
    main()
