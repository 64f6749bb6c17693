"""What the classifier chapter's activation maximisation costs, and what its regularisation adds (issue #6).

`vggbook.activation_maximisation` runs its gradient-ascent step as a `tf.function`. This times the chapter's
own use — three filters in each of five layers, 64×64, 64 regularised steps (random shifts, zoom and rotation,
and a 1/f gradient spectrum) — against the same steps without regularisation, each twice: the first run
includes tracing, the second reuses it. XLA is not an option any more: the rotation and zoom op
(`ImageProjectiveTransformV3`) has no XLA kernel, and on the unregularised step XLA was slower here, first run
and warm (measured when this script compared the two). Full VGG16, seeded random weights (timings do not
depend on the values). Prints, asserts nothing.
Run: `python benchmarks/ascent_speed.py`.
"""

from __future__ import annotations

import datetime
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("VGGBOOK_OFFLINE", "1")

import vggbook  # noqa: E402
from vggbook import features, interpret  # noqa: E402

LAYERS = ["block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3"]
REGULARISED = {"jitter": 4, "scale": 0.05, "rotate": 5.0, "decay": 1.0}
PLAIN = {"jitter": 0, "scale": 0.0, "rotate": 0.0, "decay": 0.0}


def chapter_calls(model, options: dict) -> float:
    start = time.perf_counter()
    for layer in LAYERS:
        interpret.activation_maximisation(model, layer, [0, 1, 2], size=64, steps=64, **options)
    return time.perf_counter() - start


def main() -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    now = f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC"
    print(f"activation maximisation, 5 layers × 3 filters, 64×64, 64 steps   [{now}, load average {load}]")
    model = vggbook.build_vgg16(weights="random")
    for label, options in [("regularised", REGULARISED), ("plain", PLAIN)]:
        features._VIEWS.pop(model, None)  # new views, so the first run traces again
        first, again = chapter_calls(model, options), chapter_calls(model, options)
        print(f"  {label:12s} first run {first:6.2f} s (tracing included), again {again:6.2f} s")


if __name__ == "__main__":
    main()
