"""What a reader of the built site sees, checked in headless Chromium, offline (issue #6).

Every page of `_toc.yml`: it loads with its chapter's title, every figure loads, no cell output shows an
error, a notebook chapter's Colab button opens that notebook in the repository of `_config.yml`, the
chapter's `##` sections are headings on the page, and its formulas are typeset by the site's own MathJax.
Fixtures and settings: tests/site/conftest.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

# A Python exception's name followed by its message, e.g. "ValueError: ..." (not prose such as "error: 1e-7").
EXCEPTION = re.compile(r"\b[A-Z]\w*(?:Error|Exception): ")
FENCE = re.compile(r"^\s*(`{3,}|~{3,}|:{3,})")
# Math in MyST Markdown (dollarmath, amsmath, the math role and directive), searched outside `inline code`.
MATH = re.compile(r"\$\$|\$[^\s$][^$\n]*\$|\{math\}|\\begin\{")


def normal(text: str) -> str:
    """Heading text as the browser shows it: no Markdown marks, plain quotes and dashes, single spaces, and
    no section number ("2.1. " before a heading of a numbered chapter)."""
    text = re.sub(r"^\s*\d+(\.\d+)*\.\s+", "", text)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # [text](link) -> text
    text = text.translate(str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "–": "-", "—": "-"}))
    text = text.replace("`", "").replace("*", "").replace("…", "...")
    return " ".join(text.split())


def markdown_of(source: Path, entry: str) -> str:
    """The Markdown of a chapter: its .md file (front matter dropped) or its notebook's markdown cells."""
    notebook, page = source / f"{entry}.ipynb", source / f"{entry}.md"
    if notebook.is_file():
        cells = json.loads(notebook.read_text())["cells"]
        return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    text = page.read_text()
    if text.startswith("---\n"):
        text = text.split("\n---\n", 1)[1]
    return text


def headings(markdown: str, level: int) -> list[str]:
    """The ATX headings of one level, outside fenced blocks (code, directives, dropdowns)."""
    found, fence = [], None
    for line in markdown.splitlines():
        opened = FENCE.match(line)
        if fence is None and opened:
            fence = opened.group(1)
        elif fence is not None:
            if line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
                fence = None
        elif line.startswith("#" * level + " "):
            found.append(normal(line[level + 1 :]))
    return found


def expected_colab_link(source: Path, entry: str) -> str:
    """The Colab URL of a notebook chapter, from `_config.yml`'s repository and launch_buttons sections."""
    config = yaml.safe_load((source / "_config.yml").read_text())
    repository = config["repository"]
    owner_repo = urlsplit(repository["url"]).path.strip("/").removesuffix(".git")
    path = "/".join(p for p in (repository.get("path_to_book", "").strip("/"), f"{entry}.ipynb") if p)
    colab = config["launch_buttons"]["colab_url"].rstrip("/")
    return f"{colab}/github/{owner_repo}/blob/{repository.get('branch', 'main')}/{path}"


def test_page_loads_with_the_chapter_title(chapter: str, visit, source: Path) -> None:
    page = visit(chapter)
    (title,) = headings(markdown_of(source, chapter), 1) or [None]
    assert title, f"{chapter}: the source has no '# ' title"
    assert page.status == 200, f"{page.url} answered {page.status}"
    assert title in normal(page.title), f"{page.url}: browser title {page.title!r} lacks the chapter's H1 {title!r}"
    assert [normal(h) for h in page.h1] == [title], f"{page.url}: article H1s {page.h1}, source title {title!r}"


def test_every_image_loads(chapter: str, visit, source: Path) -> None:
    page = visit(chapter)
    broken = [image["src"] for image in page.images if image["width"] == 0]
    assert not broken, f"{page.url}: {len(broken)} image(s) did not load: {broken}"
    if (source / f"{chapter}.ipynb").is_file():
        assert any(image["in_output"] for image in page.images), f"{page.url}: a chapter without one figure"


def test_no_cell_output_shows_an_error(chapter: str, visit) -> None:
    page = visit(chapter)
    assert not page.error_outputs, f"{page.url}: error or stderr outputs: {page.error_outputs}"
    assert "Traceback" not in page.output_text, f"{page.url}: a traceback in the outputs"
    shown = EXCEPTION.findall(page.output_text)
    assert not shown, f"{page.url}: outputs show an exception: {shown}"


def test_colab_button_opens_this_notebook(chapter: str, visit, source: Path) -> None:
    page = visit(chapter)
    if (source / f"{chapter}.ipynb").is_file():
        assert page.colab_links == [expected_colab_link(source, chapter)], f"{page.url}: Colab links {page.colab_links}"
    else:
        assert not page.colab_links, f"{page.url} is not a notebook but offers Colab: {page.colab_links}"


def test_section_headings_are_on_the_page(chapter: str, visit, source: Path) -> None:
    page = visit(chapter)
    sections = headings(markdown_of(source, chapter), 2)
    shown = [normal(h) for h in page.h2]
    missing = [s for s in sections if s not in shown]
    assert not missing, f"{page.url}: sections {missing} are not headings on the page (it shows {shown})"


def test_links_within_the_site_resolve(chapter: str, visit, site: Path) -> None:
    page = visit(chapter)
    targets = {unquote(urlsplit(link).path).lstrip("/") for link in page.links}
    missing = sorted(t for t in targets if not (site / t).is_file() and not (site / t / "index.html").is_file())
    assert not missing, f"{page.url} links to pages that are not in the site: {missing}"


