"""Every chapter on the pretrained branch: stand-in ImageNet files through VGGBOOK_WEIGHTS_DIR, still offline.

`pytest --nbmake book/` runs the chapters on the random branch (no ImageNet weights offline). Readers in Colab
and on the published site take the other branch, with Keras' ImageNet weights. Here each chapter that asks for
ImageNet weights runs top to bottom in a fresh kernel (nbclient, as nbmake does) with `VGGBOOK_WEIGHTS_DIR`
naming a folder of stand-in files in Keras' layout (tests/standin.py, written once per session), in a
temporary working directory (a chapter must run from anywhere), and must (1) run without error and (2) really
take the pretrained branch: a weights line it prints names the folder, and none says the ImageNet weights
were unavailable. A chapter whose code never asks for them is skipped, with that reason. "Asks" is read from
the chapter's code (parsed, not run): a call with `weights="auto"` or `"imagenet"` (or a weights value
that is not a constant, to be safe), or a call of a vggbook function whose `weights` default is one of them
(e.g. `vggbook.open_block(1)`) without `weights=` set otherwise.

Each test prints the chapter's time and its kernel's peak memory (`pytest -s` or `-rP` shows them; the
memory benchmark is benchmarks/book_speed.py). Chapters are found in book/ when the tests are collected.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import time
from pathlib import Path

import nbformat
import psutil
import pytest
from IPython.core.inputtransformer2 import TransformerManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

import vggbook

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = sorted(BOOK.glob("*.ipynb"))
IMAGENET = ("auto", "imagenet")
CELL_TIMEOUT = 600  # s for one cell; the slowest pretrained-branch cell takes well under a minute here
STARTUP_TIMEOUT = 120  # s for a kernel to start on a loaded 2-core machine


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


@pytest.mark.parametrize("path", CHAPTERS, ids=[path.stem for path in CHAPTERS])
def test_chapter_runs_on_the_pretrained_branch(path, standin_weights_dir, tmp_path, monkeypatch):
    notebook = nbformat.read(path, as_version=4)
    asks = asks_for_imagenet(notebook)
    if asks is None:
        pytest.skip(
            f'{path.name} never asks for ImageNet weights (no weights="auto" or "imagenet" in its code, and no '
            f"call of {', '.join(sorted(imagenet_by_default()))} with its default weights)"
        )
    # The kernel inherits this environment: the session's offline policy and empty Keras home, plus the folder.
    monkeypatch.setenv("VGGBOOK_WEIGHTS_DIR", str(standin_weights_dir))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # figures drawn inline, as for a reader
    peak = [0]

    def record_peak(**kwargs) -> None:
        peak[0] = max(peak[0], peak_rss(client.km.provisioner.pid))

    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        startup_timeout=STARTUP_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},  # the kernel's working directory
        on_cell_executed=record_peak,
    )
    start = time.perf_counter()
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:
        raise AssertionError(
            f"{path.name} failed on the pretrained branch (VGGBOOK_WEIGHTS_DIR={standin_weights_dir}), "
            f"after {time.perf_counter() - start:.0f} s, kernel peak {peak[0] / 2**30:.2f} GB:\n{err}"
        ) from None
    ran = f"{path.name} ran in {time.perf_counter() - start:.0f} s, kernel peak {peak[0] / 2**30:.2f} GB"
    weights_lines = [line for line in printed_text(notebook).splitlines() if line.startswith("Weights of ")]
    assert weights_lines, f"{ran} but printed no weights line (vggbook.describe_weights)"
    folder = f"from VGGBOOK_WEIGHTS_DIR={standin_weights_dir}, not hash-checked"
    assert any(": imagenet (" in line and folder in line for line in weights_lines), (
        f"{ran} but did not take the pretrained branch: {weights_lines}"
    )
    assert not any("ImageNet weights unavailable" in line for line in weights_lines), (
        f"{ran} but a model fell back to random: {weights_lines}"
    )
    print(f"{ran} on the pretrained branch, asking with {asks}: passed")
