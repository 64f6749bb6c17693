"""Every chapter once more: on the pretrained branch, on another photo, alone in a folder, optionally in another
Python (Colab's runtime).

`pytest --nbmake book/` runs the chapters on the random branch (no ImageNet weights offline) with the cat.
Readers in Colab and on the published site take the other branch, with Keras' ImageNet weights, and readers
bring their own photos. Here each chapter is copied alone into an empty temporary folder and runs top to bottom
there in a fresh kernel (nbclient, as nbmake does) with
- `VGGBOOK_WEIGHTS_DIR` naming a folder of stand-in files in Keras' layout (tests/standin.py, written once per
  session), still offline; a chapter that asks for ImageNet weights must really take that branch: a weights
  line it prints names the folder, and none says the ImageNet weights were unavailable;
- `VGGBOOK_PHOTO` naming another photo (scikit-image's motorcycle, the left view of its stereo pair, 741×500:
  not square, not a cat, not one of the book's sample photos, written as a JPEG once per session); a chapter
  that calls `vggbook.photo()` must show that photo in a figure and the cat in none (`figures_show`: the
  photo's crop found by normalised cross-correlation in the figures' pixels);
- the kernel in this environment, or with `VGGBOOK_KERNEL_PYTHON` set (CI: .ci/colab.py's environment pinned
  to Colab's runtime, the helper installed `--no-deps` as the chapters' first cell does) in that Python.
A chapter that neither asks for ImageNet weights nor calls `vggbook.photo()` would repeat nbmake's run exactly
in this environment and is skipped here, with that reason; in another Python it runs, since the runtime differs.
"Asks" and "calls" are read from the chapter's code (parsed, not run): a call with `weights="auto"` or
`"imagenet"` (or a weights value that is not a constant, to be safe), or a call of a vggbook function whose
`weights` default is one of them (e.g. `vggbook.open_block(1)`) without `weights=` set otherwise.

Each test prints the chapter's time and its kernel's peak memory (`pytest -s` or `-rP` shows them; the
memory benchmark is benchmarks/book_speed.py). Chapters are found in book/ when the tests are collected.
"""

from __future__ import annotations

import ast
import base64
import importlib
import inspect
import json
import os
import pkgutil
import re
import shutil
import sys
import time
from pathlib import Path

import cv2
import nbformat
import numpy as np
import psutil
import pytest
import skimage.data
from IPython.core.inputtransformer2 import TransformerManager
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

import vggbook

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = sorted(BOOK.glob("*.ipynb"))
IMAGENET = ("auto", "imagenet")
# s for one cell: catches a hung cell, not a slow one (the training chapter's five-recipe cell ran past 600 s on
# this 2-core machine under a load average of 17)
CELL_TIMEOUT = 1800
STARTUP_TIMEOUT = 120  # s for a kernel to start on a loaded 2-core machine
KERNEL_PYTHON = os.environ.get("VGGBOOK_KERNEL_PYTHON")  # another Python for the kernels (CI: Colab's runtime)
OTHER_PHOTO = "motorcycle"  # scikit-image's stereo_motorcycle, left view, 741×500: not in vggbook.SAMPLES
FOUND, ABSENT = 0.8, 0.6  # figures_show: a shown photo matches at 0.9 or more, an unrelated one at about 0.3


def imagenet_by_default() -> set[str]:
    """Names of vggbook's functions (in any of its modules) whose `weights` parameter defaults to "auto"
    or "imagenet"."""
    names = set()
    for module in pkgutil.iter_modules(vggbook.__path__, prefix="vggbook."):
        for name, function in inspect.getmembers(importlib.import_module(module.name), inspect.isfunction):
            parameter = inspect.signature(function).parameters.get("weights")
            if not name.startswith("_") and parameter is not None and parameter.default in IMAGENET:
                names.add(name)
    return names


