"""Every HTML page of the built site, strict (issue 18), in headless Chromium, offline, as a first visit: at a
laptop's 1280 x 800 and a phone's 390 x 844,
- no script throws, and nothing is logged to the console as an error or warning (no list of known errors);
- axe-core finds no violation of WCAG 2.0 and 2.1, levels A and AA, once MathJax and the unit explorers rendered;
- the page does not scroll sideways, and no element of the article runs out of the viewport.
The pages are found in the build, not listed: every chapter, the intro, the references, search.html, genindex.html
and the root's index.html (a redirect: the page it leads to is checked). The checks (tests/site/quality.py) are
then shown failing on small pages of their own, and the build's own fixes (book/_ext/sitefixes.py, book/_static/
book.css, book/_templates/) are checked where the whole site cannot show them. Phone screenshots go to
`_build/screenshots/phone/`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import SCREENSHOTS, VIEWPORT, toc_entries
from local import served
from quality import PHONE, axe_violations, checked, open_page, overflow

ROOT = Path(__file__).resolve().parents[2]
REFRESH = re.compile(r"""<meta\s+http-equiv=["']refresh["']\s+content=["']\d+;\s*url=([^"']+)["']""", re.IGNORECASE)
SCREENS = {"laptop": VIEWPORT, "phone": PHONE}


@pytest.fixture(scope="session")
def quality(site: Path, server: str, browser) -> Callable[[str, str], dict]:
    """`quality("book/intro.html", "phone")` opens the page once on that screen and returns what the checks found
    (tests/site/quality.py: `checked`)."""
    reports: dict[tuple[str, str], dict] = {}

    def report(page: str, screen: str) -> dict:
        if (page, screen) not in reports:
            target = REFRESH.search((site / page).read_text(encoding="utf-8", errors="replace")[:2000])
            redirect = f"{server}/{Path(page).parent.joinpath(target.group(1)).as_posix()}" if target else None
            shot = SCREENSHOTS / "phone" / f"{page.replace('/', '_').removesuffix('.html')}.png"
            reports[page, screen] = checked(
                browser,
                f"{server}/{page}",
                viewport=SCREENS[screen],
                redirects_to=redirect,
                screenshot=shot if screen == "phone" else None,
            )
        return reports[page, screen]

    return report


@pytest.mark.parametrize("screen", SCREENS)
def test_no_script_error_or_console_message(site_page: str, screen: str, quality) -> None:
    found = quality(site_page, screen)
    assert not found["problems"], f"{found['url']} ({screen}): {found['problems']}"


@pytest.mark.parametrize("screen", SCREENS)
def test_axe_finds_no_violation(site_page: str, screen: str, quality) -> None:
    found = quality(site_page, screen)
    assert not found["axe"], f"{found['url']} ({screen}), axe-core: " + "\n".join(found["axe"])


@pytest.mark.parametrize("screen", SCREENS)
def test_nothing_runs_out_of_the_screen(site_page: str, screen: str, quality) -> None:
    found = quality(site_page, screen)
    seen = found["overflow"]
    assert seen["scroll_width"] <= seen["viewport"], (
        f"{found['url']} ({screen}) scrolls sideways: {seen['scroll_width']} px wide in a {seen['viewport']} px "
        f"window; elements of the article outside it: {seen['outside'][:10]}"
    )
    assert not seen["outside"], f"{found['url']} ({screen}): elements out of the window: {seen['outside'][:10]}"


def test_every_page_is_found(site_pages: list[str], source: Path) -> None:
    # The pages are found in the build; every page of the table of contents and Sphinx's own pages are among them.
    expected = {f"{entry}.html" for entry in toc_entries(source)} | {"index.html", "search.html", "genindex.html"}
    missing = sorted(expected - set(site_pages))
    assert not missing, f"pages the checks did not find in the build: {missing} (found {site_pages})"


def test_each_inline_script_is_written_once(site: Path, site_pages: list[str]) -> None:
    # Sphinx 7 wrote sphinx-thebe's and sphinx-togglebutton's inline scripts twice (book/_ext/sitefixes.py).
    twice = {}
    for page in site_pages:
        scripts = re.findall(r"<script>(.*?)</script>", (site / page).read_text(encoding="utf-8"), re.DOTALL)
        repeated = sorted({s.strip()[:60] for s in scripts if scripts.count(s) > 1})
        if repeated:
            twice[page] = repeated
    assert not twice, f"inline scripts written more than once: {twice}"


def test_colour_mode_switch_and_search_button_say_what_they_show(server: str, browser) -> None:
    # The two buttons of book/_templates/: named as they are shown, and still working.
    page, problems = open_page(browser, f"{server}/book/intro.html")
    try:
        html = page.locator("html")
        assert html.get_attribute("data-mode") == "auto", "a first visit follows the system's colour mode"
        assert html.get_attribute("data-theme") == "light"  # headless Chromium's system setting
        switch = page.get_by_role("button", name="Color mode", exact=True)
        assert switch.count() == 1
        modes = []
        for _ in range(3):
            switch.click()
            modes.append((html.get_attribute("data-mode"), html.get_attribute("data-theme")))
        assert modes == [("dark", "dark"), ("light", "light"), ("auto", "light")], modes
        search = page.get_by_role("button", name=re.compile(r"^Search Ctrl\s*\+\s*K$"))
        assert search.count() >= 1, "the search button is named by what it shows, 'Search Ctrl+K'"
        search.first.click()
        assert page.locator("input[name='q']:focus").count() == 1, "the search button opens the search field"
        assert not problems, problems
    finally:
        page.close()


# ---- the checks, failing where they should: small pages of their own


@pytest.fixture
def small_page(tmp_path: Path, browser) -> Iterator[Callable[..., tuple[object, list[str]]]]:
    """`small_page(body, head="", viewport=None)`: a page of that HTML, served from 127.0.0.1 and opened as the
    site's pages are (tests/site/quality.py: `open_page`); the tab and its problems."""
    opened = []
    with served(tmp_path) as base:

        def make(body: str, head: str = "", viewport: dict | None = None) -> tuple[object, list[str]]:
            name = f"page{len(opened)}.html"
            (tmp_path / name).write_text(
                f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>A page</title>{head}</head>'
                f"<body><main>{body}</main></body></html>",
                encoding="utf-8",
            )
            page, problems = open_page(browser, f"{base}/{name}", viewport=viewport)
            opened.append(page)
            return page, problems

        yield make
        for page in opened:
            page.close()


def test_check_sees_a_script_error(small_page) -> None:
    # What sphinx-thebe's script did when it was written twice.
    page, problems = small_page('<p>Text.</p><script>const URL_ = "a";</script><script>const URL_ = "a";</script>')
    assert problems == ["page error: Identifier 'URL_' has already been declared"], problems


def test_check_sees_console_errors_and_warnings_not_logs(small_page) -> None:
    page, problems = small_page(
        '<p>Text.</p><script>console.log("fine"); console.info("fine");'
        'console.error("Got invalid mode"); console.warn("old API");</script>'
    )
    assert problems == ["console error: Got invalid mode", "console warning: old API"], problems


def test_check_sees_missing_files_and_requests_off_the_machine(small_page) -> None:
    page, problems = small_page(
        '<img src="missing.png" alt="A missing picture"><img src="https://example.org/x.png" alt="A picture elsewhere">'
    )
    assert any(p.startswith("HTTP 404:") and p.endswith("/missing.png") for p in problems), problems
    assert "blocked request to https://example.org/x.png" in problems, problems


def test_axe_sees_a_button_without_a_name_and_a_name_unlike_its_label(small_page) -> None:
    page, problems = small_page("<p>Text.</p>")
    assert axe_violations(page) == [], "a plain page passes"
    page, problems = small_page(
        '<button><svg width="10" height="10"></svg></button>'  # what a screen reader calls just "button"
        '<button aria-label="Color mode">Light</button>'  # the theme's switch, as axe saw it (experimental rule)
        '<div role="list"><div role="doc-biblioentry">An entry</div></div>'  # docutils' citations
    )
    found = {line.split()[0] for line in axe_violations(page)}
    assert found == {"button-name", "label-content-name-mismatch", "aria-deprecated-role", "aria-required-children"}


def test_overflow_sees_what_runs_out_of_a_phone_screen(small_page) -> None:
    wide = '<div id="wide" style="width: 600px">wide</div>'
    page, _ = small_page(f'<article class="bd-article">{wide}</article>', viewport=PHONE)
    seen = overflow(page)
    assert seen["viewport"] == 390 and seen["scroll_width"] >= 600
    assert [line.split(" from ")[0] for line in seen["outside"]] == ["div#wide"], seen
    # the same in a box the reader can scroll sideways (a code block, a table's container): fits
    scrolls = f'<div style="overflow-x: auto">{wide}</div>'
    page, _ = small_page(f'<article class="bd-article">{scrolls}</article>', viewport=PHONE)
    assert overflow(page) == {"viewport": 390, "scroll_width": 390, "outside": []}
    # cut off by a box that hides what overflows: the page does not scroll, but the text cannot be read
    page, _ = small_page(f'<article class="bd-article" style="overflow: hidden">{wide}</article>', viewport=PHONE)
    seen = overflow(page)
    assert seen["scroll_width"] == 390 and [line.split(" from ")[0] for line in seen["outside"]] == ["div#wide"]


def test_long_inline_code_wraps_on_a_phone(small_page, site: Path) -> None:
    # Sphinx's stylesheet keeps each word of inline code on one line; the book's lets a long one wrap.
    code = '<p>Call <code class="docutils literal notranslate"><span class="pre">{}</span></code> first.</p>'.format(
        "tf.distribute.cluster_resolver.TPUClusterResolver().experimental_connect_to_cluster()"
    )
    sphinx_css = f"<style>{(site / '_static' / 'basic.css').read_text(encoding='utf-8')}</style>"
    book_css = f"<style>{(site / '_static' / 'book.css').read_text(encoding='utf-8')}</style>"
    page, _ = small_page(f'<article class="bd-article">{code}</article>', head=sphinx_css, viewport=PHONE)
    assert overflow(page)["scroll_width"] > 390, "without book.css the code runs out of the screen"
    page, _ = small_page(f'<article class="bd-article">{code}</article>', head=sphinx_css + book_css, viewport=PHONE)
    assert overflow(page) == {"viewport": 390, "scroll_width": 390, "outside": []}


def test_duplicate_scripts_are_dropped_from_a_page() -> None:
    # book/_ext/sitefixes.py on Sphinx's own script objects: the copy with filename '' of one with None goes.
    from sphinx.builders.html._assets import _JavaScript

    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    try:
        from sitefixes import drop_duplicate_scripts
    finally:
        sys.path.remove(str(ROOT / "book" / "_ext"))
    thebe = "const THEBE_JS_URL = 'x'"
    scripts = [_JavaScript(None, body=thebe), _JavaScript("_static/a.js"), _JavaScript("", body=thebe)]
    scripts.append(_JavaScript("", body="let other = 1"))
    context = {"script_files": scripts}
    drop_duplicate_scripts(None, "page", "page.html", context, None)
    assert context["script_files"] == [scripts[0], scripts[1], scripts[3]]


SMALL_BOOK = """A page
======

A claim [Simonyan2015]_ and another [Krizhevsky2012]_.

.. list-table:: Rows named under an empty corner
   :header-rows: 1

   * -
     - VGG16
     - this chapter
   * - input (px)
     - 224
     - 32
   * - channels
     - 64
     - 8
   * - parameters
     - 138,357,544
     - 529,069

.. list-table:: A first column with a header of its own
   :header-rows: 1

   * - layer
     - channels
     - parameters
   * - conv1
     - 64
     - 1,792
   * - conv2
     - 64
     - 36,928

.. [Simonyan2015] Karen Simonyan and Andrew Zisserman. Very deep convolutional networks. 2015.
.. [Krizhevsky2012] Alex Krizhevsky, Ilya Sutskever and Geoffrey E. Hinton. ImageNet classification. 2012.
"""


def test_sitefixes_give_tables_and_citations_their_roles(tmp_path: Path, browser) -> None:
    # book/_ext/sitefixes.py in a small Sphinx project of its own: row headers under an empty corner (only there),
    # citations as list items, and axe-core finds nothing in either.
    from sphinx.cmd.build import build_main

    source, built = tmp_path / "source", tmp_path / "html"
    source.mkdir()
    (source / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT / 'book' / '_ext')!r})\nextensions = ['sitefixes']\n"
    )
    (source / "index.rst").write_text(SMALL_BOOK)
    assert build_main(["-q", "-W", "-b", "html", str(source), str(built)]) == 0
    html = (built / "index.html").read_text(encoding="utf-8")
    stubs = re.findall(r'<th class="stub"><p>([^<]*)</p></th>', html)
    assert stubs == ["input (px)", "channels", "parameters"], stubs
    assert html.count('role="listitem"') == 2 and "doc-biblioentry" not in html
    with served(built) as base:
        page, problems = open_page(browser, f"{base}/index.html")
        try:
            for part in ("table", ".citation-list"):
                assert not axe_violations(page, part), (part, axe_violations(page, part))
        finally:
            page.close()
