"""vggbook: the helper package of the executable book "VGG16 from Scratch".

Each public function's docstring names the chapter that explains it.
"""

import os

# Keep TensorFlow's C++ start-up chatter (CUDA probes, CPU feature notes) out of the chapters.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from vggbook import blocks, interpret, inversion, responses, training, transfer
from vggbook.architecture import VGG_CONFIGS, block_layers, build_vgg, build_vgg16, layer_table, parse_conv
from vggbook.blocks import *  # noqa: F403  (its __all__ lists what the block chapters share)
from vggbook.explorer import UnitExplorer, unit_explorer
from vggbook.features import default_layers, ensure_built, feature_maps
from vggbook.images import (
    DEFAULT_PHOTO,
    GALLERY,
    SAMPLES,
    Photo,
    PhotoError,
    deprocess,
    load_image,
    photo,
    preprocess,
    resize_and_crop,
    sample_image,
)
from vggbook.interpret import *  # noqa: F403  (its __all__ lists the interpretation tools)
from vggbook.inversion import *  # noqa: F403  (its __all__ lists feature inversion's tools)
from vggbook.plotting import (
    PAGE_WIDTH,
    draw_box,
    layer_table_view,
    numbered_table,
    overlay_heatmap,
    plot_architecture,
    plot_feature_maps,
    plot_filters,
    plot_preprocessing,
    plot_strongest,
    rank_channels,
    receptive_field_box,
)
from vggbook.responses import *  # noqa: F403  (its __all__ lists the response measurements)
from vggbook.training import *  # noqa: F403  (its __all__ lists the training tools)
from vggbook.transfer import *  # noqa: F403  (its __all__ lists the transfer chapter's tools)
from vggbook.weights import WeightsError, describe_weights, imagenet_weights_path, is_pretrained, load_weights_file

__version__ = "0.1.0"
__all__ = [
    "DEFAULT_PHOTO",
    "PAGE_WIDTH",
    "VGG_CONFIGS",
    "GALLERY",
    "SAMPLES",
    "Photo",
    "PhotoError",
    "UnitExplorer",
    "WeightsError",
    "block_layers",
    "build_vgg",
    "build_vgg16",
    "default_layers",
    "deprocess",
    "describe_weights",
    "draw_box",
    "ensure_built",
    "feature_maps",
    "imagenet_weights_path",
    "is_pretrained",
    "layer_table",
    "layer_table_view",
    "load_image",
    "load_weights_file",
    "numbered_table",
    "overlay_heatmap",
    "parse_conv",
    "photo",
    "plot_architecture",
    "plot_feature_maps",
    "plot_filters",
    "plot_preprocessing",
    "plot_strongest",
    "preprocess",
    "rank_channels",
    "receptive_field_box",
    "resize_and_crop",
    "sample_image",
    "unit_explorer",
    *blocks.__all__,
    *interpret.__all__,
    *inversion.__all__,
    *responses.__all__,
    *training.__all__,
    *transfer.__all__,
]
