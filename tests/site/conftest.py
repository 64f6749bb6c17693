"""Browser checks of the built site (issue #6): where the site is, a local web server, headless Chromium.

Run after the build, as `.ci/run` does: `jupyter-book build . -W` then `.venv/bin/pytest tests/site`.
This is a gate: a missing site, a missing `playwright` package or a missing Chromium FAILS, never skips.

    VGGBOOK_SITE=/path/to/_build/html    the built site (default: _build/html of the repository)
    VGGBOOK_CHROMIUM=/path/to/chromium   the browser (default: Debian's /usr/bin/chromium)

The chapters are read from the `_toc.yml` next to the site's `_build/` folder (so a copy of the book built
elsewhere is checked against its own table of contents), else from the repository's. Screenshots go to
`_build/screenshots/<chapter>.png`, next to `_build/html`. Every request to a host other than 127.0.0.1 is
blocked: the site has to work without the internet.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from local import CHROMIUM, CHROMIUM_ARGS, offline, served  # one place for the browser, its flags, the server

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(os.environ.get("VGGBOOK_SITE", ROOT / "_build" / "html")).resolve()
SOURCE = SITE.parent.parent if (SITE.parent.parent / "_toc.yml").is_file() else ROOT
SCREENSHOTS = SITE.parent / "screenshots"
VIEWPORT = {"width": 1280, "height": 800}  # a laptop screen; the theme's article column is ~750 px wide

# What the browser reports about one page, read once and shared by every check of that page.
_READ_PAGE = """async () => {
  const text = (el) => {
    const copy = el.cloneNode(true);
    copy.querySelectorAll(".headerlink").forEach((a) => a.remove());
    return copy.textContent.replace(/\\s+/g, " ").trim();
  };
  const article = document.querySelector("article.bd-article");
  if (!article) return null;
  if (window.MathJax && MathJax.startup) await MathJax.startup.promise;  // the first typesetting is done
  const prose = article.cloneNode(true);
  prose.querySelectorAll("pre, code, script, style").forEach((el) => el.remove());
  const formulas = Array.from(article.querySelectorAll(".math"));
  const imgs = Array.from(article.querySelectorAll("img"));
  imgs.forEach((img) => { img.loading = "eager"; });
  await Promise.allSettled(imgs.map((img) => img.decode()));
  const outputs = Array.from(article.querySelectorAll(".cell_output"));
  return {
    h1: Array.from(article.querySelectorAll("h1")).map(text),
    h2: Array.from(article.querySelectorAll("h2")).map(text),
    images: imgs.map((img) => ({
      src: img.getAttribute("src").slice(0, 120), width: img.naturalWidth, in_output: !!img.closest(".cell_output"),
      shown: img.getBoundingClientRect().width,
    })),
    // code or printed output the reader has to scroll sideways to read: (first line, hidden px); not the
    // Colab install line, a magic that cannot be split and that nobody needs to read on the site
    scrolling_code: Array.from(article.querySelectorAll(".cell_input pre, .cell_output pre"))
      .filter((pre) => pre.scrollWidth > pre.clientWidth + 1 && !pre.textContent.includes("%pip install"))
      .map((pre) => [pre.textContent.split("\\n").find((l) => l.trim()) || "", pre.scrollWidth - pre.clientWidth]),
    error_outputs: outputs.flatMap((o) => Array.from(o.querySelectorAll(".stderr, .traceback, [class*=error]")))
      .map((el) => el.className + ": " + el.textContent.trim().slice(0, 300)),
    output_text: outputs.map((o) => o.innerText).join("\\n"),
    links: Array.from(document.querySelectorAll("a[href]"))
      .filter((a) => a.origin === location.origin).map((a) => a.href.split("#")[0]),
    colab_links: Array.from(document.querySelectorAll("a[href*='colab.research.google.com']"))
      .filter((a) => !article.contains(a)).map((a) => a.href),
    // every table: its caption number, its headers, and whether it is wider than the column or scrolls sideways
    column: article.clientWidth,
    tables: Array.from(article.querySelectorAll("table")).map((t) => {
      const box = t.closest(".pst-scrollable-table-container") || t.parentElement;
      const number = t.querySelector("caption .caption-number");
      return {
        id: t.id || (t.closest("[id]") || {}).id || "",
        number: number ? number.textContent.trim() : "",
        headers: Array.from(t.querySelectorAll("thead th")).map((th) => th.textContent.trim()),
        width: t.getBoundingClientRect().width,
        scrolls: box.scrollWidth > box.clientWidth + 1,
      };
    }),
    // every image in a cell output: the number of the figure it belongs to ("" when none) and its alt text
    output_figures: Array.from(article.querySelectorAll(".cell_output img")).map((img) => {
      const figure = img.closest("figure");
      const number = figure && figure.querySelector(".caption-number");
      return {src: img.getAttribute("src").slice(0, 80), number: number ? number.textContent.trim() : "",
              alt: img.getAttribute("alt") || ""};
    }),
    visible_code: Array.from(article.querySelectorAll(".cell_input")).map((c) => c.textContent),
    formulas: formulas.length,
    formulas_typeset: formulas.filter((m) => m.querySelector("mjx-container, .katex")).length,
    raw_tex: prose.textContent.match(/\\\\[([].{0,40}/g) || [],
  };
}"""


def toc_entries(source: Path = SOURCE) -> list[str]:
    """Every page of the book's `_toc.yml` (root first), as paths without suffix, e.g. `book/block1`."""
    toc = yaml.safe_load((source / "_toc.yml").read_text())
    entries = [toc["root"]]
    for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}]):
        entries += [chapter["file"] for chapter in part.get("chapters", [])]
    return entries


