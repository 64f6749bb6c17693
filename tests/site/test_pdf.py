"""The whole book as one PDF (issue 12), as `python3 tasks.py book` prints it into the site, read with pypdf.

Run after the build with the other site checks (.ci/run). The PDF is Jupyter Book's single-page HTML build
(`_build/singlehtml`) printed by headless Chromium (tests/site/print_pdf.py); these checks compare the two:
every chapter of `_toc.yml` is in it, every figure of the page is embedded and none is blank, every formula
is typeset, every page is numbered, and no link points back at the local server that printed it. The last
two tests print small pages of their own, to check the printer where the book cannot show it fails.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import yaml
from local import CHROMIUM
from PIL import Image
from pypdf import PdfReader
from test_site import headings, markdown_of, normal

PDF_NAME = "vgg16-from-scratch.pdf"  # tasks.py's PDF_NAME: the file the intro links to
# Each chapter starts on a new page, and a notebook chapter (code, its figures, exercises with their solutions)
# runs to 10-25 A4 pages; fewer than 3 pages per chapter means chapters are missing or printed unreadably small.
MIN_PAGES_PER_CHAPTER = 3
RAW_TEX = re.compile(r"\\\(|\\\[|\$\$")  # what MathJax replaces; left in the text, a formula was not typeset


@pytest.fixture(scope="module")
def pdf(site: Path) -> PdfReader:
    path = site / PDF_NAME
    if not path.is_file():
        pytest.fail(f"no PDF at {path}: `python3 tasks.py book` prints it (with Chromium; see its output)")
    with path.open("rb") as file:
        assert file.read(5) == b"%PDF-", f"{path} is not a PDF"
    return PdfReader(path)


@pytest.fixture(scope="module")
def page_texts(pdf: PdfReader) -> list[str]:
    """Each page's text, ligatures (ﬁ) as letters."""
    return [unicodedata.normalize("NFKC", page.extract_text()) for page in pdf.pages]


@pytest.fixture(scope="module")
def printed_html(site: Path, source: Path) -> str:
    """The single-page HTML that was printed: the root page of `_toc.yml` in the single-page build."""
    page = site.parent / "singlehtml" / f"{yaml.safe_load((source / '_toc.yml').read_text())['root']}.html"
    if not page.is_file():
        pytest.fail(f"no single-page build at {page}: `python3 tasks.py book` makes it")
    return page.read_text(encoding="utf-8")


def test_page_count_is_plausible(pdf: PdfReader, printed_html: str) -> None:
    chapters = 1 + len(re.findall(r'id="document-', printed_html))  # the root page, then one per toc entry
    assert len(pdf.pages) >= MIN_PAGES_PER_CHAPTER * chapters, (
        f"{len(pdf.pages)} pages for {chapters} chapters: chapters missing, or printed too small"
    )


def test_chapter_title_is_in_the_pdf(chapter: str, page_texts: list[str], source: Path) -> None:
    (title,) = headings(markdown_of(source, chapter), 1) or [None]
    assert title, f"{chapter}: the source has no '# ' title"
    text = normal(" ".join(page_texts))
    assert normal(title) in text, f"{chapter}: its title {title!r} is not in the PDF's text"


def test_every_page_is_numbered(page_texts: list[str]) -> None:
    unnumbered = [n for n, text in enumerate(page_texts, 1) if text.split()[-1:] != [str(n)]]
    assert not unnumbered, f"pages without their number in the footer: {unnumbered[:20]}"


def _pixels(image: Image.Image) -> str:
    """A digest of an image's RGB pixels: the same for a figure's PNG and for its copy in the PDF."""
    return hashlib.sha256(image.convert("RGB").tobytes()).hexdigest()


def _one_colour(image: Image.Image) -> bool:
    extrema = image.getextrema()  # (low, high) of each band
    return all(low == high for low, high in (extrema if isinstance(extrema[0], tuple) else [extrema]))