def test_page_works_offline(chapter: str, visit) -> None:
    page = visit(chapter)
    assert not page.local_failures, f"{page.url}: local files failed to load: {page.local_failures}"
    assert not page.page_errors, f"{page.url}: JavaScript errors without the internet: {page.page_errors}"
    assert page.screenshot.stat().st_size > 0


def test_formulas_are_typeset_offline(chapter: str, visit, source: Path) -> None:
    page = visit(chapter)
    if MATH.search(re.sub(r"`[^`\n]*`", "", markdown_of(source, chapter))):
        assert page.formulas, f"{page.url}: the chapter's Markdown has math, the page shows no formula"
    assert page.formulas_typeset == page.formulas, (
        f"{page.url}: {page.formulas - page.formulas_typeset} of {page.formulas} formulas are not typeset "
        "(offline, MathJax has to come from the site itself: `sphinx-mathjax-offline` in _config.yml)"
    )
    assert not page.raw_tex, f"{page.url}: raw TeX in the text: {page.raw_tex}"


def test_figures_are_shown_at_their_own_size(chapter: str, visit) -> None:
    # A figure wider than the column is scaled down and its labels with it: the book's figures are drawn at most
    # vggbook.PAGE_WIDTH inches wide, so that the browser shows them at (nearly) their own size.
    page = visit(chapter)
    shrunk = [
        f"{image['src'][:60]}…: {image['width']} px shown at {image['shown']:.0f} px"
        for image in page.images
        if image["in_output"] and image["shown"] < 0.95 * image["width"]
    ]
    assert not shrunk, f"{page.url}: figures scaled down by more than 5 %: {shrunk}"


def test_code_and_output_fit_the_column(chapter: str, visit) -> None:
    # Code or printed output the reader must scroll sideways to read (conftest leaves out the Colab
    # install line). The code is formatted to fit; printed lines wrap (book/_static/book.css).
    page = visit(chapter)
    assert not page.scrolling_code, (
        f"{page.url}: code or output wider than the column (it scrolls): {page.scrolling_code}"
    )


def test_no_stray_values_below_cells(chapter: str, site: Path, source: Path) -> None:
    # A cell that ends in a call such as `gc.collect()` shows its return value ("4211") below the cell:
    # noise on the page. Rich results (tables, figures, Markdown) are meant; a bare plain-text value is not.
    if not (source / f"{chapter}.ipynb").is_file():
        return
    executed = json.loads((site.parent / "jupyter_execute" / f"{chapter}.ipynb").read_text())
    stray = [
        (number, "".join(output["data"]["text/plain"])[:60])
        for number, cell in enumerate(executed["cells"])
        for output in cell.get("outputs", [])
        if output["output_type"] == "execute_result" and set(output["data"]) == {"text/plain"}
    ]
    assert not stray, f"{chapter}: cells whose last line shows a bare value (cell number, value): {stray}"


def test_tables_fit_the_column(chapter: str, visit) -> None:
    # A table wider than the text column scrolls sideways and hides its last columns (the receptive field,
    # in the layer table); the book's tables are kept to a few short columns in a smaller font instead.
    page = visit(chapter)
    wide = [f"{t['id'] or t['number']}: {t['width']:.0f} px" for t in page.tables if t["width"] > page.column + 1]
    scrolling = [t["id"] or t["number"] for t in page.tables if t["scrolls"]]
    assert not wide, f"{page.url}: tables wider than the {page.column:.0f} px column: {wide}"
    assert not scrolling, f"{page.url}: tables that scroll sideways: {scrolling}"


def test_tables_and_figures_are_numbered_per_chapter(chapter: str, visit, chapter_numbers: dict[str, int]) -> None:
    # Every table and every figure a chapter shows is numbered "<chapter>.<n>" ("Fig. 3.2", "Table 3.1").
    page = visit(chapter)
    number = chapter_numbers.get(chapter)
    if number is None:  # the intro and the back matter are not numbered chapters
        return
    tables = [t["number"] for t in page.tables]
    assert all(re.fullmatch(rf"Table {number}\.\d+", t) for t in tables), f"{page.url}: table captions {tables}"
    figures = [f["number"] for f in page.output_figures]
    assert all(re.fullmatch(rf"Fig\. {number}\.\d+", f) for f in figures), (
        f"{page.url}: output images outside a numbered figure, or numbered for another chapter: {figures}"
    )


def test_figures_have_alt_text(chapter: str, visit) -> None:
    # A screen reader reads the alt text: it must say what the figure shows, not a hashed file name.
    page = visit(chapter)
    missing = [
        f["src"] for f in page.output_figures if len(f["alt"]) < 20 or re.search(r"\.(png|jpe?g|svg)$", f["alt"])
    ]
    assert not missing, f"{page.url}: figures without a real alt text: {missing}"


def test_table_headers_are_words(chapter: str, visit) -> None:
    page = visit(chapter)
    snake = [h for t in page.tables for h in t["headers"] if re.fullmatch(r"[a-z]+(_[a-z0-9]+)+", h)]
    assert not snake, f"{page.url}: table headers that are column names, not words: {snake}"


def test_no_visible_code_builds_prose(chapter: str, visit) -> None:
    # A cell that only assembles a sentence shows its output on the site, not its code (remove-input).
    page = visit(chapter)
    shown = [code.strip()[:60] for code in page.visible_code if "Markdown(" in code]
    assert not shown, f"{page.url}: code cells that build prose are visible: {shown}"
