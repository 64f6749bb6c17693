"""Checks of the book itself: committed without outputs, runnable in Colab, consistent structure.

These read the notebooks as JSON; running them is nbmake's job (pytest collects book/*.ipynb).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from IPython.core.inputtransformer2 import TransformerManager

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))
BLOCKS = [BOOK / f"block{n}.ipynb" for n in range(1, 6)]


def toc_files() -> list[str]:
    files = [TOC["root"]]
    for part in TOC.get("parts", [{"chapters": TOC.get("chapters", [])}]):
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


def cells(path: Path, kind: str | None = None) -> list[dict]:
    nb = json.loads(path.read_text())
    return [c for c in nb["cells"] if kind is None or c["cell_type"] == kind]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def headings(path: Path, level: str = "## ") -> list[str]:
    found = []
    for cell in cells(path, "markdown"):
        found += [line[len(level) :].strip() for line in source(cell).splitlines() if line.startswith(level)]
    return found


def test_every_chapter_in_the_toc_exists_and_every_notebook_is_in_it() -> None:
    listed = toc_files()
    for entry in listed:
        assert any((ROOT / f"{entry}{ext}").exists() for ext in (".md", ".ipynb")), (
            f"{entry} is in _toc.yml but missing"
        )
    for nb in NOTEBOOKS:
        assert f"book/{nb.stem}" in listed, f"{nb.name} is not in _toc.yml"
    assert all(f"book/block{n}" in listed for n in range(1, 6))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    for cell in cells(path, "code"):
        assert not cell.get("outputs"), f"{path.name}: a code cell carries outputs: {source(cell)[:60]!r}"
        assert cell.get("execution_count") is None, f"{path.name}: a code cell carries an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_installs_the_helper_from_the_configured_repository(path: Path) -> None:
    first = source(cells(path, "code")[0])
    repository = CONFIG["repository"]["url"].rstrip("/")
    assert "import vggbook" in first and "except ModuleNotFoundError" in first
    match = re.search(r'%pip install [^"]*"git\+(\S+?)\.git@(\S+?)"', first)
    assert match, f"{path.name}: the first cell must pip-install the helper from git"
    # The line is continued with a backslash to fit the column; IPython (Colab's 7.34 too) joins a magic's
    # continued lines into one call, which is what Colab runs.
    code = TransformerManager().transform_cell(first)
    call = re.search(r"run_line_magic\('pip', '(.*?)'\)", code)
    assert call, f"{path.name}: IPython does not read a %pip call in the first cell:\n{code}"
    assert call.group(1).split() == ["install", "--quiet", "--no-deps", f'"git+{match.group(1)}.git@{match.group(2)}"']
    assert match.group(1) == repository, f"{path.name} installs from {match.group(1)}, _config.yml says {repository}"
    assert match.group(2) == CONFIG["repository"]["branch"]
    assert "--no-deps" in first, "Colab already has TensorFlow: install only the helper"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_is_seeded_titled_and_has_exercises_with_solutions(path: Path) -> None:
    code = "\n".join(source(c) for c in cells(path, "code"))
    assert "keras.utils.set_random_seed(" in code
    assert len(headings(path, "# ")) == 1, f"{path.name} must have exactly one H1 title"
    assert "Exercises" in headings(path)
    markdown = "\n".join(source(c) for c in cells(path, "markdown"))
    exercises = markdown[markdown.index("## Exercises") :]
    assert len(re.findall(r"^\d+\. ", exercises, flags=re.M)) >= 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_solutions_are_executed_cells(path: Path) -> None:
    # The book-wide format: each exercise's solution is one code cell after the exercise list, hidden behind a
    # toggle (hide-cell) labelled "Solution N" / "Hide solution N", run by nbmake and printing its answer; no
    # code in a Markdown dropdown (where it would never run), as a fence or as an indented block.
    every = cells(path)
    start = next((k for k, c in enumerate(every) if c["cell_type"] == "markdown" and "## Exercises" in source(c)), None)
    assert start is not None, f"{path.name} has no '## Exercises' section"
    exercises = len(re.findall(r"^\d+\. ", source(every[start]), flags=re.M))
    solutions = [c for c in every[start + 1 :] if "hide-cell" in c["metadata"].get("tags", [])]
    assert len(solutions) >= 3, f"{path.name}: {len(solutions)} solution cells after '## Exercises'"
    assert len(solutions) == exercises, f"{path.name}: {exercises} exercises, {len(solutions)} solution cells"
    for number, cell in enumerate(solutions, start=1):
        assert cell["cell_type"] == "code", f"{path.name}: solution {number} is not a code cell"
        assert cell["metadata"].get("mystnb") == {
            "code_prompt_show": f"Solution {number}",
            "code_prompt_hide": f"Hide solution {number}",
        }, f"{path.name}: solution {number}'s toggle is not labelled 'Solution {number}' / 'Hide solution {number}'"
        assert "print(" in source(cell), f"{path.name}: solution {number} prints no answer"
    for cell in cells(path, "markdown"):
        text = source(cell)
        if "{dropdown}" in text:
            body = text[text.index("{dropdown}") :]
            assert "```python" not in body and not re.search(r"^ {4}\S", body, flags=re.M), (
                f"{path.name}: a Markdown dropdown holds code that never runs; make it a solution cell"
            )


# The methods of the block chapters, each explained once in block 1 under this label, and linked from
# every other block chapter with {ref}`…` instead of explained again.
METHODS = ("open", "compare", "montage", "explorer", "fields", "stats", "examples", "inversion")


def _section_structure(path: Path, number: int) -> list[str]:
    """The chapter's H2 and H3 headings with its block numbers written as N (and N−1 for the one before),
    and every closer look as one entry."""
    found = []
    for cell in cells(path, "markdown"):
        for line in source(cell).splitlines():
            if line.startswith(("## ", "### ")):
                heading = "A closer look" if "A closer look" in line else line
                heading = heading.replace(f"block {number}", "block N").replace(f"block {number - 1}", "block N-1")
                found.append(heading)
    return found


def test_block_chapters_2_to_5_share_one_template_and_block_1_explains_the_methods() -> None:
    block1 = "\n".join(source(c) for c in cells(BLOCKS[0], "markdown"))
    for method in METHODS:
        assert f"(method-{method})=" in block1, f"block1.ipynb explains no method labelled method-{method}"
    first = _section_structure(BLOCKS[1], 2)
    assert first[0] == "## What block N adds to block N-1", "blocks 2–5 open with what the block adds"
    assert len(first) >= 10
    for n, path in enumerate(BLOCKS[1:], 2):
        structure = _section_structure(path, n)
        if n == 5:  # block 5 ends with all five blocks side by side
            assert "## The five blocks side by side" in structure
            structure.remove("## The five blocks side by side")
        assert structure == first, f"{path.name} does not follow block2's sections: {structure}"
        markdown = "\n".join(source(c) for c in cells(path, "markdown"))
        linked = {m for m in METHODS if f"<method-{m}>`" in markdown or f"{{ref}}`method-{m}`" in markdown}
        assert linked == set(METHODS), f"{path.name} does not link block 1's {sorted(set(METHODS) - linked)}"
        assert "(method-" not in markdown, f"{path.name} explains a method again: only block 1 labels them"


SOLUTION_COLUMNS = 86


@pytest.mark.parametrize("path", BLOCKS, ids=lambda p: p.name)
def test_block_solutions_end_the_chapter_and_fit_their_toggle(path: Path) -> None:
    # On top of test_solutions_are_executed_cells: in a block chapter the solution cells are all that follows
    # the exercise list, and their lines fit inside the toggle's frame. No code typed into Markdown.
    everything = cells(path)
    start = next(i for i, c in enumerate(everything) if "## Exercises" in source(c) and c["cell_type"] == "markdown")
    exercises = len(re.findall(r"^\d+\. ", source(everything[start]), flags=re.M))
    after = everything[start + 1 :]
    assert [c["cell_type"] for c in after] == ["code"] * exercises, (
        f"{path.name}: the exercise list must be followed by its {exercises} solution cells and nothing else"
    )
    for n, cell in enumerate(after, 1):
        metadata = cell["metadata"]
        assert "hide-cell" in metadata.get("tags", []), f"{path.name}: solution {n} is not behind a toggle"
        prompts = metadata.get("mystnb", {})
        assert prompts.get("code_prompt_show") == f"Solution {n}", f"{path.name}: solution {n}'s prompt"
        assert prompts.get("code_prompt_hide") == f"Hide solution {n}"
        assert "print(" in source(cell), f"{path.name}: solution {n} prints no answer"
        # the toggle's frame takes a few pixels of the column: 88 columns scroll by 2 px there, 87 fit
        wide = [line for line in source(cell).splitlines() if len(line) > SOLUTION_COLUMNS]
        assert not wide, f"{path.name}: solution {n} has lines wider than {SOLUTION_COLUMNS} columns: {wide}"
    for cell in cells(path, "markdown"):
        assert "```python" not in source(cell) and "{dropdown}" not in source(cell), (
            f"{path.name}: code or a dropdown in Markdown: {source(cell)[:80]!r}"
        )


def test_every_citation_is_in_the_bibliography() -> None:
    bib = (BOOK / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    texts = [p.read_text() for p in [*NOTEBOOKS, *BOOK.glob("*.md")]]
    cited = set()
    for text in texts:
        for group in re.findall(r"\{cite(?::[tp])?\}`([^`]+)`", text):
            cited.update(k.strip() for k in group.split(","))
    assert cited, "the chapters cite nothing"
    assert cited <= keys, f"cited but not in references.bib: {cited - keys}"


def test_requirements_pin_jupyter_book_1_and_headless_opencv() -> None:
    requirements = (ROOT / "requirements.txt").read_text()
    assert re.search(r"^jupyter-book>=1\.0\.4,<2", requirements, flags=re.M)
    assert "opencv-python-headless" in requirements
    assert not re.search(r"^opencv-python[>=<\s]", requirements, flags=re.M)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_visible_cell_builds_prose(path: Path) -> None:
    # Pages show ideas, not scaffolding: a cell that assembles a sentence is hidden on the site (remove-input).
    for cell in cells(path, "code"):
        tags = set(cell.get("metadata", {}).get("tags", []))
        if "Markdown(" in source(cell) or "display(Markdown" in source(cell):
            assert tags & {"remove-input", "remove-cell"}, (
                f"{path.name}: a visible cell builds prose: {source(cell)[:80]!r} (tag it remove-input)"
            )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_figure_is_named_captioned_and_described(path: Path) -> None:
    figures = [c for c in cells(path, "code") if "figure" in c.get("metadata", {}).get("mystnb", {})]
    names = []
    for cell in figures:
        mystnb = cell["metadata"]["mystnb"]
        figure, image = mystnb["figure"], mystnb.get("image", {})
        assert figure.get("name", "").startswith("fig-"), f"{path.name}: a figure without a fig- name"
        assert len(figure.get("caption", "")) > 20, f"{path.name}: {figure['name']} has no real caption"
        alt = image.get("alt", "")
        assert len(alt) > 20 and not re.search(r"\.(png|jpg|svg)$", alt), (
            f"{path.name}: {figure['name']} needs alt text that says what the figure shows"
        )
        names.append(figure["name"])
    assert len(names) == len(set(names)), f"{path.name}: figure names repeat: {names}"


def _block_code_lines(path: Path, number: int) -> list[str]:
    """The block chapter's code lines with its block number written as N, so that lines that differ only in
    the number compare equal."""
    lines = []
    for cell in cells(path, "code"):
        for line in source(cell).splitlines():
            if line.strip():
                lines.append(re.sub(r"block\d", "blockN", re.sub(rf"\b{number}\b", "N", line.strip())))
    return lines


# What blocks 2–5 may repeat of block 1's code: the Colab cell and the imports, a call of the helper (one per
# shared idea), the block's own layers written out, showing a result (`.table`, `.plot();`, `.summary`), and
# lines that are only brackets or an opening call. Anything else repeated is logic copied from page to page,
# which belongs in vggbook.
PLUMBING = re.compile(
    r".*\bvggbook\b.*|[\w, ]+ = block\.\w+.*|\w+\.(table|summary|plot\(\);|table\(\))|[(){}[\]]+;?|\w+\($|\w+ = \[$"
    r"|import \w+( as \w+)?|from [\w.]+ import [\w, ]+|#.*|keras\.utils\.set_random_seed\(0\)"
    r'|try:|except ModuleNotFoundError:|%pip install .*|"git\+\S+"'  # the Colab cell
    r"|layers\.(Conv2D|MaxPooling2D)\(.*\),"  # the block's Keras layers, written out: the lesson itself
)


def test_block_chapters_share_their_plumbing_through_the_helper() -> None:
    # One template, with what the chapters share in vggbook, so that a fix is made once: blocks 2–5 repeat
    # of block 1's code only plumbing (PLUMBING), no logic.
    first = set(_block_code_lines(BLOCKS[0], 1))
    for n, path in enumerate(BLOCKS[1:], 2):
        repeated = [line for line in _block_code_lines(path, n) if line in first]
        logic = [line for line in repeated if not PLUMBING.fullmatch(line)]
        assert not logic, f"{path.name} repeats block 1's logic instead of calling the helper: {logic}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_visible_code_fits_the_column(path: Path) -> None:
    # The site's text column shows 88 characters of code (book/ruff.toml, book/_static/book.css); ruff formats
    # code to that width but never splits a string, so a long string line would scroll sideways on the site.
    shown = [
        source(c)
        for c in cells(path, "code")
        if not {"remove-input", "remove-cell"} & set(c["metadata"].get("tags", []))
    ]
    # and the code of the exercises' solutions, in ```python fences of the Markdown
    shown += [m for c in cells(path, "markdown") for m in re.findall(r"```python\n(.*?)```", source(c), flags=re.S)]
    for code in shown:
        long = [line for line in code.splitlines() if len(line) > 88]
        assert not long, f"{path.name}: code lines wider than 88 characters: {long}"