def asks_for_imagenet(notebook: nbformat.NotebookNode, by_default: set[str] | None = None) -> str | None:
    """The first call in the chapter's code that asks for ImageNet weights (as source text), or None.
    `by_default`: names of functions whose weights default to ImageNet's (vggbook's, unless given)."""
    by_default = imagenet_by_default() if by_default is None else by_default
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        source = TransformerManager().transform_cell(cell.source)  # `%pip …` lines into plain Python
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.Call):
                continue
            callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            weights = next((k.value for k in node.keywords if k.arg == "weights"), None)
            if weights is None:
                asks = callee in by_default
            else:
                asks = not isinstance(weights, ast.Constant) or weights.value in IMAGENET
            if asks:
                return ast.get_source_segment(source, node)
    return None


def calls_photo(notebook: nbformat.NotebookNode) -> bool:
    """Whether the chapter's code calls `photo(…)` (vggbook's, by attribute or by name): the reader's photo."""
    for cell in notebook.cells:
        if cell.cell_type == "code":
            for node in ast.walk(ast.parse(TransformerManager().transform_cell(cell.source))):
                if isinstance(node, ast.Call):
                    callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                    if callee == "photo":
                        return True
    return False


def figure_images(notebook: nbformat.NotebookNode) -> list[np.ndarray]:
    """Every PNG the chapter's code cells output, grey: figures, and images inside HTML outputs (the explorer)."""
    encoded = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = output.get("data", {})
            if "image/png" in data:
                encoded.append(data["image/png"])
            encoded += re.findall(r"data:image/png;base64,([A-Za-z0-9+/=\s]+)", str(data.get("text/html", "")))
    images = []
    for text in encoded:
        image = cv2.imdecode(np.frombuffer(base64.b64decode(text), np.uint8), cv2.IMREAD_GRAYSCALE)
        if image is not None:
            images.append(image)
    return images


def figures_show(images: list[np.ndarray], photo: np.ndarray) -> float:
    """How clearly the RGB `photo` (a 224×224 crop) appears in any of the grey `images`: the highest normalised
    cross-correlation (OpenCV's TM_CCOEFF_NORMED) of the photo, resized to 40–400 pixels, anywhere in them.
    Sizes are tried 12 px apart, then pixel by pixel around each figure's best: a photo with fine detail (the
    motorcycle) drawn 4 px off the coarse grid scores only about 0.7. A figure drawing the photo at any of those
    sizes scores 0.9 or more; other pictures about 0.3."""
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)

    def score(image: np.ndarray, size: int) -> float:
        template = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA)
        return float(cv2.matchTemplate(image, template, cv2.TM_CCOEFF_NORMED).max())

    best = -1.0
    for image in images:
        largest = min(400, *image.shape[:2])
        if largest < 40:
            continue
        coarse = max(range(40, largest + 1, 12), key=lambda size: score(image, size))
        fine = range(max(40, coarse - 11), min(largest, coarse + 11) + 1)
        best = max(best, *(score(image, size) for size in fine))
    return best


def kernel_manager(folder: Path) -> KernelManager | None:
    """A kernel manager for `VGGBOOK_KERNEL_PYTHON` (a kernel spec written into `folder`), or None for this
    environment's own kernel."""
    if not KERNEL_PYTHON:
        return None
    spec = folder / "kernels" / "vggbook-other"
    spec.mkdir(parents=True)
    argv = [KERNEL_PYTHON, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "other", "language": "python"}))
    return KernelManager(
        kernel_name="vggbook-other", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec.parent)])
    )


def peak_rss(pid: int) -> int:
    """The process's peak resident memory in bytes (Linux: VmHWM); elsewhere its current RSS (psutil)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return psutil.Process(pid).memory_info().rss
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, flags=re.MULTILINE).group(1)) * 1024


def printed_text(notebook: nbformat.NotebookNode) -> str:
    """Everything the chapter's code cells printed (stream outputs)."""
    return "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream"
    )


def test_the_chapters_are_found():
    assert len(CHAPTERS) >= 2, f"no chapters in {BOOK}"