def test_every_figure_is_embedded_and_none_is_blank(pdf: PdfReader, printed_html: str, site: Path) -> None:
    # Chromium embeds a figure at its own resolution, pixel for pixel, however large it is printed; other images
    # (a canvas, say) are not figures of the book and are not checked here.
    folder = site.parent / "singlehtml"
    figures = {
        src: _pixels(Image.open(folder / src))
        for src in set(re.findall(r'<img[^>]*\ssrc="(_images/[^"]+\.(?:png|jpe?g|gif|webp))"', printed_html))
    }
    embedded: dict[str, tuple[int, bool]] = {}  # pixel digest: (page number, all one colour)
    for number, page in enumerate(pdf.pages, 1):
        for image in page.images:
            embedded.setdefault(_pixels(image.image), (number, _one_colour(image.image)))
    missing = sorted(src for src, digest in figures.items() if digest not in embedded)
    assert not missing, f"{len(missing)} of the page's {len(figures)} figures are not in the PDF: {missing[:10]}"
    blank = sorted(f"page {embedded[digest][0]}: {src}" for src, digest in figures.items() if embedded[digest][1])
    assert not blank, f"figures that are one colour (blank) in the PDF: {blank}"


def test_formulas_are_typeset(pdf: PdfReader, page_texts: list[str], printed_html: str) -> None:
    raw = [f"page {n}: {m.group()}" for n, text in enumerate(page_texts, 1) for m in RAW_TEX.finditer(text)]
    assert not raw, f"raw TeX in the PDF's text (MathJax did not typeset it): {raw[:10]}"
    if 'class="math' in printed_html:
        fonts = {
            str(font.get_object().get("/FontDescriptor", {}).get("/FontName", ""))
            for page in pdf.pages
            for font in (page["/Resources"].get("/Font") or {}).values()
        }
        assert any("MathJax" in name for name in fonts), f"the book has formulas, the PDF no MathJax font: {fonts}"


def test_no_link_points_at_the_printing_server(pdf: PdfReader) -> None:
    uris = [
        str(action["/URI"])
        for page in pdf.pages
        for annotation in page.get("/Annots") or []
        if (action := annotation.get_object().get("/A")) is not None and "/URI" in action
    ]
    local = [uri for uri in uris if not uri.startswith(("https://", "http://", "mailto:")) or "127.0.0.1" in uri]
    assert not local, f"links that lead nowhere outside the build: {local[:10]}"


def _write_page(folder: Path, body: str) -> None:
    (folder / "page.html").write_text(f"<!DOCTYPE html><html><head><title>t</title></head><body>{body}</body></html>")


def _print(site: Path, page: str, pdf: Path) -> subprocess.CompletedProcess:
    """The printer as `tasks.py book` runs it: in a process of its own (Playwright's sync API refuses to start
    inside the one this session's `browser` fixture already runs)."""
    printer = Path(__file__).with_name("print_pdf.py")
    command = [sys.executable, str(printer), str(site), page, str(pdf), "--chromium", CHROMIUM]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_printer_opens_dropdowns_and_keeps_links_in_the_pdf(tmp_path: Path) -> None:
    filler = "<p>Filler paragraph.</p>" * 80  # more than one page
    body = (
        '<p id="top"><a href="#end">to the end</a> <a href="page.html#end">the same, by name</a>'
        ' <a href="other.html">another file</a></p><details><summary>Solution</summary><p>answer-42</p></details>'
        f'{filler}<p id="end">The end.</p>'
    )
    _write_page(tmp_path, body)
    assert _print(tmp_path, "page.html", tmp_path / "page.pdf").returncode == 0
    pdf = PdfReader(tmp_path / "page.pdf")
    texts = [page.extract_text() for page in pdf.pages]
    assert len(pdf.pages) >= 2 and "answer-42" in texts[0], "the closed <details> was not printed open"
    assert [text.split()[-1] for text in texts] == [str(n) for n in range(1, len(texts) + 1)]
    links = [annotation.get_object() for annotation in pdf.pages[0].get("/Annots") or []]
    assert [str(link.get("/Dest")) for link in links] == ["/end", "/end"], f"links on page 1: {links}"


def test_printer_writes_nothing_when_a_formula_is_not_typeset(tmp_path: Path) -> None:
    _write_page(tmp_path, r'<p>An area <span class="math notranslate nohighlight">\(x^2\)</span>, no MathJax.</p>')
    printed = _print(tmp_path, "page.html", tmp_path / "page.pdf")
    assert printed.returncode == 1 and "not typeset" in printed.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.html"]