@pytest.fixture(scope="session")
def chapter_numbers() -> dict[str, int]:
    """The number the book gives each chapter of a numbered part (`numbered: true` in `_toc.yml`), in order
    across the parts (sphinx-multitoc-numbering): figures and tables are numbered "<chapter>.<n>"."""
    toc = yaml.safe_load((SOURCE / "_toc.yml").read_text())
    numbered = [c["file"] for part in toc.get("parts", []) if part.get("numbered") for c in part["chapters"]]
    return {entry: number for number, entry in enumerate(numbered, start=1)}


def pages_of(site: Path) -> list[str]:
    """Every HTML page of a built site, as paths within it, e.g. `book/block1.html`; not the files in the folders
    whose names start with "_" (`_static` holds the theme's template fragments as .html files)."""
    found = (path.relative_to(site) for path in site.rglob("*.html"))
    return sorted(path.as_posix() for path in found if not any(part.startswith("_") for part in path.parts))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise every test that takes `chapter` with the pages of the table of contents, and every test that
    takes `site_page` with every page found in the built site (without a build: index.html, whose test then fails
    in the `site` fixture)."""
    if "chapter" in metafunc.fixturenames:
        entries = toc_entries()
        metafunc.parametrize("chapter", entries, ids=[Path(entry).name for entry in entries])
    if "site_page" in metafunc.fixturenames:
        pages = (pages_of(SITE) if SITE.is_dir() else []) or ["index.html"]
        metafunc.parametrize("site_page", pages, ids=[page.removesuffix(".html") for page in pages])


@dataclass
class PageReport:
    """What one page of the site showed in the browser."""

    url: str
    status: int | None
    title: str
    h1: list[str]
    h2: list[str]
    images: list[dict]
    error_outputs: list[str]
    output_text: str
    links: list[str]
    colab_links: list[str]
    column: float  # the article column's width, px
    tables: list[dict]  # per table: id, caption number, headers, width (px), whether its box scrolls sideways
    output_figures: list[dict]  # per image in a cell output: its figure's number ("" if none), its alt text
    visible_code: list[str]  # the text of every code cell the site shows
    formulas: int  # the `.math` elements Sphinx wrote, as `\(...\)` or `\[...\]`
    formulas_typeset: int  # those that MathJax (or KaTeX) typeset
    raw_tex: list[str]  # every `\(` and `\[` left in the article's text outside code, with what follows
    scrolling_code: list[list]  # code or output wider than the column: [first line, hidden px]
    screenshot: Path
    blocked: list[str] = field(default_factory=list)
    local_failures: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="session")
def site() -> Path:
    """The built site's folder; fails when it has not been built."""
    if not (SITE / "index.html").is_file():
        pytest.fail(f"no built site at {SITE}: run `jupyter-book build .` first (or set VGGBOOK_SITE)")
    return SITE


@pytest.fixture(scope="session")
def site_pages(site: Path) -> list[str]:
    """Every HTML page of the built site (`pages_of`)."""
    return pages_of(site)


@pytest.fixture(scope="session")
def server(site: Path) -> Iterator[str]:
    """Serve the site on 127.0.0.1 and a free port; yields the base URL."""
    with served(site) as base:
        yield base


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Headless Chromium with a fresh profile, as a Playwright browser context; fails when it cannot start."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ModuleNotFoundError:
        pytest.fail("the Python package `playwright` is missing: pip install -r requirements.txt")
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: `apt-get install chromium` (or set VGGBOOK_CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="vggbook-chromium-") as profile, sync_playwright() as playwright:
        try:
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, viewport=VIEWPORT
            )
        except Error as error:
            pytest.fail(f"Chromium at {CHROMIUM} did not start: {error}")
        yield context
        context.close()


@pytest.fixture(scope="session")
def visit(server: str, browser) -> Callable[[str], PageReport]:
    """`visit("book/block1")` opens the page once (offline), saves its screenshot and returns its report."""
    reports: dict[str, PageReport] = {}

    def load(entry: str) -> PageReport:
        if entry in reports:
            return reports[entry]
        blocked: list[str] = []
        local_failures: list[str] = []
        page_errors: list[str] = []

        page = browser.new_page()
        offline(page, blocked.append)
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        page.on(
            "response",
            lambda r: local_failures.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )
        try:
            response = page.goto(f"{server}/{entry}.html", wait_until="load")
            page.wait_for_load_state("networkidle")
            found = page.evaluate(_READ_PAGE)
            if found is None:
                pytest.fail(f"{entry}.html has no <article class='bd-article'>: not a Jupyter Book page?")
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            screenshot = SCREENSHOTS / f"{Path(entry).name}.png"
            page.screenshot(path=str(screenshot), full_page=True)
            reports[entry] = PageReport(
                url=page.url,
                status=response.status if response else None,
                title=page.title(),
                screenshot=screenshot,
                blocked=blocked,
                local_failures=local_failures,
                page_errors=page_errors,
                **found,
            )
        finally:
            page.close()
        return reports[entry]

    return load


@pytest.fixture(scope="session")
def source() -> Path:
    """The book's source folder whose `_toc.yml`, `_config.yml` and chapters the site was built from."""
    return SOURCE