@pytest.mark.parametrize(
    ("code", "asks"),
    [
        ('model = vggbook.build_vgg16(weights="auto")', 'vggbook.build_vgg16(weights="auto")'),
        ("m = keras.applications.VGG16(weights='imagenet')", "keras.applications.VGG16(weights='imagenet')"),
        ("block = vggbook.open_block(3)", "vggbook.open_block(3)"),  # open_block's weights default to "auto"
        ("block = vggbook.open_block(3, weights=WEIGHTS)", "vggbook.open_block(3, weights=WEIGHTS)"),  # can't tell
        ('block = vggbook.open_block(3, weights="random")', None),
        ('full = vggbook.build_vgg16(include_top=False, weights="random", seed=0)', None),
        ('plt.imshow(x, aspect="auto")\nvggbook.build_vgg16()', None),
        ("reference = keras.applications.VGG16(weights=None)", None),
        ("%pip install --quiet vggbook\nimport vggbook", None),
    ],
)
def test_asks_for_imagenet_reads_the_code(code, asks):
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell('weights="auto" in prose does not count'), nbformat.v4.new_code_cell(code)]
    )
    assert asks_for_imagenet(notebook, by_default={"open_block"}) == asks


@pytest.fixture(scope="session")
def other_photo(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """The other photo as a JPEG file, and its 224×224 crop as the chapters will see it."""
    path = tmp_path_factory.mktemp("other-photo") / f"{OTHER_PHOTO}.jpg"
    original = skimage.data.stereo_motorcycle()[0]
    assert original.shape[0] != original.shape[1], "the other photo must not be square"
    assert OTHER_PHOTO not in vggbook.SAMPLES, "the classifier shows the sample photos beside the chapter's"
    cv2.imwrite(str(path), cv2.cvtColor(original, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    return path, vggbook.photo(path).image


def test_figures_show_finds_a_photo_at_any_size_and_not_another():
    rocket, cat = vggbook.photo("rocket").image, vggbook.photo().image
    rng = np.random.default_rng(0)
    figure = np.full((300, 500), 255, np.uint8)
    figure[40:150, 60:170] = cv2.cvtColor(
        cv2.resize(rocket, (110, 110), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY
    )
    figure[160:290, 300:430] = rng.integers(0, 256, (130, 130))  # a feature map's noise beside it
    assert figures_show([figure], rocket) >= FOUND
    assert figures_show([figure], cat) < ABSENT
    assert figures_show([], rocket) == -1.0
    # a photo with fine detail, drawn at a size between the coarse grid's (178 px: 40 + 11·12 + 6)
    motorcycle = vggbook.resize_and_crop(skimage.data.stereo_motorcycle()[0])
    figure[100:278, 200:378] = cv2.cvtColor(
        cv2.resize(motorcycle, (178, 178), interpolation=cv2.INTER_LINEAR), cv2.COLOR_RGB2GRAY
    )
    assert figures_show([figure], motorcycle) >= FOUND
    assert figures_show([figure], cat) < ABSENT


def test_figure_images_reads_pngs_and_html_images():
    ok, png = cv2.imencode(".png", np.full((50, 60, 3), 7, np.uint8))
    text = base64.b64encode(png.tobytes()).decode()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={"image/png": text}),
        nbformat.v4.new_output("display_data", data={"text/html": f'<img src="data:image/png;base64,{text}">'}),
    ]
    images = figure_images(nbformat.v4.new_notebook(cells=[cell]))
    assert [image.shape for image in images] == [(50, 60), (50, 60)]


@pytest.mark.parametrize(
    ("code", "calls"),
    [
        ("photo = vggbook.photo()", True),
        ("from vggbook import photo\np = photo('x.jpg')", True),
        ("photo.plot()", False),
    ],
)
def test_calls_photo_reads_the_code(code, calls):
    assert calls_photo(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])) is calls


