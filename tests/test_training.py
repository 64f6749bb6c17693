"""The offline shapes dataset, the training function and its input checks, the per-block activation
scale, and training under tf.distribute.MirroredStrategy (in a subprocess: logical CPU devices must be
configured before TensorFlow initialises, which in this pytest process has already happened)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import vggbook
from vggbook import training

TINY = {"width": 1 / 16, "batch_norm": True, "kernel_initializer": "he_normal"}


@pytest.fixture(scope="module")
def tiny_data() -> vggbook.ShapesData:
    return vggbook.shapes_dataset(40, 20, seed=3)


# --- the dataset --------------------------------------------------------------------------------


def test_shapes_dataset_is_deterministic_balanced_and_labelled(tiny_data: vggbook.ShapesData) -> None:
    again = vggbook.shapes_dataset(40, 20, seed=3)
    for name in ("x_train", "y_train", "x_val", "y_val", "mask_train", "mask_val"):
        np.testing.assert_array_equal(getattr(tiny_data, name), getattr(again, name), err_msg=name)
    assert tiny_data.x_train.shape == (40, 32, 32, 3) and tiny_data.x_train.dtype == np.uint8
    assert tiny_data.x_val.shape == (20, 32, 32, 3)
    assert tiny_data.mask_val.shape == (20, 32, 32) and tiny_data.mask_val.dtype == bool
    assert tiny_data.class_names == vggbook.SHAPES
    assert np.bincount(tiny_data.y_train).tolist() == [8] * 5
    assert np.bincount(tiny_data.y_val).tolist() == [4] * 5
    assert tiny_data.train[0] is tiny_data.x_train and tiny_data.validation[1] is tiny_data.y_val


def test_seeds_and_splits_differ(tiny_data: vggbook.ShapesData) -> None:
    other = vggbook.shapes_dataset(40, 20, seed=4)
    assert not np.array_equal(other.x_train, tiny_data.x_train)
    # validation is an independent stream, not a copy of the first training images
    assert not np.array_equal(tiny_data.x_val, tiny_data.x_train[:20])


def test_every_image_shows_its_shape_on_the_mask(tiny_data: vggbook.ShapesData) -> None:
    for image, mask in zip(tiny_data.x_train, tiny_data.mask_train, strict=True):
        assert 0.03 < mask.mean() < 0.6  # a shape, not a dot and not the whole image
        inside, outside = image[mask].astype(float).mean(0), image[~mask].astype(float).mean(0)
        assert np.linalg.norm(inside - outside) > 30  # the shape stands out from its background


def test_shapes_dataset_options_and_errors() -> None:
    small = vggbook.shapes_dataset(6, 0, size=16, classes=("circle", "star"), seed=1)
    assert small.x_train.shape == (6, 16, 16, 3) and small.x_val.shape == (0, 16, 16, 3)
    assert small.class_names == ("circle", "star") and set(small.y_train) == {0, 1}
    with pytest.raises(ValueError, match="subset"):
        vggbook.shapes_dataset(4, 4, classes=("circle", "hexagon"))
    with pytest.raises(ValueError, match="subset"):
        vggbook.shapes_dataset(4, 4, classes=())
    with pytest.raises(ValueError, match="n_train"):
        vggbook.shapes_dataset(0, 4)
    with pytest.raises(ValueError, match="size"):
        vggbook.shapes_dataset(4, 4, size=4)


# --- standardising the inputs ------------------------------------------------------------------


def test_standardize_gives_zero_mean_and_unit_variance_per_channel(tiny_data: vggbook.ShapesData) -> None:
    from vggbook.training import standardize

    train = standardize(tiny_data.x_train, tiny_data.x_train)
    assert train.dtype == np.float32 and train.shape == tiny_data.x_train.shape
    np.testing.assert_allclose(train.reshape(-1, 3).mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(train.reshape(-1, 3).std(axis=0), 1, atol=1e-4)
    # other images are scaled with the reference's statistics, not their own
    val = standardize(tiny_data.x_val, tiny_data.x_train)
    pixels = tiny_data.x_train.reshape(-1, 3).astype(float)
    expected = (tiny_data.x_val[3, 5, 7] - pixels.mean(axis=0)) / pixels.std(axis=0)
    np.testing.assert_allclose(val[3, 5, 7], expected, rtol=1e-5)
    # integer images of another type give the same result
    np.testing.assert_allclose(standardize(tiny_data.x_val, tiny_data.x_train.astype(np.int64)), val, rtol=1e-6)
    # one image (H, W, 3) works too, and any per-channel affine change of both cancels out
    one = standardize(tiny_data.x_val[0], tiny_data.x_train)
    np.testing.assert_allclose(one, val[0], rtol=1e-6)
    scale, shift = np.array([0.5, 2.0, 1.0]), np.array([10.0, -3.0, 0.0])
    again = standardize(tiny_data.x_val * scale + shift, tiny_data.x_train * scale + shift)
    np.testing.assert_allclose(again, val, atol=1e-4)


def test_standardize_errors() -> None:
    from vggbook.training import standardize

    images = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3))
    with pytest.raises(ValueError, match="RGB images"):
        standardize(images[..., :2], images)
    with pytest.raises(ValueError, match="RGB images"):
        standardize(images, images[..., 0])
    with pytest.raises(ValueError, match="at least one reference image"):
        standardize(images, images[:0])
    flat = images.copy()
    flat[..., 1] = 7
    with pytest.raises(ValueError, match="constant in a colour channel"):
        standardize(images, flat)


# --- activation scale per block ---------------------------------------------------------------


def test_block_activation_std_shows_the_glorot_collapse_and_its_fixes() -> None:
    x = vggbook.preprocess(vggbook.sample_image("chelsea", size=64))
    build = dict(include_top=False, input_shape=(64, 64, 3), width=0.25, seed=0)
    glorot = vggbook.block_activation_std(vggbook.build_vgg16(kernel_initializer="glorot_uniform", **build), x)
    he = vggbook.block_activation_std(vggbook.build_vgg16(kernel_initializer="he_normal", **build), x)
    bn_model = vggbook.build_vgg16(kernel_initializer="he_normal", batch_norm=True, **build)
    before = [v.numpy().copy() for v in bn_model.non_trainable_variables]
    bn = vggbook.block_activation_std(bn_model, x, training=True)
    assert list(glorot) == [f"block{b}" for b in range(1, 6)]
    assert glorot["block5"] < glorot["block1"] / 10  # Glorot: the scale collapses block by block
    assert he["block1"] / 3 < he["block5"] < he["block1"] * 3  # He: it is kept
    assert all(0.2 < v < 2 for v in bn.values())  # batch norm: about 1 everywhere
    for old, new in zip(before, bn_model.non_trainable_variables, strict=True):
        np.testing.assert_array_equal(old, new.numpy())  # the moving averages were restored


def test_block_activation_std_needs_vgg_blocks() -> None:
    import keras

    plain = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3, name="conv")])
    with pytest.raises(ValueError, match="blockN_pool"):
        vggbook.block_activation_std(plain, np.zeros((1, 8, 8, 3)))


# --- training ----------------------------------------------------------------------------------


def test_train_vgg_trains_vgg16_and_is_deterministic(tiny_data: vggbook.ShapesData) -> None:
    kwargs = dict(classes=5, epochs=2, batch_size=16, seed=7, **TINY)
    model, history = vggbook.train_vgg(tiny_data.train, tiny_data.validation, **kwargs)
    assert model.name == "vgg16_bn" and model.output_shape == (None, 5)
    assert len([layer for layer in model.layers if layer.name.endswith(("_conv1", "_conv2", "_conv3"))]) == 13
    assert [layer.name for layer in model.layers[-3:]] == ["fc1", "fc2", "predictions"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds"):
        assert len(history[key]) == 2, key
    assert all(np.isfinite(history["loss"]))
    again, history_again = vggbook.train_vgg(tiny_data.train, tiny_data.validation, **kwargs)
    assert history_again["loss"] == history["loss"]
    for a, b in zip(model.weights, again.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_train_vgg_restarts_the_network_it_traced_with_the_same_result(tiny_data: vggbook.ShapesData) -> None:
    # a call whose architecture and optimizer were traced before restarts that network (no new trace) and
    # returns what a first call returns, to the last bit, in a model of its own
    kwargs = dict(classes=5, epochs=2, batch_size=16, seed=3, **TINY)
    training._TRAINERS.clear()
    first, history = vggbook.train_vgg(tiny_data.train, tiny_data.validation, **kwargs)
    (trainer,) = training._TRAINERS.values()
    traced = trainer.train_function
    start = [w.numpy() for w in first.weights]
    other, _ = vggbook.train_vgg(  # another start, learning rate and batch order: the same network restarted
        tiny_data.train, **(kwargs | {"seed": 4, "learning_rate": 1e-2, "kernel_initializer": "glorot_uniform"})
    )
    again, history_again = vggbook.train_vgg(tiny_data.train, tiny_data.validation, **kwargs)
    (kept,) = training._TRAINERS.values()
    assert kept is trainer and trainer.train_function is traced
    assert len({id(first), id(other), id(again), id(trainer)}) == 4
    assert {k: v for k, v in history_again.items() if k != "epoch_seconds"} == {
        k: v for k, v in history.items() if k != "epoch_seconds"
    }
    for a, b, kept in zip(first.weights, again.weights, start, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        np.testing.assert_array_equal(a.numpy(), kept)  # the later calls left the first model alone
    assert not np.array_equal(other.weights[0].numpy(), first.weights[0].numpy())
    updates = 2 * -(-len(tiny_data.x_train) // 16)
    assert int(again.optimizer.iterations) == int(first.optimizer.iterations) == updates
    for a, b in zip(first.optimizer.variables, again.optimizer.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert float(other.optimizer.learning_rate) == pytest.approx(1e-2)
    assert float(again.optimizer.learning_rate) == pytest.approx(1e-3)
    # and the same as the network trained directly (a strategy passed in: nothing kept, nothing restarted)
    direct, history_direct = vggbook.train_vgg(
        tiny_data.train, tiny_data.validation, strategy=tf.distribute.get_strategy(), **kwargs
    )
    (kept,) = training._TRAINERS.values()
    assert kept is trainer
    assert history_direct["val_loss"] == history["val_loss"]
    for a, b in zip(first.weights, direct.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_train_vgg_restarts_sgd_with_weight_decay_too(tiny_data: vggbook.ShapesData) -> None:
    # the other optimizer `restart` takes, and the penalty that is part of the traced step
    kwargs = dict(classes=5, epochs=1, batch_size=16, optimizer={"class_name": "sgd", "config": {"momentum": 0.9}})
    kwargs |= dict(learning_rate=1e-2, weight_decay=5e-4, seed=5, **TINY)
    training._TRAINERS.clear()
    first, history = vggbook.train_vgg(tiny_data.train, **kwargs)
    vggbook.train_vgg(tiny_data.train, **(kwargs | {"seed": 6}))
    again, history_again = vggbook.train_vgg(tiny_data.train, **kwargs)
    assert len(training._TRAINERS) == 1 and history_again["loss"] == history["loss"]
    for a, b in zip(first.weights, again.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert float(sum(loss.numpy() for loss in again.losses)) == float(sum(loss.numpy() for loss in first.losses)) > 0


def test_train_vgg_without_validation_and_with_another_optimizer(tiny_data: vggbook.ShapesData) -> None:
    optimizer = {"class_name": "sgd", "config": {"momentum": 0.9}}
    model, history = vggbook.train_vgg(
        tiny_data.train, classes=5, epochs=1, batch_size=20, optimizer=optimizer, learning_rate=0.01, **TINY
    )
    assert "val_loss" not in history and len(history["loss"]) == 1
    assert type(model.optimizer).__name__ == "SGD" and model.optimizer.momentum == 0.9
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)


def test_train_vgg_standardize_makes_training_blind_to_the_input_scale(tiny_data: vggbook.ShapesData) -> None:
    # a per-channel affine change of every image (here, half the contrast plus 40) is undone by
    # standardising, so the same seed trains the same network; VGG's caffe preprocessing keeps it
    dimmed = (tiny_data.x_train * 0.5 + 40, tiny_data.y_train)
    kwargs = dict(classes=5, epochs=1, batch_size=20, seed=2, **TINY)
    for preprocessing, same in (("standardize", True), ("caffe", False)):
        base, history = vggbook.train_vgg(tiny_data.train, preprocessing=preprocessing, **kwargs)
        other, history_other = vggbook.train_vgg(dimmed, preprocessing=preprocessing, **kwargs)
        loss_gap = abs(history_other["loss"][0] - history["loss"][0])
        weight_gap = max(
            float(np.abs(a.numpy() - b.numpy()).max()) for a, b in zip(base.weights, other.weights, strict=True)
        )
        if same:  # equal up to float32 rounding
            assert loss_gap < 1e-4 and weight_gap < 1e-3, (loss_gap, weight_gap)
        else:
            assert loss_gap > 1e-2 and weight_gap > 1e-1, (loss_gap, weight_gap)


def test_train_vgg_with_the_papers_dropout_and_weight_decay(tiny_data: vggbook.ShapesData) -> None:
    paper = dict(optimizer={"class_name": "sgd", "config": {"momentum": 0.9}}, learning_rate=1e-2)
    model, history = vggbook.train_vgg(
        tiny_data.train, classes=5, epochs=1, batch_size=20, weight_decay=5e-4, dropout=0.5, **paper, **TINY
    )
    names = [layer.name for layer in model.layers]
    assert names[-5:] == ["fc1", "fc1_dropout", "fc2", "fc2_dropout", "predictions"]
    assert {model.get_layer(n).rate for n in ("fc1_dropout", "fc2_dropout")} == {0.5}
    assert all(np.isfinite(history["loss"]))
    # dropout acts in training only: inference is deterministic, two training passes differ
    x = vggbook.standardize(tiny_data.x_val[:4], tiny_data.x_train) * 50
    np.testing.assert_array_equal(model(x, training=False).numpy(), model(x, training=False).numpy())
    assert not np.allclose(model(x, training=True).numpy(), model(x, training=True).numpy())
    # weight decay: an L2 penalty of 5e-4 / 2 · ‖w‖² on each of the 16 kernels, biases and batch norm untouched
    kernels = [layer.kernel for layer in model.layers if hasattr(layer, "kernel")]
    assert len(kernels) == 16 and len(model.losses) == 16
    expected = sum(2.5e-4 * float(np.sum(k.numpy().astype(np.float64) ** 2)) for k in kernels)
    assert float(sum(loss.numpy() for loss in model.losses)) == pytest.approx(expected, rel=1e-4)
    # and it pulls the weights towards zero: a strong decay leaves smaller kernels than none
    settings = dict(classes=5, epochs=2, batch_size=20, **paper, **TINY)
    decayed, _ = vggbook.train_vgg(tiny_data.train, weight_decay=5.0, **settings)
    free, _ = vggbook.train_vgg(tiny_data.train, weight_decay=0.0, **settings)
    assert free.losses == []
    assert squared_kernels(decayed) < 0.9 * squared_kernels(free)


def squared_kernels(model) -> float:
    """‖w‖² summed over every convolution and dense kernel of `model`."""
    return sum(float(np.sum(layer.kernel.numpy() ** 2)) for layer in model.layers if hasattr(layer, "kernel"))


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make building a model fail: an input error must be raised before any model exists."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was built before the input was checked")

    monkeypatch.setattr("vggbook.training.build_vgg", refuse)


@pytest.mark.usefixtures("no_training")
@pytest.mark.parametrize(
    ("train", "validation", "classes", "message"),
    [
        ((np.zeros((0, 32, 32, 3), np.uint8), np.zeros(0, int)), None, 5, "training set is empty"),
        ((np.zeros((4, 32, 32, 3), np.uint8), np.zeros(3, int)), None, 5, "4 images but 3 labels"),
        ((np.zeros((4, 32, 32, 3), np.uint8), np.arange(4)), None, 3, r"labels run from 0 to 3.*classes=3"),
        ((np.zeros((4, 32, 32, 3), np.uint8), np.array([0, 1, -1, 2])), None, 5, "labels run from -1"),
        ((np.zeros((4, 32, 32, 3), np.uint8), np.zeros(4)), None, 5, "integer class indices"),
        ((np.zeros((4, 32, 32, 3), np.uint8), np.eye(4, dtype=int)), None, 4, "integer class indices"),
        ((np.zeros((4, 32, 32), np.uint8), np.zeros(4, int)), None, 5, r"RGB batch \(N, H, W, 3\)"),
        (
            (np.zeros((4, 32, 32, 3), np.uint8), np.zeros(4, int)),
            (np.zeros((2, 32, 32, 3), np.uint8), np.zeros(3, int)),
            5,
            "validation set has 2 images but 3 labels",
        ),
        (
            (np.zeros((4, 32, 32, 3), np.uint8), np.zeros(4, int)),
            (np.zeros((2, 32, 32, 3), np.uint8), np.array([0, 7])),
            5,
            r"validation labels run from 0 to 7",
        ),
        (
            (np.zeros((4, 32, 32, 3), np.uint8), np.zeros(4, int)),
            (np.zeros((2, 16, 16, 3), np.uint8), np.zeros(2, int)),
            5,
            "validation images are",
        ),
        (
            (np.zeros((4, 32, 32, 3), np.uint8), np.zeros(4, int)),
            (np.zeros((0, 32, 32, 3), np.uint8), np.zeros(0, int)),
            5,
            "validation set is empty",
        ),
    ],
    ids=[
        "empty",
        "count-mismatch",
        "head-too-small",
        "negative-label",
        "float-labels",
        "one-hot-labels",
        "not-rgb",
        "val-count-mismatch",
        "val-label-outside-head",
        "val-other-size",
        "val-empty",
    ],
)
def test_bad_input_fails_before_training(train, validation, classes, message) -> None:
    with pytest.raises(ValueError, match=message):
        vggbook.train_vgg(train, validation, classes=classes, epochs=1, **TINY)


@pytest.mark.usefixtures("no_training")
def test_bad_settings_fail_before_training(tiny_data: vggbook.ShapesData) -> None:
    with pytest.raises(ValueError, match="classes"):
        vggbook.train_vgg(tiny_data.train, classes=0)
    with pytest.raises(ValueError, match="epochs and batch_size"):
        vggbook.train_vgg(tiny_data.train, classes=5, epochs=0)
    with pytest.raises(ValueError, match="epochs and batch_size"):
        vggbook.train_vgg(tiny_data.train, classes=5, batch_size=0)
    for bad in (0, -1e-3, float("nan")):
        with pytest.raises(ValueError, match="learning_rate must be a positive number"):
            vggbook.train_vgg(tiny_data.train, classes=5, learning_rate=bad)
    with pytest.raises(ValueError, match=r"preprocessing must be one of \('caffe', 'standardize'\), got 'imagenet'"):
        vggbook.train_vgg(tiny_data.train, classes=5, preprocessing="imagenet")
    for bad in (-5e-4, float("inf")):
        with pytest.raises(ValueError, match="weight_decay must be a number ≥ 0"):
            vggbook.train_vgg(tiny_data.train, classes=5, weight_decay=bad)
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"dropout must be a rate in \[0, 1\)"):
            vggbook.train_vgg(tiny_data.train, classes=5, dropout=bad)


# --- scaling out -------------------------------------------------------------------------------

MIRRORED = textwrap.dedent(
    """
    import json
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import vggbook

    data = vggbook.shapes_dataset(48, 16, seed=5)
    settings = dict(classes=5, epochs=2, batch_size=16, width=1 / 16, batch_norm=True, kernel_initializer="he_normal")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    model, history = vggbook.train_vgg(data.train, data.validation, strategy=strategy, **settings)
    alone, history_alone = vggbook.train_vgg(data.train, data.validation, **settings)
    start = vggbook.build_vgg("D", input_shape=(32, 32, 3), classes=5, width=1 / 16, batch_norm=True,
                              kernel_initializer="he_normal", seed=0)
    variables = {}
    for variable, single, initial in zip(model.weights, alone.weights, start.weights, strict=True):
        replicas = [np.asarray(r) for r in strategy.experimental_local_results(variable.value)]
        reference = single.numpy()
        variables[variable.path] = {
            "copies": len(replicas),
            "spread": max(float(np.abs(r - replicas[0]).max()) for r in replicas),
            "moved": float(np.abs(replicas[0] - initial.numpy()).max()),
            "vs_one_device": float(np.abs(replicas[0] - reference).max() / max(np.abs(reference).max(), 1e-6)),
        }
    print("RESULT " + json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "devices": [str(d) for d in strategy.extended.worker_devices],
        "variables": variables,
        "loss": history["loss"],
        "loss_one_device": history_alone["loss"],
    }))
    """
)


def test_training_under_mirrored_strategy_keeps_the_replicas_in_agreement() -> None:
    done = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True, timeout=600, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT ") :])
    variables = result["variables"]
    assert result["replicas"] == 2 and len(result["devices"]) == 2
    # every variable, the batch-norm moving averages included, lives on both CPUs with equal values
    assert {v["copies"] for v in variables.values()} == {2}
    assert {path: v["spread"] for path, v in variables.items() if v["spread"] > 0} == {}
    kernels = [v for path, v in variables.items() if path.endswith("kernel")]
    assert len(kernels) == 16 and all(v["moved"] > 0 for v in kernels)  # the steps did train
    # two replicas with half a batch each train like one device with the whole batch, up to rounding
    np.testing.assert_allclose(result["loss"], result["loss_one_device"], rtol=1e-3)
    assert max(v["vs_one_device"] for v in variables.values()) < 1e-3  # relative to each variable's size
