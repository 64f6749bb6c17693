"""Does XLA pay where the helper runs one function many times (issue #6)?

`vggbook.activation_maximisation` runs its gradient-ascent step as a `tf.function`, 24 steps per call in
the classifier chapter. This times the chapter's own use — three filters in each of five layers, 64×64,
24 steps — with that `tf.function` and with the same step under XLA (`jit_compile=True`), each twice: the
first run includes tracing (and XLA's compiling), the second reuses them. Full VGG16, seeded random weights
(timings do not depend on the values). Prints, asserts nothing.
Run: `python benchmarks/xla_ascent.py`.
"""

from __future__ import annotations

import datetime
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("VGGBOOK_OFFLINE", "1")

import tensorflow as tf  # noqa: E402

import vggbook  # noqa: E402
from vggbook import features, interpret  # noqa: E402

LAYERS = ["block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3"]


def chapter_calls(model) -> float:
    start = time.perf_counter()
    for layer in LAYERS:
        interpret.activation_maximisation(model, layer, [0, 1, 2], size=64, steps=24)
    return time.perf_counter() - start


def main() -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    now = f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC"
    print(f"activation maximisation, tf.function against XLA   [{now}, load average {load}]")
    model = vggbook.build_vgg16(weights="random")
    plain = interpret._ascent_step

    def under_xla(probe):
        return tf.function(plain(probe).python_function, jit_compile=True, reduce_retracing=True)

    for label, make_step in [("tf.function", plain), ("XLA", under_xla)] * 2:
        interpret._ascent_step = make_step
        features._VIEWS.pop(model, None)  # new views, so the first run traces (and compiles) again
        first, again = chapter_calls(model), chapter_calls(model)
        print(f"  {label:12s} first run {first:6.2f} s (tracing included), again {again:6.2f} s")
    interpret._ascent_step = plain


if __name__ == "__main__":
    main()
