"""Stand-ins for Keras' ImageNet files, for tests and benchmarks that must run the pretrained branch offline.

`write_standin_folder(folder)` writes, under Keras' own file names, what a `VGGBOOK_WEIGHTS_DIR` folder holds:
- `vgg16_weights_tf_dim_ordering_tf_kernels.h5` (VGG16 with its head, 553 MB) and `…_notop.h5` (the 13
  convolutions, 58.9 MB), in the legacy HDF5 layout of Keras' hosted files, which
  `keras.applications.VGG16(weights=…)` and `vggbook.build_vgg16(weights=…)` read
  (keras/src/legacy/saving/legacy_h5_format.py): root attribute `layer_names` (every layer, `input_1` first),
  one group per layer whose attribute `weight_names` lists its datasets `<layer>_W_1:0` (kernel) and
  `<layer>_b_1:0` (bias), empty for layers without weights. The loader matches layers by order, not by name.
- `imagenet_class_index.json`: 1000 classes `{"0": [wnid, name], …}` whose names are as long as ImageNet's.

The numbers are seeded random, NOT ImageNet's: kernels drawn like He initialisation (normal, std
sqrt(2 / fan_in)) so that activations keep their scale through the 16 layers (std 32 after block1_conv1,
74 after fc2 on the cat photo), biases small; the `predictions` kernel 20 times smaller, so that the
logits of a photo have a std of 6–11 and the softmax is spread like a trained network's (top class at
0.47–0.997 on the four sample photos) instead of one-hot. Layer k gets its
own generator (`default_rng([seed, k])`), so the no-top file holds exactly the convolutions of the full one.
Files are written a slab at a time (the 411 MB `fc1` kernel in 16 MB pieces): memory stays small.
Independent of vggbook on purpose: the layout is Keras' (keras/src/applications/vgg16.py), not ours.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

FULL_NAME = "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
NOTOP_NAME = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
CLASS_INDEX_NAME = "imagenet_class_index.json"
LOGIT_SCALE = 1 / 20  # of the predictions kernel's He std (see above)
ROWS_PER_SLAB = 1024  # rows of a kernel drawn and written at a time (fc1: 1024 × 4096 float32 = 16 MB)

# Keras' VGG16, layer by layer: (name, kernel shape) for layers with weights, (name, None) for the others.
VGG16_CONV = [
    ("block1_conv1", (3, 3, 3, 64)),
    ("block1_conv2", (3, 3, 64, 64)),
    ("block1_pool", None),
    ("block2_conv1", (3, 3, 64, 128)),
    ("block2_conv2", (3, 3, 128, 128)),
    ("block2_pool", None),
    ("block3_conv1", (3, 3, 128, 256)),
    ("block3_conv2", (3, 3, 256, 256)),
    ("block3_conv3", (3, 3, 256, 256)),
    ("block3_pool", None),
    ("block4_conv1", (3, 3, 256, 512)),
    ("block4_conv2", (3, 3, 512, 512)),
    ("block4_conv3", (3, 3, 512, 512)),
    ("block4_pool", None),
    ("block5_conv1", (3, 3, 512, 512)),
    ("block5_conv2", (3, 3, 512, 512)),
    ("block5_conv3", (3, 3, 512, 512)),
    ("block5_pool", None),
]
VGG16_HEAD = [("flatten", None), ("fc1", (25088, 4096)), ("fc2", (4096, 4096)), ("predictions", (4096, 1000))]

# Real ImageNet class names of 15–30 characters (the longest is 30), and a few short ones.
LONG_NAMES = [
    "bulletproof_vest",
    "chocolate_sauce",
    "American_Staffordshire_terrier",
    "German_short-haired_pointer",
    "Greater_Swiss_Mountain_dog",
    "West_Highland_white_terrier",
    "soft-coated_wheaten_terrier",
    "black-and-tan_coonhound",
    "Chesapeake_Bay_retriever",
    "Staffordshire_bullterrier",
    "Rhodesian_ridgeback",
    "Bernese_mountain_dog",
    "Old_English_sheepdog",
    "entertainment_center",
    "red-breasted_merganser",
    "American_black_bear",
    "leatherback_turtle",
    "pencil_sharpener",
    "shopping_basket",
    "sewing_machine",
    "three-toed_sloth",
    "yellow_lady's_slipper",
    "tench",
    "goldfish",
    "tabby",
    "Egyptian_cat",
    "espresso",
    "space_shuttle",
    "rocking_chair",
]


def legacy_layers(include_top: bool) -> list[tuple[str, tuple[int, ...] | None]]:
    """The layers of Keras' VGG16 file in order, `input_1` first: (name, kernel shape or None)."""
    return [("input_1", None), *VGG16_CONV, *(VGG16_HEAD if include_top else [])]


def write_vgg16_standin(path: str | Path, *, include_top: bool, seed: int = 0) -> Path:
    """Write a stand-in for Keras' VGG16 ImageNet file (with or without its head) at `path`."""
    path = Path(path)
    layers = legacy_layers(include_top)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([name.encode() for name, _ in layers])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        k = 0  # index of the layer among those with weights: its generator's key
        for name, shape in layers:
            group = f.create_group(name)
            if shape is None:
                group.attrs["weight_names"] = np.array([], dtype="S")
                continue
            rng = np.random.default_rng([seed, k])
            k += 1
            kernel_name, bias_name = f"{name}_W_1:0", f"{name}_b_1:0"
            group.attrs["weight_names"] = np.array([kernel_name.encode(), bias_name.encode()])
            std = np.sqrt(2.0 / np.prod(shape[:-1]))  # He: fan_in = every input of one output unit
            std = np.float32(std * (LOGIT_SCALE if name == "predictions" else 1.0))
            kernel = group.create_dataset(kernel_name, shape=shape, dtype="float32")
            for start in range(0, shape[0], ROWS_PER_SLAB):
                rows = min(ROWS_PER_SLAB, shape[0] - start)
                slab = rng.standard_normal((rows, *shape[1:]), dtype=np.float32)
                slab *= std
                kernel[start : start + rows] = slab
            group.create_dataset(bias_name, data=rng.standard_normal(shape[-1], dtype=np.float32) * np.float32(0.01))
    return path


def class_names() -> list[str]:
    """The stand-in's 1000 class names: ImageNet names, the first time as they are, then numbered
    (`bulletproof_vest_2`) so that every name is distinct and none is longer than 30 characters."""
    names = []
    for i in range(1000):
        base = LONG_NAMES[i % len(LONG_NAMES)]
        names.append(base if i < len(LONG_NAMES) else f"{base[:26]}_{i // len(LONG_NAMES) + 1}")
    return names


def write_class_index_standin(path: str | Path) -> Path:
    """Write a stand-in for Keras' `imagenet_class_index.json`: {"0": ["n00000000", name], …, "999": …}."""
    path = Path(path)
    index = {str(i): [f"n{i:08d}", name] for i, name in enumerate(class_names())}
    path.write_text(json.dumps(index))
    return path


def write_standin_folder(folder: str | Path, *, seed: int = 0) -> Path:
    """Write the three stand-in files into `folder` (made if missing) under Keras' names; returns `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_vgg16_standin(folder / FULL_NAME, include_top=True, seed=seed)
    write_vgg16_standin(folder / NOTOP_NAME, include_top=False, seed=seed)
    write_class_index_standin(folder / CLASS_INDEX_NAME)
    return folder
