"""Memory TensorFlow keeps per traced training step (chapter "transfer", `vggbook.restart`): VGG16's block 5 under
a dense head, trained for one epoch on stored block4_pool-sized maps, four times over — (1) a new network compiled
each time, (2) the same network compiled anew each time, (3) the same network compiled once and re-started with
`vggbook.restart`. Prints the process's resident memory after each run (each network deleted and collected);
asserts nothing. Run: PYTHONPATH=src python benchmarks/retrace_memory.py
"""

from __future__ import annotations

import gc
import resource
import sys

import keras
import numpy as np

import vggbook


def resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def network(base: keras.Model) -> keras.Model:
    head = keras.Sequential(
        [keras.Input((3, 3, 512)), keras.layers.Flatten(), keras.layers.Dense(256), keras.layers.Dense(4)]
    )
    model = keras.Sequential([vggbook.clone_top(base, "block5_conv1"), head])
    return model


def compile_(model: keras.Model) -> keras.Model:
    model.compile(keras.optimizers.Adam(1e-5), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def main(runs: int = 4) -> None:
    base = vggbook.build_vgg16(include_top=False, input_shape=(96, 96, 3))
    x = np.random.default_rng(0).random((64, 6, 6, 512), np.float32)
    y = np.arange(64) % 4
    kept = compile_(network(base))
    start = kept.get_weights()
    for how in ("new network, compiled", "same network, compiled anew", "same network, vggbook.restart"):
        sizes = []
        for _ in range(runs):
            model = compile_(network(base)) if how.startswith("new") else kept
            if how == "same network, compiled anew":
                compile_(model)
            if how.endswith("restart"):
                vggbook.restart(model, start)
            model.fit(x, y, epochs=1, batch_size=8, verbose=0)
            del model
            gc.collect()
            sizes.append(resident_mib())
        steps = np.diff(sizes)
        print(f"{how:>32}: MiB after each run {[round(s) for s in sizes]}, +{steps.mean():.0f} per run after the first")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4)
