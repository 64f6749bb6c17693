"""What the site's tools get wrong, fixed at build time (issue 18).

A Sphinx extension, registered in `_config.yml` (`sphinx: local_extensions:`). Each fix
names its cause; tests/site/test_quality.py checks every page in the browser (no script
error, no console message, no axe-core violation).

1. Inline scripts written twice. Sphinx 7 (Jupyter Book 1 pins sphinx~=7.0) hands the
   builder a script without a file that an extension adds once the builder has started
   (`app.add_js_file(None, body=...)`) with the filename `None`; before it writes the
   pages it adds every registered script again, with the filename `''`, and as
   `None != ''` its check for duplicates lets the copy through. sphinx-thebe's
   `const THEBE_JS_URL = ...` so ran twice, and the second `const` threw "Identifier
   'THEBE_JS_URL' has already been declared" on every page (sphinx-togglebutton's
   `var togglebuttonSelector` was written twice too, silently). Sphinx 8 gives the
   builder `''` in the first place; here, each page's list of scripts keeps the first
   of two that differ only in `None` and `''`.
2. "Got invalid theme mode: . Resetting to auto." in the console. pydata-sphinx-theme's
   head script sets `<html data-mode>` to `localStorage.mode || "{{ default_mode }}"`,
   and Jupyter Book sets no `default_mode`: on a first visit (nothing stored yet) the
   mode is "", which the theme's own script rejects with that console error before it
   falls back to "auto". `html_context: {default_mode: auto}` would end the message
   too, but it also writes `<html data-theme="auto">`, a theme no stylesheet defines,
   and readers without JavaScript would lose the theme's light fallback. So a script
   right after the theme's finishes its work: a missing or unknown mode becomes "auto",
   and the theme follows the system's setting, as the theme's script does a moment
   later (and no page is drawn before it has a theme).
3. The bibliography's ARIA roles. docutils writes each citation as
   `<div role="doc-biblioentry">` in a `<div role="list">`. DPUB-ARIA 1.1 deprecated
   `doc-biblioentry`, and a list's children must be list items: axe reported the
   deprecated role (25 times) and a list without list items. The citations keep
   docutils' markup, with the role `listitem`.
4. Tables whose first column names the rows under an empty corner (the training
   chapter's Table 8.1: "", "VGG16", "this chapter"). The first column's cells were
   data cells (`<td>`), so the row names were headers of nothing, and the cells of the
   first column had no header at all (axe: td-has-header, critical). A table whose
   top-left header cell is empty is read as one with row headers: its first column
   becomes docutils' stub column, which the HTML writer writes as header cells
   (`<th class="stub">`).
5. The toggles of hidden cells (the exercises' solutions). myst-nb writes each
   as `<summary aria-label="Toggle hidden content">` around its visible label
   ("Solution 1"), so a screen reader announced "Toggle hidden content" where the
   page shows "Solution 1", and speech input could not reach it by the name it
   shows (axe: label-content-name-mismatch, serious). Without the `aria-label` the
   toggle is named by the label it shows.

The search button and the colour-mode switch are named as they are shown by two
template overrides in book/_templates/ (their comments say why); long inline code wraps
by book/_static/book.css.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from sphinx.application import Sphinx

# 2. Runs after the theme's head script, before its deferred bundle; modes and themes
# are the theme's own.
THEME_MODE_SCRIPT = """(() => {
  const root = document.documentElement;
  const mode = root.dataset.mode;
  if (!["light", "dark", "auto"].includes(mode)) root.dataset.mode = "auto";
  if (!["light", "dark"].includes(root.dataset.theme)) {
    const system = window.matchMedia("(prefers-color-scheme: dark)").matches;
    const auto = root.dataset.mode === "auto";
    const dark = root.dataset.mode === "dark" || (auto && system);
    root.dataset.theme = dark ? "dark" : "light";
  }
})();"""


def drop_duplicate_scripts(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree
) -> None:
    """1. Of scripts that differ only in a filename `None` or `''`, keep the first."""
    if "script_files" not in context:
        return
    seen: set[tuple] = set()
    kept = []
    for script in context["script_files"]:
        attributes = tuple(sorted(getattr(script, "attributes", {}).items()))
        key = (getattr(script, "filename", script) or "", script.priority, attributes)
        if key not in seen:
            seen.add(key)
            kept.append(script)
    # A new list for this page: the builder's own is restored for the next page anyway.
    context["script_files"] = kept


def visit_citation(self, node: nodes.citation) -> None:
    """3. docutils' citation markup, a list item instead of `doc-biblioentry`."""
    # The translator's own method (the one Sphinx sets from add_node is the object's).
    type(self).visit_citation(self, node)
    self.body[-1] = self.body[-1].replace('role="doc-biblioentry"', 'role="listitem"')


def visit_hidden_cell(self, node) -> None:
    """5. myst-nb's toggle of a hidden cell, named by its visible label."""
    from myst_nb.sphinx_ import visit_HideCellInput

    visit_HideCellInput(self, node)
    summary = '<summary aria-label="Toggle hidden content">\n'
    found = [k for k, part in enumerate(self.body) if part == summary]
    if not found:  # myst-nb changed its markup: say so, not fail inside max()
        raise RuntimeError(
            "sitefixes 5: myst-nb's hidden-cell toggle no longer starts with "
            f"{summary.strip()!r}; update visit_hidden_cell in book/_ext/sitefixes.py "
            "to the markup myst-nb now writes"
        )
    self.body[found[-1]] = "<summary>\n"


def mark_row_headers(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """4. Under an empty top-left header cell, the first column names the rows."""
    for tgroup in doctree.findall(nodes.tgroup):
        colspecs = [c for c in tgroup.children if isinstance(c, nodes.colspec)]
        heads = [c for c in tgroup.children if isinstance(c, nodes.thead)]
        if not colspecs or not heads or not heads[0].children:
            continue
        corner = heads[0].children[-1].children[0]  # the last header row's first cell
        if not corner.astext().strip() and len(colspecs) > 1:
            colspecs[0]["stub"] = 1


def setup(app: Sphinx) -> dict[str, Any]:
    # After every other handler (myst-nb adds a page's own scripts in it, at 500).
    app.connect("html-page-context", drop_duplicate_scripts, priority=900)
    # Added before the builder starts, so written once; priority 100: the first script.
    app.add_js_file(None, body=THEME_MODE_SCRIPT, priority=100)
    # docutils' own depart_citation closes the element and the list.
    app.add_node(nodes.citation, override=True, html=(visit_citation, None))
    app.connect("doctree-resolved", mark_row_headers)
    from myst_nb.sphinx_ import HideCodeCellNode, depart_HideCellInput

    toggle = (visit_hidden_cell, depart_HideCellInput)
    app.add_node(HideCodeCellNode, override=True, html=toggle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
