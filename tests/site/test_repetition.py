"""Do the block chapters spend their words on their own block? (issue 17, item 1)

Measured on the built pages, as a reader meets them: the prose of a page is the text of its paragraphs and
list items, including what the cells print as Markdown (the computed sentences) and the captions of figures
and tables, but not code, not the bodies of tables and not the exercises' solutions (hidden toggles). Only
paragraphs of 8 words or more count. Numbers and block and layer names are replaced by placeholders, so
"After block 3, 80% are zero" and "After block 4, 91% are zero" are the same paragraph; a paragraph is
*repeated* when that normalised text is also on two or more of the other block pages. A method explained in
full on every page, or a sentence template filled in with each block's numbers, is repeated; what a page
says about its own block is not.

Run after the site build, like the other checks of tests/site (`pytest tests/site/test_repetition.py -s`
prints the numbers of every page); `VGGBOOK_SITE` points at another build.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

MIN_WORDS = 8  # shorter paragraphs (labels, "Read it as in Section 2.3.") do not count
MAX_REPEATED = 0.20  # the largest share of a block page's prose words that may sit in repeated paragraphs
OTHER_PAGES = 2  # a paragraph is repeated when it is on at least this many other block pages
BLOCKS = range(1, 6)

# What is not prose: code (inputs, printed streams), scripts, the bodies of tables (their captions are read
# first), the solutions behind their toggles (`hide-cell` cells, and Markdown dropdowns), the "¶" links, and
# the unit explorer's note for a page without JavaScript (its script hides it as soon as it runs).
NOT_PROSE = (
    "pre, script, style, .cell_input, .tag_hide-cell, details, .headerlink, .caption-number, .vgg-explorer-status"
)


def _words(text: str) -> list[str]:
    return [word for word in text.split() if re.search(r"\w", word)]


def normalise(text: str) -> str:
    """A paragraph with its numbers and its block and layer names replaced by placeholders, lower case,
    white space collapsed: what stays the same when the same sentence is written for another block."""
    text = text.lower()
    text = re.sub(r"\bblocks?[\s_]*\d(?:_[a-z]+\d*)?\b", "‹block›", text)  # block3, block 3, block3_conv1, block5_pool
    text = re.sub(r"\d[\d,.]*", "‹n›", text)  # 14,714,688 · 0.39 · 3×3 · 56% · Fig. 3.2
    return re.sub(r"\s+", " ", text).strip()


def paragraphs(html: str) -> list[str]:
    """The prose of one built page, paragraph by paragraph (its article only: not the navigation)."""
    soup = BeautifulSoup(html, "html.parser")
    article = soup.select_one("article.bd-article") or soup
    for element in article.select(NOT_PROSE):
        element.decompose()
    found = []
    for caption in article.select("table caption"):
        found.append(caption.get_text(" "))
    for table in article.select("table"):
        table.decompose()
    for element in article.find_all(["p", "li", "figcaption"]):
        if element.name == "li" and element.find(["p", "ul", "ol"]):
            continue  # a list item made of paragraphs: its paragraphs count, not the item again
        if element.name == "figcaption" and element.find("p"):
            continue
        found.append(element.get_text(" "))
    return [" ".join(text.split()) for text in found if len(_words(text)) >= MIN_WORDS]


@dataclass
class PageRepetition:
    """One block page: its prose words, those in repeated paragraphs, and those paragraphs."""

    words: int
    repeated_words: int
    repeated: list[str] = field(default_factory=list)

    @property
    def share(self) -> float:
        return self.repeated_words / self.words if self.words else 0.0


def repetition(pages: Mapping[int, str], others: int = OTHER_PAGES) -> dict[int, PageRepetition]:
    """For each page (block number → HTML), how many of its prose words sit in paragraphs whose normalised
    text is also on at least `others` of the other pages."""
    found = {n: paragraphs(html) for n, html in pages.items()}
    on_page = {n: {normalise(p) for p in texts} for n, texts in found.items()}
    result = {}
    for n, texts in found.items():
        page = PageRepetition(words=sum(len(_words(p)) for p in texts), repeated_words=0)
        for text in texts:
            key = normalise(text)
            if sum(key in on_page[m] for m in found if m != n) >= others:
                page.repeated_words += len(_words(text))
                page.repeated.append(text)
        result[n] = page
    return result


def report(result: Mapping[int, PageRepetition]) -> str:
    return "\n".join(
        f"block{n}: {page.words:5d} prose words, {page.repeated_words:5d} in repeated paragraphs ({page.share:.0%})"
        for n, page in result.items()
    )


# -- the measure itself, on small pages -----------------------------------------------------------------------


def _page(*body: str) -> str:
    navigation = f"<nav><p>{'nav ' * 20}</p></nav>"  # outside the article: not the page's prose
    return f'<html><body>{navigation}<article class="bd-article">{"".join(body)}</article></body></html>'


SHARED = "<p>Each small square is one channel, scaled to its own minimum and maximum, strongest first.</p>"


def test_prose_is_paragraphs_captions_and_printed_markdown_but_not_code_tables_or_solutions():
    html = _page(
        "<p>Too short to count here.</p>",
        "<p>Block 3 is the first block with three convolutions and 256 channels.</p>",
        '<div class="cell"><div class="cell_input"><pre>x = 1  # a comment of many words, code not prose</pre></div>'
        '<div class="cell_output"><p>After block 3, 80% of the units are zero on the photo.</p>'
        "<pre>printed text of more than eight words is a stream, not prose</pre></div></div>",
        '<figure><img alt="x"><figcaption><p><span class="caption-number">Fig. 4.2 </span>'
        "<span>The strongest channels of block3_conv3 beside the photo, each with a colour bar.</span></p>"
        "</figcaption></figure>",
        '<table><caption><span class="caption-number">Table 4.1 </span><span>The layers of block 3 and what '
        "each costs for one photo.</span></caption><tbody><tr><td>a cell of a table with many words in it "
        "is not prose</td></tr></tbody></table>",
        "<ul><li>An item of a list that is long enough to count as prose here.</li>"
        "<li><p>An item made of a paragraph, counted once and not twice over.</p></li></ul>",
        '<div class="cell tag_hide-cell"><details><summary>Solution 1</summary><div class="cell_output">'
        "<p>The answer printed by a solution is behind its toggle and not prose.</p></div></details></div>",
        "<details><summary>Solution 2</summary><p>An old dropdown solution with many words, hidden too.</p></details>",
        '<div class="vgg-explorer"><p class="vgg-explorer-status">An interactive figure: it runs with JavaScript, '
        "on the site.</p></div>",
    )
    assert paragraphs(html) == [
        "The layers of block 3 and what each costs for one photo.",
        "Block 3 is the first block with three convolutions and 256 channels.",
        "After block 3, 80% of the units are zero on the photo.",
        "The strongest channels of block3_conv3 beside the photo, each with a colour bar.",
        "An item of a list that is long enough to count as prose here.",
        "An item made of a paragraph, counted once and not twice over.",
    ]


def test_normalise_hides_numbers_and_block_and_layer_names():
    assert normalise("After Block 3, 80.5% of block3_conv1's 1,024 units\n are zero (Fig. 3.2).") == (
        "after ‹block›, ‹n›% of ‹block›'s ‹n› units are zero (fig. ‹n›)."
    )
    assert normalise("block5_pool is 7×7×512") == normalise("block2_pool is 112×112×64")
    assert normalise("blocks 2–5 share it") == "‹block›–‹n› share it"
    assert normalise("the photo is a cat") != normalise("the photo is a dog")


def test_a_paragraph_is_repeated_when_two_other_pages_have_it():
    own = "<p>Block {n} has a paragraph of its own about thing number {n} {word} that nobody else has.</p>"
    words = ["alpha", "beta", "gamma", "delta", "epsilon"]
    template = "<p>After block {n}, {n}0% of the units are zero and the scale is {n}.5 of the input.</p>"
    pages = {
        1: _page(own.format(n=1, word=words[0]), SHARED),
        2: _page(own.format(n=2, word=words[1]), SHARED, template.format(n=2)),
        3: _page(own.format(n=3, word=words[2]), SHARED, template.format(n=3)),
        4: _page(own.format(n=4, word=words[3]), template.format(n=4)),
        5: _page(own.format(n=5, word=words[4])),
    }
    result = repetition(pages)
    shared, filled, mine = 15, 17, 17  # words of the shared paragraph, the filled-in template, a page's own
    assert result[5].repeated_words == 0 and result[5].words == mine
    assert result[1].repeated_words == shared  # SHARED is on pages 2 and 3
    assert result[2].repeated_words == shared + filled  # the template on 3 and 4, SHARED on 1 and 3
    assert result[4].repeated_words == filled and result[4].share == pytest.approx(filled / (filled + mine))
    assert repetition(pages, others=3)[2].repeated_words == 0  # neither is on three other pages


# -- the built site -------------------------------------------------------------------------------------------


def test_block_pages_spend_their_words_on_their_own_block(site: Path) -> None:
    pages = {}
    for n in BLOCKS:
        path = site / "book" / f"block{n}.html"
        assert path.is_file(), f"no built page {path}"
        pages[n] = path.read_text(encoding="utf-8")
    result = repetition(pages)
    print("\n" + report(result))
    assert all(result[n].words > 0 for n in BLOCKS), "a block page without prose: is this the right site?"
    over = {n: page for n, page in result.items() if n > 1 and page.share > MAX_REPEATED}
    assert not over, (
        f"block pages with more than {MAX_REPEATED:.0%} of their prose in paragraphs that {OTHER_PAGES} other "
        "block pages repeat:\n"
        + report(over)
        + "\n"
        + "\n".join(f"block{n}: {text[:120]}" for n, page in over.items() for text in page.repeated)
    )
