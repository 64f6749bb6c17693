"""Seconds of the transfer chapter's steps on this CPU (chapter "transfer"): extracting the frozen base's
features, and one epoch of each way that trains with Keras — (b) a dense head on stored block5_pool maps,
(c) block 5 and the head on stored block4_pool maps, (d) the whole network from scratch. Prints, asserts
nothing. Run: PYTHONPATH=src python benchmarks/transfer_speed.py
"""

from __future__ import annotations

import time

import keras
import numpy as np

import vggbook

SIZE, BATCH = 96, 8  # the chapter's image size and batch


def head(shape: tuple[int, ...], classes: int) -> keras.Model:
    return keras.Sequential(
        [
            keras.Input(shape),
            keras.layers.Flatten(),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(classes, activation="softmax"),
        ]
    )


def epoch_seconds(model: keras.Model, x: np.ndarray, y: np.ndarray, epochs: int = 2) -> tuple[float, float]:
    """(first epoch, later epochs' mean): the first includes building the training step."""
    model.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy")
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0)
        times.append(time.perf_counter() - start)
    return times[0], float(np.mean(times[1:]))


def main() -> None:
    keras.utils.set_random_seed(0)
    data = vggbook.transfer_dataset(64, 32, 300, size=SIZE, seed=0)
    base = vggbook.build_vgg16(weights="random", include_top=False, input_shape=(SIZE, SIZE, 3))
    x = vggbook.preprocess(np.concatenate([data.x_train, data.x_val, data.x_test]))
    start = time.perf_counter()
    maps = vggbook.pooled_features(base, x, [f"block{b}_pool" for b in range(1, 6)], pool=False)
    print(f"feature extraction, {len(x)} images {SIZE}×{SIZE}: {time.perf_counter() - start:.1f} s")
    n, k = len(data.y_train), len(data.class_names)
    p4, p5 = maps["block4_pool"][:n], maps["block5_pool"][:n]
    ways = {
        "(b) head on stored block5_pool": (head(p5.shape[1:], k), p5),
        "(c) block 5 + head on stored block4_pool": (
            keras.Sequential([vggbook.clone_top(base, "block5_conv1"), head(p5.shape[1:], k)]),
            p4,
        ),
        "(d) whole network from scratch": (keras.Sequential([base, head(p5.shape[1:], k)]), x[:n]),
    }
    for name, (model, inputs) in ways.items():
        first, later = epoch_seconds(model, inputs, data.y_train)
        print(f"{name}: first epoch {first:.2f} s, next epoch {later:.2f} s ({n} images, batch {BATCH})")


if __name__ == "__main__":
    main()
