"""What feature inversion costs the block chapters, and how many steps it needs (issue #17, item 3).

`vggbook.invert` reconstructs the photo from a layer's output (Mahendran & Vedaldi 2015). Each block chapter
shows block n's reconstruction beside block n−1's (block 1: beside the photo), so the book pays for one
reconstruction in block 1 and a pair in blocks 2–5. This prints, on both weight branches — seeded random
weights, and stand-ins for Keras' ImageNet file (tests/standin.py: Keras' layout, He-scaled random numbers,
NOT ImageNet's) read through VGGBOOK_WEIGHTS_DIR, offline:
1. per pool layer and number of steps (forward-and-gradient evaluations): seconds, seconds per step as a
   multiple of one plain forward pass of VGG16 to block5_pool, the relative feature error at the start and at
   the end, how much it still fell over the last quarter of the steps, and the correlation with the photo at
   each scale (`vggbook.kept_per_scale`) — the numbers that chose `vggbook.inversion.DEFAULT_STEPS`;
2. the chapters' own calls at the default steps: block 1's single reconstruction, blocks 2–5's pairs, and
   their total.
Prints the load average with every table; asserts nothing. The first call for a layer includes tracing: each
row here is a fresh model's first call for its layers, as in a chapter.
Run: `python benchmarks/inversion_speed.py [--branches random pretrained] [--steps 10 20 40] [--only sweep chapters]`
(the sweep takes a few minutes on an idle 2-core machine).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("VGGBOOK_OFFLINE", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import vggbook  # noqa: E402
from vggbook import inversion  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
POOLS = [f"block{n}_pool" for n in range(1, 6)]


def load() -> str:
    return "load average " + ", ".join(f"{x:.1f}" for x in os.getloadavg())


def build(branch: str, standin_dir: str) -> object:
    """VGG16's convolutional base on the branch: seeded random, or the stand-in file through VGGBOOK_WEIGHTS_DIR."""
    if branch == "random":
        return vggbook.build_vgg16(include_top=False, weights="random")
    os.environ["VGGBOOK_WEIGHTS_DIR"] = standin_dir
    try:
        return vggbook.build_vgg16(include_top=False, weights="imagenet")
    finally:
        del os.environ["VGGBOOK_WEIGHTS_DIR"]


def forward_seconds(model, photo: np.ndarray, repeats: int = 5) -> float:
    """Median time of one plain compiled forward pass of one photo to block5_pool: the unit of cost here."""
    run = tf.function(lambda x: model(x, training=False))
    x = tf.constant(vggbook.preprocess(photo))
    run(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(x).numpy()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def kept_text(r: inversion.Reconstruction) -> str:
    return " ".join(f"{v:5.2f}" for v in r.kept.values)


def sweep(branch: str, standin_dir: str, photo: np.ndarray, step_counts: list[int]) -> None:
    model = build(branch, standin_dir)
    unit = forward_seconds(model, photo)
    scales = " ".join(f"{s:>5}" for s in vggbook.kept_per_scale(photo, photo).index)
    print(f"\n[{branch}] {model.weights_source}")
    print(f"one forward pass to block5_pool: {unit:.3f} s   [{load()}]")
    header = f"{'layer':12s} {'steps':>5} {'s':>6} {'s/step':>7} {'/fwd':>5} {'start':>6} {'final':>6} {'fall':>5}"
    print(f"{header}  kept at {scales} px")
    for layer in POOLS:
        for steps in step_counts:
            vggbook.features._VIEWS.pop(model, None)  # a fresh trace, as in a chapter's first call
            r = vggbook.invert(model, photo, layer, steps=steps)
            per_step = r.seconds / steps
            print(
                f"{layer:12s} {steps:5d} {r.seconds:6.1f} {per_step:7.3f} {per_step / unit:5.1f} {r.start_error:6.1%} "
                f"{r.feature_error:6.1%} {r.late_drop:5.0%}  kept at {kept_text(r)}",
                flush=True,
            )
    print(f"[{load()}]")
    del model
    gc.collect()


def chapters(branch: str, standin_dir: str, photo: np.ndarray) -> None:
    """Each chapter's call at the default steps, on a fresh model (as a chapter runs it)."""
    print(f"\n[{branch}] the chapters' calls at the default steps   [{load()}]")
    total = 0.0
    for n in range(1, 6):
        model = build(branch, standin_dir)
        layers = "block1_pool" if n == 1 else [f"block{n - 1}_pool", f"block{n}_pool"]
        made = vggbook.invert(model, photo, layers)
        made = [made] if n == 1 else made
        total += made[0].seconds
        rows = "; ".join(
            f"{r.layer} error {r.feature_error:.1%} (fall {r.late_drop:.0%}), kept {kept_text(r)}" for r in made
        )
        print(f"block {n}: {made[0].seconds:5.1f} s, {made[0].steps} steps: {rows}", flush=True)
        del model
        gc.collect()
    print(f"all five chapters: {total:.1f} s   [{load()}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--branches", nargs="+", default=["random", "pretrained"], choices=["random", "pretrained"])
    parser.add_argument("--steps", nargs="+", type=int, default=[10, 20, 40])
    parser.add_argument("--only", nargs="+", default=["sweep", "chapters"], choices=["sweep", "chapters"])
    parser.add_argument("--photo", default="chelsea", choices=vggbook.GALLERY)
    args = parser.parse_args()
    now = f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC"
    print(f"feature inversion, photo {args.photo!r}, 224×224   [{now}, {load()}, {os.cpu_count()} CPUs]")
    photo = vggbook.sample_image(args.photo)
    with tempfile.TemporaryDirectory(prefix="vggbook-standin-") as standin_dir:
        if "pretrained" in args.branches:
            sys.path.insert(0, str(ROOT / "tests"))
            import standin

            standin.write_vgg16_standin(Path(standin_dir) / standin.NOTOP_NAME, include_top=False)
        for branch in args.branches:
            if "sweep" in args.only:
                sweep(branch, standin_dir, photo, args.steps)
            if "chapters" in args.only:
                chapters(branch, standin_dir, photo)


if __name__ == "__main__":
    main()
