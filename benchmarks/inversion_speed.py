"""What feature inversion costs the block chapters, and how many steps it needs (issue #17, item 3).

`vggbook.invert` reconstructs the photo from a layer's output (Mahendran & Vedaldi 2015). Each block chapter
shows block n's reconstruction beside block n−1's (block 1: beside the photo), so the book pays for one
reconstruction in block 1 and a pair in blocks 2–5. This prints, on both weight branches — seeded random
weights, and stand-ins for Keras' ImageNet file (tests/standin.py: Keras' layout, He-scaled random numbers,
NOT ImageNet's) read through VGGBOOK_WEIGHTS_DIR, offline:
0. the optimiser: the same objective from the same start, minimised by L-BFGS-B on the pixels, by Adam on the
   pixels, and by `invert`'s Adam on 1/f-scaled Fourier coefficients, at block1_pool and block3_pool;
1. per pool layer and number of steps (forward-and-gradient evaluations): seconds, seconds per step as a
   multiple of one plain forward pass of VGG16 to block5_pool, the relative feature error at the start and at
   the end, how much it still fell over the last quarter of the steps, and the correlation with the photo at
   each scale (`vggbook.kept_per_scale`) — the numbers that chose `vggbook.inversion.STEPS`;
2. the chapters' own calls at the default steps: block 1's single reconstruction, blocks 2–5's pairs, and
   their total.
Prints the load average with every table; asserts nothing. In the sweep the step is traced once per layer
(reported on its own) and each row reuses it; the chapters' calls run on a fresh model, tracing included.
Run: `python benchmarks/inversion_speed.py [--branches random pretrained] [--steps 10 15 20 30]
[--only optimisers sweep chapters]` (about ten minutes per branch and part on an idle 2-core machine).
"""

from __future__ import annotations

import argparse
import datetime
import functools
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
from vggbook.images import CAFFE_MEAN_BGR  # noqa: E402

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
        first = vggbook.invert(model, photo, layer, steps=1)  # traces the step: later calls reuse it
        print(f"{layer:12s} first call, 1 step, tracing included: {first.seconds:.1f} s")
        for steps in step_counts:
            r = vggbook.invert(model, photo, layer, steps=steps)
            per_step = r.seconds / steps
            print(
                f"{layer:12s} {steps:5d} {r.seconds:6.1f} {per_step:7.3f} {per_step / unit:5.1f} {r.start_error:6.1%} "
                f"{r.feature_error:6.1%} {r.late_fall(max(1, (steps - 1) // 4)):5.0%}  kept at {kept_text(r)}",
                flush=True,
            )
    print(f"[{load()}]")
    del model
    gc.collect()


def optimisers(branch: str, standin_dir: str, photo: np.ndarray, step_counts: list[int]) -> None:
    """The same objective (vggbook's own terms, the same start) minimised three other ways, against `invert`'s
    Adam on 1/f-scaled Fourier coefficients: L-BFGS-B (scipy) on the pixels, kept in range by its bounds (its
    best evaluation is kept), and the same Adam on the pixels at two rates, without the 1/f preconditioning.
    Steps are forward-and-gradient evaluations in all of them (L-BFGS-B's line search spends some)."""
    model = build(branch, standin_dir)
    print(f"\n[{branch}] optimisers for the same objective, from the same start   [{load()}]")
    for layer in ["block1_pool", "block3_pool"]:
        methods = Baselines(model, photo, layer)
        for name, method in [
            ("L-BFGS-B, pixels", methods.lbfgs),
            ("Adam, pixels, 3.2", functools.partial(methods.adam_pixels, rate=3.2)),
            ("Adam, pixels, 12.8", functools.partial(methods.adam_pixels, rate=12.8)),
            ("Adam, 1/f Fourier", methods.fourier),
        ]:
            for steps in step_counts:
                began = time.perf_counter()
                x, error = method(steps)
                seconds = time.perf_counter() - began
                kept = vggbook.kept_per_scale(photo, vggbook.deprocess(x))
                print(
                    f"{layer:12s} {name:18s} {steps:3d} steps {seconds:6.1f} s  error {error:6.1%}  kept at "
                    + " ".join(f"{v:5.2f}" for v in kept.values),
                    flush=True,
                )
    print(f"[{load()}]")