def test_another_python_runs_the_kernel(tmp_path, monkeypatch):
    """VGGBOOK_KERNEL_PYTHON's Python runs the chapter: here a script that marks the kernel's environment and
    then starts this Python, so that the kernel can tell which command started it."""
    other = tmp_path / "other-python"
    other.write_text(f'#!/bin/sh\nVGGBOOK_STARTED_BY="$0" exec {sys.executable} "$@"\n')
    other.chmod(0o755)
    monkeypatch.setattr(sys.modules[__name__], "KERNEL_PYTHON", str(other))
    code = "import os; print(os.environ.get('VGGBOOK_STARTED_BY'))"
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    NotebookClient(notebook, km=kernel_manager(tmp_path), timeout=120, startup_timeout=STARTUP_TIMEOUT).execute()
    assert printed_text(notebook).strip() == str(other)


@pytest.mark.parametrize("path", CHAPTERS, ids=[path.stem for path in CHAPTERS])
def test_chapter_runs_again_pretrained_on_another_photo(path, standin_weights_dir, other_photo, tmp_path, monkeypatch):
    notebook = nbformat.read(path, as_version=4)
    asks, shows_photo = asks_for_imagenet(notebook), calls_photo(notebook)
    if asks is None and not shows_photo and not KERNEL_PYTHON:
        pytest.skip(
            f'{path.name} neither calls vggbook.photo() nor asks for ImageNet weights (no weights="auto" or '
            f'"imagenet" in its code, and no call of {", ".join(sorted(imagenet_by_default()))} with its default '
            "weights): it would run exactly as nbmake ran it"
        )
    # The kernel inherits this environment: the session's offline policy and empty Keras home, plus these.
    photo_path, photo_crop = other_photo
    monkeypatch.setenv("VGGBOOK_WEIGHTS_DIR", str(standin_weights_dir))
    monkeypatch.setenv("VGGBOOK_PHOTO", str(photo_path))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # figures drawn inline, as for a reader
    alone = tmp_path / "chapter"  # the chapter alone in an empty folder, its working directory
    alone.mkdir()
    shutil.copy2(path, alone / path.name)
    peak = [0]

    def record_peak(**kwargs) -> None:
        peak[0] = max(peak[0], peak_rss(client.km.provisioner.pid))

    manager = kernel_manager(tmp_path)
    client = NotebookClient(
        notebook,
        km=manager,
        timeout=CELL_TIMEOUT,
        startup_timeout=STARTUP_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(alone)}},
        on_cell_executed=record_peak,
    )
    where = f"in {KERNEL_PYTHON}" if KERNEL_PYTHON else "in this environment"
    start = time.perf_counter()
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:
        raise AssertionError(
            f"{path.name} failed {where} (VGGBOOK_WEIGHTS_DIR={standin_weights_dir}, VGGBOOK_PHOTO={photo_path}), "
            f"after {time.perf_counter() - start:.0f} s, kernel peak {peak[0] / 2**30:.2f} GiB:\n{err}"
        ) from None
    ran = f"{path.name} ran {where} in {time.perf_counter() - start:.0f} s, kernel peak {peak[0] / 2**30:.2f} GiB"
    if asks is not None:
        weights_lines = [line for line in printed_text(notebook).splitlines() if line.startswith("Weights of ")]
        assert weights_lines, f"{ran} but printed no weights line (vggbook.describe_weights)"
        folder = f"from VGGBOOK_WEIGHTS_DIR={standin_weights_dir}, not hash-checked"
        assert any(": imagenet (" in line and folder in line for line in weights_lines), (
            f"{ran} but did not take the pretrained branch: {weights_lines}"
        )
        assert not any("ImageNet weights unavailable" in line for line in weights_lines), (
            f"{ran} but a model fell back to random: {weights_lines}"
        )
    if shows_photo:
        images = figure_images(notebook)
        shown, cat = figures_show(images, photo_crop), figures_show(images, vggbook.photo("chelsea").image)
        assert shown >= FOUND, f"{ran} but no figure shows VGGBOOK_PHOTO's {OTHER_PHOTO} (best match {shown:.2f})"
        assert cat < ABSENT, f"{ran} with VGGBOOK_PHOTO={photo_path}, but a figure still shows the cat ({cat:.2f})"
    print(f"{ran}, asking for weights with {asks}, photo {'shown' if shows_photo else 'not used'}: passed")
