"""How close VGG16's forward pass comes to this machine's matrix-multiply speed (issue #6).

The yardstick is NumPy's float32 `a @ b` on large square matrices (2·N³ floating-point operations). VGG16
does 2 × 15.47 G multiply-accumulates per 224×224 image (the layer table's sum). Measured for batch 1 and 8:
eager `model(x)`, `model.predict(x)`, a `tf.function` graph, and `tf.function(jit_compile=True)` (XLA), whose
first call (tracing + compiling) is reported on its own. Then what `vggbook.feature_maps` does (one call of a
`tf.function`-compiled extractor that returns all 18 conv and pool outputs), against the same extractor under XLA.
The ratio GFLOP/s ÷ NumPy GFLOP/s says how much of the machine the network uses. Full VGG16 with its head,
seeded random weights (timings do not depend on the values). Prints, asserts nothing.
Run: `python benchmarks/matmul_ratio.py [--repeats 5] [--batches 1 8]`.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import vggbook  # noqa: E402


def stamp() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M:%S} UTC, load average {load}"


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall-clock seconds of `fn` over `repeats` runs, after one untimed warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def numpy_gflops(repeats: int) -> float:
    """The best float32 `a @ b` speed of NumPy over a few large square sizes, in GFLOP/s."""
    rng = np.random.default_rng(0)
    best = 0.0
    for n in (1024, 2048, 4096):
        a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
        seconds = median_seconds(lambda a=a, b=b: a @ b, repeats)
        gflops = 2 * n**3 / seconds / 1e9
        print(f"  numpy  float32 {n}×{n} @ {n}×{n}: {seconds * 1e3:8.1f} ms  {gflops:7.1f} GFLOP/s")
        best = max(best, gflops)
    a = tf.constant(rng.standard_normal((4096, 4096), dtype=np.float32))
    seconds = median_seconds(lambda: tf.linalg.matmul(a, a).numpy(), repeats)
    print(f"  tf.linalg.matmul float32 4096² (for comparison): {2 * 4096**3 / seconds / 1e9:7.1f} GFLOP/s")
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    print(f"matmul ratio on {os.cpu_count()} CPUs, TensorFlow {tf.__version__}, NumPy {np.__version__}, ", end="")
    print(f"Python {sys.version.split()[0]}   [{stamp()}]")
    reference = numpy_gflops(args.repeats)

    keras.utils.set_random_seed(0)
    model = vggbook.build_vgg16(weights="random", seed=0)
    table = vggbook.layer_table(model)
    flops = 2 * float(table["macs"].sum())
    conv_flops = 2 * float(table.loc[table.index.str.startswith("block"), "macs"].sum())
    print(f"  VGG16: {flops / 2e9:.2f} G multiply-accumulates per image = {flops / 1e9:.2f} GFLOP   [{stamp()}]")

    def row(name: str, batch: int, seconds: float, per_image_flops: float = flops, note: str = "") -> None:
        gflops = batch * per_image_flops / seconds / 1e9
        print(
            f"  {name:34s} batch {batch:2d}: {seconds * 1e3:8.0f} ms  {batch / seconds:6.2f} img/s"
            f"  {gflops:6.1f} GFLOP/s  ratio {gflops / reference:5.2f} {note}"
        )

    print(f"\n  ratio = GFLOP/s ÷ NumPy's best {reference:.1f} GFLOP/s")
    for batch in args.batches:
        x = np.random.default_rng(batch).standard_normal((batch, 224, 224, 3), dtype=np.float32)
        row("eager model(x)", batch, median_seconds(lambda x=x: model(x, training=False).numpy(), args.repeats))
        row("model.predict(x)", batch, median_seconds(lambda x=x: model.predict(x, verbose=0), args.repeats))
        graph = tf.function(lambda t: model(t, training=False), jit_compile=False, reduce_retracing=True)
        row("tf.function (graph)", batch, median_seconds(lambda x=x, g=graph: g(x).numpy(), args.repeats))
        xla = tf.function(lambda t: model(t, training=False), jit_compile=True)
        start = time.perf_counter()
        xla(x).numpy()
        compile_seconds = time.perf_counter() - start
        seconds = median_seconds(lambda x=x, f=xla: f(x).numpy(), args.repeats)
        row("tf.function(jit_compile=True)", batch, seconds, note=f"(first call {compile_seconds:.1f} s)")

    # What the block chapters call: vggbook.feature_maps = one call of a compiled 18-output extractor.
    x = vggbook.preprocess(vggbook.sample_image("chelsea"))
    print(f"\n  vggbook.feature_maps (all 18 conv and pool outputs, batch 1)   [{stamp()}]")
    start = time.perf_counter()
    vggbook.feature_maps(model, x)
    first = time.perf_counter() - start
    seconds = median_seconds(lambda: vggbook.feature_maps(model, x), args.repeats)
    row("feature_maps (compiled extractor)", 1, seconds, conv_flops, f"(first call {first:.1f} s)")
    names = vggbook.default_layers(model)
    extractor = keras.Model(model.input, {n: model.get_layer(n).output for n in names})
    xla = tf.function(lambda t: extractor(t, training=False), jit_compile=True)
    start = time.perf_counter()
    {k: v.numpy() for k, v in xla(x).items()}
    first = time.perf_counter() - start
    seconds = median_seconds(lambda: {k: v.numpy() for k, v in xla(x).items()}, args.repeats)
    row("same extractor, jit_compile=True", 1, seconds, conv_flops, f"(first call {first:.1f} s)")
    print(f"  done   [{stamp()}]")


if __name__ == "__main__":
    main()
