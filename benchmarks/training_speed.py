"""How fast `vggbook.train_vgg` trains VGG16 on this machine's CPU (chapter "training", issue #4).

(a) Training throughput, images per second, of VGG16 (13 conv + 3 fully connected layers) on 32×32 images of
    `vggbook.shapes_dataset`, plain and with batch norm, at several widths: each run trains a few epochs and the
    throughput is taken from the median epoch after the first (which also traces the graph, reported apart).
(b) The cost of `tf.config.experimental.enable_op_determinism()`, which must be switched on before any op
    runs and so is measured in a subprocess, and whether two seeded runs agree bit for bit without it (the
    chapter relies on that: it does not switch it on).
(c) The chapter's five recipes at width 1/8 on standardised inputs (Keras' defaults, a smaller step, He, He with
    batch norm, and the paper's: SGD with momentum, batch 256, weight decay 5e-4, dropout 0.5): throughput and
    the first epoch, twice: on the recipes' first calls, in the chapter's order (the first epoch also traces the
    training step, except where `train_vgg` restarts a network it compiled for an earlier recipe of the same
    architecture and optimizer: the second and third recipes restart the first's), and on the same five calls
    again (every network restarted but the paper's, whose dropout compiles its own) — the fixed cost each extra
    training run adds to the chapter, with and without a new trace.

Prints the load average beside the results: other work on the two cores shifts every number. Asserts nothing.
Run from the repository root: `python benchmarks/training_speed.py [--widths 0.0625 0.125 0.25] [--epochs 3]`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

RUN = """
import json, sys, time
import numpy as np
import tensorflow as tf
if {determinism}:
    tf.config.experimental.enable_op_determinism()
import vggbook

data = vggbook.shapes_dataset({images}, 200, seed=0)
results = []
for settings in {configs}:
    start = time.perf_counter()
    model, history = vggbook.train_vgg(
        data.train, data.validation, classes=len(data.class_names), epochs={epochs},
        **({{"batch_size": {batch}, "kernel_initializer": "he_normal"}} | settings), seed=0,
    )
    seconds = history["epoch_seconds"]
    results.append({{
        **settings, "first_epoch_s": seconds[0],
        "images_per_s": {images} / float(np.median(seconds[1:])), "total_s": time.perf_counter() - start,
        "params": model.count_params(), "loss": history["loss"],
        "weights": float(sum(np.abs(w).sum() for w in model.get_weights())),
    }})
print("RESULT " + json.dumps(results))
"""


def run(configs: list[dict], args: argparse.Namespace, determinism: bool = False) -> list[dict]:
    code = RUN.format(
        determinism=determinism, images=args.images, configs=configs, epochs=args.epochs, batch=args.batch_size
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", VGGBOOK_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        sys.exit(f"the training run failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=float, nargs="+", default=[0.0625, 0.125, 0.25])
    parser.add_argument("--images", type=int, default=4000, help="training images per epoch")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {os.cpu_count()} CPUs")
    print(f"{args.images} images of 32×32 per epoch, batch {args.batch_size}, {args.epochs} epochs, Adam, He init\n")

    print("(a) training throughput")
    print(f"{'width':>7} {'batch norm':>10} {'params':>10} {'images/s':>9} {'1st epoch s':>12}")
    for row in run([{"width": w, "batch_norm": bn} for w in args.widths for bn in (False, True)], args):
        print(
            f"{row['width']:>7g} {'yes' if row['batch_norm'] else 'no':>10} {row['params']:>10,} "
            f"{row['images_per_s']:>9.0f} {row['first_epoch_s']:>12.1f}"
        )

    print("\n(b) op determinism, width 1/8 with batch norm")
    config = [{"width": 0.125, "batch_norm": True}]
    first, second = run(config, args)[0], run(config, args)[0]
    strict = run(config, args, determinism=True)[0]
    same = first["loss"] == second["loss"] and first["weights"] == second["weights"]
    print(f"two runs without enable_op_determinism: {'bit-identical' if same else 'DIFFERENT'} losses and weights")
    print(f"images/s without: {first['images_per_s']:.0f} and {second['images_per_s']:.0f}")
    print(
        f"images/s with enable_op_determinism: {strict['images_per_s']:.0f} "
        f"(same result as without: {strict['loss'] == first['loss'] and strict['weights'] == first['weights']})"
    )
    print("\n(c) the chapter's recipes, width 1/8, standardised inputs")
    paper = {
        "kernel_initializer": "glorot_uniform",
        "optimizer": {"class_name": "sgd", "config": {"momentum": 0.9}},
        "learning_rate": 1e-2,
        "batch_size": 256,
        "weight_decay": 5e-4,
        "dropout": 0.5,
    }
    recipes = {
        "Glorot, Adam 1e-3": {"kernel_initializer": "glorot_uniform"},
        "Glorot, Adam 1e-4": {"kernel_initializer": "glorot_uniform", "learning_rate": 1e-4},
        "He, Adam 1e-3": {},
        "He + batch norm, Adam 1e-3": {"batch_norm": True},
        "the paper's (SGD, batch 256)": paper,
    }
    configs = [{"width": 0.125, "preprocessing": "standardize"} | recipe for recipe in recipes.values()]
    rows = run(configs + configs, args)  # the five recipes, then the same five calls again, in one process
    print(f"{'recipe':<30} {'images/s':>9} {'1st epoch s':>12} {'again: 1st epoch s':>19} {'later epoch s':>14}")
    for name, row, again in zip(recipes, rows[: len(configs)], rows[len(configs) :], strict=True):
        later = args.images / row["images_per_s"]
        print(
            f"{name:<30} {row['images_per_s']:>9.0f} {row['first_epoch_s']:>12.1f} {again['first_epoch_s']:>19.1f} "
            f"{later:>14.1f}"
        )
    print(f"\nload average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
