"""Run every chapter of the book in this Python's environment, each alone in a fresh folder and a fresh kernel.

Run by .ci/colab.py inside its Colab-runtime environment, with VGGBOOK_WEIGHTS_DIR naming stand-ins for Keras'
ImageNet files. Chapters are the notebooks named in `_toc.yml` (in its order). Each is copied alone into an empty
folder of its own and run top to bottom there by nbclient in a new kernel, in a process of its own (`--jobs`
at a time). A chapter passes when no cell fails and, if its code asks for ImageNet weights (read as
tests/test_chapters_pretrained.py reads it), the weights lines it prints say it took them from the folder and
never fell back to random. Prints each chapter's seconds and its kernel's peak memory; exits non-zero naming
every failed chapter and its cell.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# s for one cell: catches a hung cell, not a slow one (the training chapter's five-recipe cell ran past 600 s on
# this 2-core machine under a load average of 17)
CELL_TIMEOUT = 1800
STARTUP_TIMEOUT = 120  # s for a kernel to start on a loaded 2-core machine


def toc_chapters(book: Path) -> list[Path]:
    """The notebooks `_toc.yml` names (its root and every `file:` entry), in its order; entries without a
    notebook, like the intro, are Markdown pages."""
    toc = (book / "_toc.yml").read_text()
    entries = re.findall(r"^\s*(?:-\s*)?(?:root|file):\s*[\"']?([^\s\"'#]+)", toc, re.MULTILINE)
    chapters = []
    for entry in entries:
        stem = book / re.sub(r"\.(ipynb|md)$", "", entry)
        notebook = stem.with_suffix(".ipynb")
        if notebook.is_file():
            if notebook not in chapters:
                chapters.append(notebook)
        elif not stem.with_suffix(".md").is_file():
            sys.exit(f"_toc.yml names {entry}, but {book} has neither {entry}.ipynb nor {entry}.md")
    return chapters


def execute(notebook_path: Path) -> dict:
    """Child process: run the notebook in its own folder, save it executed in place, return what happened."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    notebook = nbformat.read(notebook_path, as_version=4)
    current = [None]

    def started(cell, cell_index, **kwargs) -> None:
        current[0] = cell_index

    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        startup_timeout=STARTUP_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(notebook_path.parent)}},  # the kernel's working directory
        on_cell_start=started,
    )
    start = time.perf_counter()
    error = None
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:
        error = f"{type(err).__name__}: {ANSI.sub('', str(err))}"
    seconds = time.perf_counter() - start
    nbformat.write(notebook, notebook_path)
    cell = None
    if error is not None and current[0] is not None:
        index = current[0]
        code = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code"]
        first = notebook.cells[index].source.strip().splitlines()[:1]
        cell = f"cell {index + 1} of {len(notebook.cells)} (code cell {code.index(index) + 1})"
        cell += f": {first[0]}" if first else ""
    # The kernel was this process's child, reaped when it shut down: the largest RSS among reaped children.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return {"seconds": seconds, "peak": peak, "error": error, "cell": cell}


def run_chapter(chapter: Path, work: Path) -> dict:
    """Copy the chapter alone into a fresh empty folder and run it there in a process of its own."""
    folder = work / chapter.stem
    folder.mkdir(parents=True)
    copy = folder / chapter.name
    shutil.copy2(chapter, copy)
    command = [sys.executable, __file__, "--execute", str(copy)]
    done = subprocess.run(command, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        error = f"its runner failed (exit {done.returncode}):\n{done.stderr}"
        return {"seconds": 0, "peak": 0, "cell": None, "error": error}
    return json.loads(lines[-1]) | {"copy": copy}


def verdict(chapter: Path, result: dict) -> str | None:
    """Why the chapter failed, or None: an error in a cell, or (for a chapter that asks for ImageNet weights)
    weights lines that do not name VGGBOOK_WEIGHTS_DIR's files, or name a fall-back to random."""
    import nbformat
    from test_chapters_pretrained import asks_for_imagenet, printed_text

    if result["error"]:
        where = f" at {result['cell']}" if result["cell"] else ""
        return f"{chapter.name} failed{where}\n{result['error']}"
    notebook = nbformat.read(result["copy"], as_version=4)
    if asks_for_imagenet(notebook) is None:
        return None
    folder = f"from VGGBOOK_WEIGHTS_DIR={os.environ['VGGBOOK_WEIGHTS_DIR']}, not hash-checked"
    weights = [line for line in printed_text(notebook).splitlines() if line.startswith("Weights of ")]
    if not any(": imagenet (" in line and folder in line for line in weights):
        return f"{chapter.name} asks for ImageNet weights but did not take the stand-ins: {weights}"
    if any("ImageNet weights unavailable" in line for line in weights):
        return f"{chapter.name} asks for ImageNet weights but a model fell back to random: {weights}"
    return None


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT / "tests"))  # tests/test_chapters_pretrained.py: the pretrained-branch checks
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--book", type=Path, default=ROOT, help="folder with _toc.yml and the chapters")
    parser.add_argument("--work", type=Path, help="an empty folder to run the chapters in (made if missing)")
    parser.add_argument("--jobs", type=int, default=1, help="chapters at a time")
    parser.add_argument("--execute", type=Path, help=argparse.SUPPRESS)  # the child: one notebook
    args = parser.parse_args(argv)
    if args.execute:
        print(json.dumps(execute(args.execute)))
        return 0
    if args.work is None:
        parser.error("--work is needed: an empty folder to run the chapters in")
    if not os.environ.get("VGGBOOK_WEIGHTS_DIR"):
        sys.exit("VGGBOOK_WEIGHTS_DIR is not set: .ci/colab.py sets it to a folder of stand-in ImageNet files")
    import cv2
    import keras
    import numpy
    import tensorflow

    import vggbook

    print(
        f"Python {sys.version.split()[0]}, TensorFlow {tensorflow.__version__}, Keras {keras.__version__}, "
        f"NumPy {numpy.__version__}, cv2 {cv2.__version__} (contrib modules: {hasattr(cv2, 'ximgproc')}), "
        f"vggbook from {Path(vggbook.__file__).parent}",
        flush=True,
    )
    chapters = toc_chapters(args.book.resolve())
    print(f"{len(chapters)} chapters from {args.book / '_toc.yml'}, {args.jobs} at a time", flush=True)
    start = time.perf_counter()
    failures = []

    def one(chapter: Path) -> tuple[Path, dict, str | None]:
        result = run_chapter(chapter, args.work)
        reason = verdict(chapter, result)
        state = "FAILED" if reason else "passed"
        peak = result["peak"] / 2**30
        print(f"{chapter.name:24} {state:6} {result['seconds']:6.0f} s  kernel peak {peak:5.2f} GiB", flush=True)
        return chapter, result, reason

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for _, _, reason in pool.map(one, chapters):
            if reason:
                failures.append(reason)
    print(f"All chapters: {time.perf_counter() - start:.0f} s", flush=True)
    for reason in failures:
        print(f"\n{reason}", flush=True)
    print(f"colab: {len(chapters) - len(failures)} passed, {len(failures)} failed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
