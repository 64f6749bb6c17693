"""The Colab-runtime CI step (.ci/colab.py, .ci/colab_chapters.py) and what it copies (.ci/colab-runtime.txt).

- Colab's pinned versions satisfy what pyproject.toml declares: Colab installs the helper with `--no-deps`, so
  pip never checks that there, and a floor above Colab's version would go unnoticed until a reader's run fails.
- The README's table of Colab's versions is the pinned file's, and its ranges are requirements.txt's.
- Chapters are found from `_toc.yml`; a chapter whose cell raises fails the run, named with its cell.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PINS = ROOT / ".ci" / "colab-runtime.txt"
RUNNER = ROOT / ".ci" / "colab_chapters.py"


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> dict[str, str]:
    """{distribution: version} of .ci/colab-runtime.txt."""
    found = {}
    for line in PINS.read_text().splitlines():
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if match:
            found[normal(match.group(1))] = match.group(2)
    return found


def declared() -> list[Requirement]:
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [r for reqs in table.get("optional-dependencies", {}).values() for r in reqs]
    return [Requirement(r) for r in table["dependencies"] + extras]


def readme_table() -> list[list[str]]:
    """Rows of the README's table of Colab's versions: [distribution, requirements.txt, Colab]."""
    section = (ROOT / "README.md").read_text().split("## Python and package versions", 1)[1].split("\n## ", 1)[0]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in section.splitlines()]
    return [row for row in rows if len(row) == 3 and row[0] not in ("Distribution", "---")]


def load_runner():
    spec = importlib.util.spec_from_file_location("colab_chapters", RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_pins_copy_a_named_colab_runtime():
    header = PINS.read_text().split("\n\n", 1)[0]
    assert re.search(r"googlecolab/backend-info commit [0-9a-f]{12} of \d{4}-\d{2}-\d{2}", header), header
    assert re.search(r"Python 3\.13\.\d+", header), header
    assert {"tensorflow", "keras", "numpy", "ipykernel", "nbclient", "opencv-python"} <= set(pins())


def test_colab_versions_satisfy_what_pyproject_declares():
    pinned = pins()
    for requirement in declared():
        name = normal(requirement.name)
        assert name in pinned, f"{requirement.name} is declared in pyproject.toml but not pinned in {PINS.name}"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"pyproject.toml asks {requirement}, Colab has {pinned[name]}: Colab's --no-deps install would break"
        )


def test_the_readme_names_colab_python_and_versions_as_pinned():
    colab_python = re.search(r"Python (3\.13\.\d+)", PINS.read_text()).group(1)
    readme = (ROOT / "README.md").read_text()
    assert f"it runs Python {colab_python}" in readme
    ranges = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            ranges[normal(requirement.name)] = str(requirement.specifier)
    rows = readme_table()
    assert len(rows) >= 10, rows
    pinned = pins()
    for name, in_requirements, colab in rows:
        assert colab == pinned[normal(name)], f"README: Colab has {name} {colab}; {PINS.name}: {pinned[normal(name)]}"
        expected = ",".join(sorted(ranges[normal(name)].split(","))) if normal(name) in ranges else "—"
        assert ",".join(sorted(in_requirements.split(","))) == expected, f"{name}: README {in_requirements}"


def test_chapters_are_the_notebooks_the_toc_names(tmp_path):
    runner = load_runner()
    (tmp_path / "book").mkdir()
    for name in ("intro.md", "one.ipynb", "two.ipynb", "notlisted.ipynb"):
        (tmp_path / "book" / name).write_text("")
    toc = "root: book/intro\nparts:\n  - chapters:\n      - file: book/two\n      - file: 'book/one.ipynb'\n"
    (tmp_path / "_toc.yml").write_text(toc)
    assert runner.toc_chapters(tmp_path) == [tmp_path / "book" / "two.ipynb", tmp_path / "book" / "one.ipynb"]
    (tmp_path / "_toc.yml").write_text(toc + "      - file: book/missing\n")
    with pytest.raises(SystemExit, match="names book/missing"):
        runner.toc_chapters(tmp_path)


def test_the_book_has_chapters():
    chapters = load_runner().toc_chapters(ROOT)
    assert len(chapters) >= 2 and all(path.suffix == ".ipynb" for path in chapters), chapters


def test_a_raising_cell_fails_the_run_and_is_named(tmp_path):
    book = tmp_path / "book"
    (book / "book").mkdir(parents=True)
    cells = [nbformat.v4.new_code_cell("print('fine')"), nbformat.v4.new_code_cell("x = 1\nraise ValueError('boom')")]
    nbformat.write(nbformat.v4.new_notebook(cells=cells[:1]), book / "book" / "good.ipynb")
    nbformat.write(nbformat.v4.new_notebook(cells=cells), book / "book" / "bad.ipynb")
    (book / "_toc.yml").write_text("root: book/good\nchapters:\n  - file: book/good\n  - file: book/bad\n")
    env = {key: value for key, value in os.environ.items() if key != "MPLBACKEND"}
    env["VGGBOOK_WEIGHTS_DIR"] = str(tmp_path)  # neither chapter asks for weights: only the cells decide
    command = [sys.executable, str(RUNNER), "--book", str(book), "--work", str(tmp_path / "work"), "--jobs", "2"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.search(r"^good\.ipynb\s+passed", done.stdout, re.MULTILINE), done.stdout
    assert re.search(r"^bad\.ipynb\s+FAILED", done.stdout, re.MULTILINE), done.stdout
    assert "bad.ipynb failed at cell 2 of 2 (code cell 2): x = 1" in done.stdout
    assert "ValueError: boom" in done.stdout
    assert done.stdout.rstrip().endswith("colab: 1 passed, 1 failed")
    assert (tmp_path / "work" / "bad" / "bad.ipynb").is_file()  # each alone in its own folder