class Baselines:
    """`invert`'s objective for one layer as a function of the pixels, and three ways to minimise it. Each
    returns (the preprocessed image, its relative feature error)."""

    def __init__(self, model, photo: np.ndarray, layer: str):
        self.model, self.photo, self.layer = model, photo, layer
        self.x0 = vggbook.preprocess(photo)
        targets, errors = inversion._feature_errors(model, [layer])
        goals = targets(tf.constant(self.x0))
        fourier = inversion._Parametrisation(*self.x0.shape[1:3], inversion.DECAY)
        noise = inversion.START * np.random.default_rng(0).standard_normal(fourier.shape(1))
        self.start = fourier.image(tf.constant(noise.astype(np.float32))).numpy()  # invert's start, seed 0

        @tf.function
        def objective(x):
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(x)
                error = errors(x, goals)
                alpha, tv = inversion._priors(x)
                total = tf.reduce_sum(error + inversion.ALPHA_WEIGHT * alpha + inversion.TV_WEIGHT * tv)
            return total, error[0], tape.gradient(total, x)

        self.objective = objective

    def lbfgs(self, steps: int) -> tuple[np.ndarray, float]:
        """L-BFGS-B on the image in units of B (the paper's normalised image), kept in 0–255 by its bounds."""
        from scipy.optimize import Bounds, minimize

        scale = inversion.PIXEL_RANGE
        seen = []  # (objective, error, x) of every evaluation: the best is returned, not a line-search trial

        def f(flat: np.ndarray) -> tuple[float, np.ndarray]:
            x = (flat * scale).reshape(self.x0.shape).astype(np.float32)
            total, error, grad = self.objective(tf.constant(x))
            seen.append((float(total), float(error), x))
            return float(total), grad.numpy().ravel().astype(np.float64) * scale

        low = np.broadcast_to(-CAFFE_MEAN_BGR, self.x0.shape).ravel() / scale
        # Only the budget stops it (scipy's tolerances would stop it at once on these small gradients).
        options = {"maxfun": steps, "maxiter": steps, "gtol": 0.0, "ftol": 0.0}
        start = self.start.ravel().astype(np.float64) / scale
        minimize(f, start, jac=True, method="L-BFGS-B", bounds=Bounds(low, low + 255.0 / scale), options=options)
        _, error, x = min(seen, key=lambda seen: seen[0])
        if len(seen) < steps:
            print(f"  (L-BFGS-B stopped after {len(seen)} of {steps} evaluations)")
        return x, error

    def adam_pixels(self, steps: int, rate: float) -> tuple[np.ndarray, float]:
        """`invert`'s Adam on the pixels, moving each by about `rate` grey levels a step."""
        beta1, beta2, eps = inversion.ADAM
        x, m, v = tf.constant(self.start), 0.0, 0.0
        for t in range(1, steps + 1):
            _, error, grad = self.objective(x)
            if t < steps:
                m, v = beta1 * m + (1 - beta1) * grad, beta2 * v + (1 - beta2) * grad**2
                x = x - rate * np.sqrt(1 - beta2**t) / (1 - beta1**t) * m / (tf.sqrt(v) + eps)
        return x.numpy(), float(error)

    def fourier(self, steps: int) -> tuple[np.ndarray, float]:
        made = vggbook.invert(self.model, self.photo, self.layer, steps=steps)
        return vggbook.preprocess(made.image), made.feature_error


def chapters(branch: str, standin_dir: str, photo: np.ndarray) -> None:
    """Each chapter's call at the default steps, on a fresh model (as a chapter runs it)."""
    print(f"\n[{branch}] the chapters' calls at the default steps   [{load()}]")
    total = 0.0
    for n in range(1, 6):
        model = build(branch, standin_dir)
        # as vggbook.blocks.rebuilt: one search per pool, seeded with its block's number
        made = [vggbook.invert(model, photo, f"block{m}_pool", seed=m) for m in ([1] if n == 1 else [n - 1, n])]
        seconds = sum(r.seconds for r in made)
        total += seconds
        rows = "; ".join(
            f"{r.layer} error {r.feature_error:.1%} (fall over the last {r.late_steps} steps {r.late_drop:.0%}), "
            f"kept {kept_text(r)}"
            for r in made
        )
        print(f"block {n}: {seconds:5.1f} s, {made[0].steps} steps: {rows}", flush=True)
        del model
        gc.collect()
    print(f"all five chapters: {total:.1f} s   [{load()}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--branches", nargs="+", default=["random", "pretrained"], choices=["random", "pretrained"])
    parser.add_argument("--steps", nargs="+", type=int, default=[10, 15, 20, 30])
    parts = ["optimisers", "sweep", "chapters"]
    parser.add_argument("--only", nargs="+", default=parts, choices=parts)
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
            if "optimisers" in args.only:
                optimisers(branch, standin_dir, photo, args.steps)
            if "sweep" in args.only:
                sweep(branch, standin_dir, photo, args.steps)
            if "chapters" in args.only:
                chapters(branch, standin_dir, photo)


if __name__ == "__main__":
    main()
