"""What one Grad-CAM map of VGG16 costs (chapters "classifier", "training", "your_model"; issue #17's budget).

`vggbook.grad_cam` runs the network up to the explained layer outside the gradient tape and only the layers after
it on the tape, so the backward pass runs through the head alone. The way it did before, the whole network on a
tape that watches the input, makes TensorFlow's tape compute every convolution's gradients below the layer as
well (their kernels' too). This times, on full VGG16 at 224×224 (seeded random weights: the timings do not depend
on the values), the median of several calls after a warm-up: `grad_cam` for one image and one class, the same map
the whole-network way, and one plain forward pass; and checks that the two maps agree. The classifier chapter's
randomisation check alone computes 16 such maps. Prints, asserts nothing.
Run: `python benchmarks/grad_cam_speed.py [--repeats 7]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import timeit

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("VGGBOOK_OFFLINE", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import vggbook  # noqa: E402

LAYER, CLASS = "block5_conv3", 281


def whole_network_map(model: keras.Model, view: keras.Model, x: tf.Tensor) -> np.ndarray:
    """Grad-CAM with the whole network on the tape (the input watched), as `grad_cam` did before."""
    head = model.get_layer("predictions")
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        maps, h = view(x, training=False)
        score = (h @ head.kernel + head.bias)[0, CLASS]
    grads = tape.gradient(score, maps)
    cam = tf.nn.relu(tf.reduce_sum(maps * tf.reduce_mean(grads, axis=(1, 2), keepdims=True), axis=-1))[0]
    return (cam / tf.reduce_max(cam)).numpy() if float(tf.reduce_max(cam)) > 0 else cam.numpy()


def median_seconds(call, repeats: int) -> float:
    call()  # warm-up
    return statistics.median(timeit.repeat(call, number=1, repeat=repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {os.cpu_count()} CPUs")
    model = vggbook.build_vgg16(weights="random")
    x = tf.convert_to_tensor(vggbook.preprocess(vggbook.photo().image[None]))
    view = keras.Model(model.inputs[0], [model.get_layer(LAYER).output, model.get_layer("fc2").output])
    ours = vggbook.grad_cam(model, x.numpy(), class_index=CLASS, layer=LAYER)
    before = whole_network_map(model, view, x)
    print(f"the two maps differ by at most {np.abs(ours - before).max():.1e}")
    rows = {
        "grad_cam (head on the tape)": lambda: vggbook.grad_cam(model, x.numpy(), class_index=CLASS, layer=LAYER),
        "whole network on the tape": lambda: whole_network_map(model, view, x),
        "one forward pass": lambda: model(x, training=False),
    }
    for name, call in rows.items():
        print(f"{name:<30} {median_seconds(call, args.repeats):6.3f} s")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
