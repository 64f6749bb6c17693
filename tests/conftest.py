"""Shared test set-up: offline, an empty private Keras home, the Agg backend, small models.

The environment is set in `pytest_configure`, before any test module imports Keras, so that
neither Keras (which reads `$KERAS_HOME/keras.json` at import) nor vggbook's weights policy
ever sees the developer's real `~/.keras`, and "auto" weights never touch the network.
Notebooks that nbmake runs in the same session inherit KERAS_HOME and VGGBOOK_OFFLINE.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import matplotlib
import pytest

# Agg for this process only. Not via the MPLBACKEND variable: the notebooks nbmake runs in the same
# session would inherit it, and ipykernel only picks its inline backend when MPLBACKEND is unset.
matplotlib.use("Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_SAVED_ENV: dict[str, str | None] = {}
_KERAS_HOME: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    """Point Keras at a fresh, empty home, switch vggbook's downloads off and the default photo back to the
    cat for the session."""
    home = tempfile.mkdtemp(prefix="vggbook-keras-home-")
    _KERAS_HOME.append(home)
    for key, value in (("KERAS_HOME", home), ("VGGBOOK_OFFLINE", "1")):
        _SAVED_ENV[key] = os.environ.get(key)
        os.environ[key] = value
    # the chapters' default photo is the cat, whatever the developer's shell says; tests that run chapters
    # on another photo set VGGBOOK_PHOTO for their own kernels
    _SAVED_ENV["VGGBOOK_PHOTO"] = os.environ.pop("VGGBOOK_PHOTO", None)
    if os.environ.get("VGGBOOK_BUILD_CACHE"):
        _share_executions_with_the_site_build(os.environ["VGGBOOK_BUILD_CACHE"])


def cache_executed_notebook(cache_dir: str | os.PathLike, path: str | os.PathLike, executed, seconds: float) -> None:
    """Store `executed` (the chapter at `path`, run) in the Jupyter cache `cache_dir`, as `jupyter-book build`
    would after running it: the chapter as committed with the run's outputs (its cells' metadata as in the
    file, which the cache's key includes), so that the build matches it instead of running it again."""
    import fcntl

    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    notebook = nbformat.read(str(path), nbformat.NO_CONVERT)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    ran = [cell for cell in executed.cells if cell.cell_type == "code"]
    if [c.source for c in code] != [c.source for c in ran]:
        raise ValueError(f"{path}: the executed notebook is not the chapter as committed")
    for cell, done in zip(code, ran, strict=True):
        cell.outputs, cell.execution_count = done.outputs, done.execution_count
    os.makedirs(cache_dir, exist_ok=True)
    with open(os.path.join(cache_dir, ".vggbook.lock"), "w") as lock:  # pytest-xdist workers share the cache
        fcntl.flock(lock, fcntl.LOCK_EX)
        get_cache(str(cache_dir)).cache_notebook_bundle(
            CacheBundleIn(notebook, str(path), data={"execution_seconds": seconds}),
            check_validity=False,
            overwrite=True,
        )


def _share_executions_with_the_site_build(cache_dir: str) -> None:
    """Every chapter nbmake runs without error goes into the site build's execution cache (`tasks.py`'s
    `share_executions_with_book`, which CI asks for with VGGBOOK_BUILD_CACHE)."""
    import time

    import nbmake.pytest_items

    class CachingRun(nbmake.pytest_items.NotebookRun):
        def execute(self):
            start = time.perf_counter()
            result = super().execute()
            if result.error is None:
                cache_executed_notebook(cache_dir, self.filename, result.nb, time.perf_counter() - start)
            return result

    nbmake.pytest_items.NotebookRun = CachingRun


def pytest_unconfigure(config: pytest.Config) -> None:
    for key, value in _SAVED_ENV.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    for home in _KERAS_HOME:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(autouse=True, scope="session")
def _offline_session() -> None:
    """Fail loudly if something reset the session's offline environment."""
    assert os.environ.get("VGGBOOK_OFFLINE") == "1"
    assert os.environ.get("KERAS_HOME") in _KERAS_HOME


@pytest.fixture(autouse=True)
def _close_figures():
    """Close every Matplotlib figure a test leaves open."""
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


@pytest.fixture(scope="session")
def vgg16_full():
    """The full VGG16 with its head at 224×224 (138,357,544 parameters), built once per session.

    Zero-initialised, because only its structure is read (counts, shapes, the layer table):
    drawing 138 M random numbers would cost seconds and prove nothing. Do not change its weights.
    """
    import vggbook

    return vggbook.build_vgg16(kernel_initializer="zeros")


@pytest.fixture(scope="session")
def vgg16_small():
    """VGG16 at width 1/8 on 32×32 inputs without the head: every layer name, tiny and fast."""
    import vggbook

    return vggbook.build_vgg16(width=0.125, input_shape=(32, 32, 3), include_top=False, seed=0)


@pytest.fixture(scope="session")
def vgg16_small_224():
    """VGG16 at width 1/8 on 224×224 inputs without the head: real spatial sizes, few channels."""
    import vggbook

    return vggbook.build_vgg16(width=0.125, include_top=False, seed=0)


@pytest.fixture(scope="session")
def standin_weights_dir(tmp_path_factory):
    """A `VGGBOOK_WEIGHTS_DIR` folder of stand-ins for Keras' ImageNet files (tests/standin.py: seeded random
    numbers in Keras' layout under Keras' names, VGG16 with and without its head, and a class index; 612 MB),
    written once per session (about 3 s) and removed after it. Setting the variable is up to each test."""
    import standin

    folder = standin.write_standin_folder(tmp_path_factory.mktemp("standin-weights"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
