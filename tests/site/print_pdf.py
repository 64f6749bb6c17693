"""Print an HTML page to PDF with headless Chromium, as the book's PDF is made (issue 12).

    .venv/bin/python tests/site/print_pdf.py _build/singlehtml book/intro.html _build/html/vgg16-from-scratch.pdf

`python3 tasks.py book` runs this after Jupyter Book's single-page HTML build (tasks.py itself cannot import
Playwright: it runs before the virtual environment exists); tests/site/test_pdf.py calls `print_pdf` on a
small page. The page is served from 127.0.0.1 and every other request is blocked: printing needs no internet.
Before printing: every `<details>` (the exercises' solution dropdowns) is opened, images are decoded, MathJax
has typeset every formula (else the PDF is not written), fonts are loaded; print rules hide the site's
navigation and start each chapter on a new page. A4, page numbers in the footer, chapters as PDF bookmarks.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from local import CHROMIUM, CHROMIUM_ARGS, offline, served  # tests/site/local.py: this script's folder is on sys.path

A4_WIDTH_MM, SIDE_MM = 210, 15
MARGIN = {"top": "16mm", "bottom": "18mm", "left": f"{SIDE_MM}mm", "right": f"{SIDE_MM}mm"}
FOOTER = '<div style="width: 100%; text-align: center; font-size: 9px"><span class="pageNumber"></span></div>'

# What only the PDF needs, on top of the themes' print rules (which drop the header and the sidebars).
PRINT_CSS = """
@media print {
  .bd-header, .bd-sidebar-primary, .bd-sidebar-secondary, .header-article, .prev-next-area, .bd-footer,
  .bd-footer-article, .bd-footer-content, .headerlink, .copybtn, .toggle-details__summary, #pst-back-to-top,
  .sd-summary-state-marker { display: none !important; }
  body, .bd-main .bd-content { margin: 0 !important; }
  .bd-main, .bd-content, .bd-article-container, .bd-article { max-width: none !important; padding: 0 !important; }
  pre { white-space: pre-wrap !important; overflow-wrap: anywhere; }
  .pst-scrollable-table-container { overflow: visible !important; }
  span[id^="document-"] + section { break-before: page; }
  h1, h2, h3, h4, .sd-summary-title { break-after: avoid; break-inside: avoid; }
  figure, img, table, div.cell_input, div.cell_output, .sd-dropdown, mjx-container { break-inside: avoid; }
  *, *::before, *::after { animation: none !important; transition: none !important; }  /* no half-faded-in box */
}
"""
# A4 leaves 180 mm = 680 px for the text; the page is laid out 680 / 0.9 = 756 px wide and printed at 90 %, wider
# than the site's text column (688 px in a 1280 px window): figures and 88-column code fit as they do on the site.
SCALE = 0.9
LAYOUT = {"width": round((A4_WIDTH_MM - 2 * SIDE_MM) / 25.4 * 96 / SCALE), "height": 1000}

# Runs in the page: open what is collapsed, then wait for images, MathJax, fonts and the unit explorers; returns
# what is left undone.
# A link into this page becomes a link within the PDF only as a bare "#fragment"; a link to another file of the
# local build would open the printing server from the PDF, so it becomes plain text.
PREPARE = """async () => {
  const here = location.href.split("#")[0];
  document.querySelectorAll("a[href]").forEach((a) => {
    if (a.origin !== location.origin || a.getAttribute("href").startsWith("#")) return;
    const [page, fragment] = a.href.split("#");
    if (page === here && fragment) a.setAttribute("href", "#" + fragment);
    else a.removeAttribute("href");
  });
  document.querySelectorAll("details").forEach((d) => { d.open = true; });
  document.querySelectorAll(".toggle-hidden").forEach((el) => el.classList.remove("toggle-hidden"));
  const images = Array.from(document.images);
  images.forEach((img) => { img.loading = "eager"; });
  await Promise.allSettled(images.map((img) => img.decode()));
  if (window.MathJax && MathJax.startup) {
    await MathJax.startup.promise;
    await MathJax.typesetPromise();
  }
  await document.fonts.ready;
  // The unit explorers (block chapters) decode their maps and draw them after the page has loaded.
  const explorers = Array.from(document.querySelectorAll(".vgg-explorer"));
  for (let waited = 0; waited < 30000 && explorers.some((e) => e.dataset.ready !== "true"); waited += 100) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  // A table wider than the text column (it scrolls sideways on the site) is printed smaller, not cut off.
  const column = (document.querySelector("article.bd-article") || document.body).clientWidth;
  document.querySelectorAll("article table").forEach((table) => {
    if (table.scrollWidth > column) table.style.zoom = column / table.scrollWidth;
  });
  const formulas = Array.from(document.querySelectorAll(".math"));
  return {
    broken_images: images.filter((img) => !img.complete || img.naturalWidth === 0).map((img) => img.src.slice(0, 120)),
    untypeset: formulas.filter((m) => !m.querySelector("mjx-container")).map((m) => m.textContent.slice(0, 60)),
    undrawn_explorers: explorers.filter((e) => e.dataset.ready !== "true").map((e) => e.id),
  };
}"""


def print_pdf(site: Path, page_path: str, pdf: Path, chromium: str = CHROMIUM) -> None:
    """Print the page `page_path` of the built site in `site` to `pdf`; used by `tasks.py book` for the book's PDF.

    Raises RuntimeError, and writes nothing, when an image does not load or a formula is not typeset.
    """
    from playwright.sync_api import sync_playwright  # the venv's package: tasks.py imports nothing of this

    html = Path(site) / page_path
    if not html.is_file():
        raise FileNotFoundError(f"no HTML page to print at {html}")
    if not Path(chromium).is_file():
        raise FileNotFoundError(f"no Chromium at {chromium}: `apt install chromium` or set VGGBOOK_CHROMIUM")
    # Sphinx's single-page builder writes every link relative to the site's root, also when the page is in a
    # folder (book/intro.html): a <base> makes its images, scripts and chapter links resolve, the latter to
    # places in the same page, which the PDF keeps as internal links.
    with_base = html.read_text(encoding="utf-8").replace("<head>", '<head><base href="/">', 1)

    with served(site) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=LAYOUT)
        page.emulate_media(media="print")  # measured as printed, below
        url = f"{base}/{page_path}"
        offline(page)
        page.route(  # the page itself, with its <base>; added after `offline`, so it comes first
            lambda requested: requested == url,
            lambda route: route.fulfill(body=with_base, content_type="text/html; charset=utf-8"),
        )
        page.goto(url, wait_until="load", timeout=120_000)
        # The whole book as one page: on a busy machine its network settles after Playwright's default 30 s.
        page.wait_for_load_state("networkidle", timeout=120_000)
        page.add_style_tag(content=PRINT_CSS)
        left = page.evaluate(PREPARE)
        if left["broken_images"] or left["untypeset"] or left["undrawn_explorers"]:
            raise RuntimeError(
                f"{page_path}: not printed, images not loaded, formulas not typeset or explorers not drawn: {left}"
            )
        pdf.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=pdf.parent, suffix=".pdf.part", delete=False) as part:
            partial = Path(part.name)
        try:
            page.pdf(
                path=partial,
                format="A4",
                margin=MARGIN,
                scale=SCALE,
                print_background=True,
                display_header_footer=True,
                header_template="<span></span>",
                footer_template=FOOTER,
                outline=True,
                tagged=True,
            )
            partial.chmod(0o644)  # a temporary file is private (0600); the PDF is published with the site
            partial.replace(pdf)
        finally:
            partial.unlink(missing_ok=True)
        browser.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", type=Path, help="the built site's folder, e.g. _build/singlehtml")
    parser.add_argument("page", help="the page to print, relative to the site, e.g. book/intro.html")
    parser.add_argument("pdf", type=Path, help="the PDF to write, e.g. _build/html/vgg16-from-scratch.pdf")
    parser.add_argument("--chromium", default=CHROMIUM, help="Chromium's executable (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        print_pdf(args.site, args.page, args.pdf, args.chromium)
    except (FileNotFoundError, RuntimeError) as error:
        print(f"PDF not written: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.pdf} ({args.pdf.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
