"""The strict checks of a page in the browser (issue 18), as functions of a Playwright page: what scripts report
while it loads, what axe-core finds, and what runs out of the viewport. tests/site/test_quality.py applies them to
every page of the built site and shows each of them failing on a small page of its own.

axe-core comes offline with the test-only package `axe-playwright-python` (its `axe.min.js`, axe-core 4.x under
MPL-2.0; the package itself is MIT). The script is injected here with Playwright: the package's own runner accepts
only rule tags, and the book is checked against every rule of WCAG 2.0 and 2.1, A and AA, experimental rules too.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, files
from pathlib import Path

from local import offline

AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]  # WCAG 2.0 and 2.1, levels A and AA
PHONE = {"width": 390, "height": 844}  # a phone's screen in CSS pixels (iPhone 12 to 14)
CONSOLE_PROBLEMS = {"error", "warning", "assert"}  # console messages a reader's browser shows as problems


def axe_script() -> str:
    """axe-core's script, from the package `axe-playwright-python`; fails with the fix when it is missing."""
    try:
        found = [f for f in files("axe-playwright-python") or [] if f.name == "axe.min.js"]
    except PackageNotFoundError:
        found = []
    if not found:
        raise RuntimeError("axe-core's script is missing: pip install -r requirements.txt (axe-playwright-python)")
    return found[0].read_text(encoding="utf-8")


def watch(page, problems: list[str]) -> None:
    """Append to `problems` what the page's scripts throw or log as an error or warning, and every request that
    fails or leaves 127.0.0.1 (the page is kept offline)."""
    offline(page, lambda url: problems.append(f"blocked request to {url}"))
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"console {message.type}: {message.text}") if message.type in CONSOLE_PROBLEMS else None
        ),
    )
    page.on("requestfailed", lambda request: problems.append(f"failed request: {request.url}"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)


# The page as a reader sees it: MathJax has typeset the formulas (its first pass), every image is decoded, and
# (waited for apart, with a time limit) every unit explorer has drawn its map.
_RENDERED = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  await Promise.allSettled(Array.from(document.images).map((img) => { img.loading = "eager"; return img.decode(); }));
}"""
_EXPLORERS_READY = "() => [...document.querySelectorAll('.vgg-explorer')].every((e) => e.dataset.ready === 'true')"


def open_page(
    context, url: str, *, viewport: dict | None = None, redirects_to: str | None = None
) -> tuple[object, list[str]]:
    """A new tab on `url` as a first visit (empty localStorage), offline, watched from the start, once it is
    rendered; returns the tab and the list of its problems (see `watch`). `redirects_to`: the URL a
    `<meta http-equiv="refresh">` page leads to, which is then the page that is checked."""
    problems: list[str] = []
    page = context.new_page()
    if viewport:
        page.set_viewport_size(viewport)
    page.add_init_script("window.localStorage.clear()")  # the theme keeps the colour mode there between pages
    watch(page, problems)
    if redirects_to:
        with page.expect_navigation(url=redirects_to, wait_until="load"):
            page.goto(url, wait_until="load")
    else:
        page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    page.evaluate(_RENDERED)
    page.wait_for_function(_EXPLORERS_READY, timeout=120_000)
    return page, problems


def axe_violations(page, context: str | None = None) -> list[str]:
    """Every violation that axe-core finds on the page (or within the CSS selector `context`) of a rule tagged
    with one of AXE_TAGS, experimental rules included, as "rule (impact): help; the elements" lines.

    Run it after reading the page's problems: axe fetches the page's stylesheets again for its CSS rules, and
    resolves an `@import` against the page rather than the stylesheet (pydata-sphinx-theme's theme.css imports
    "../basic.css"), a failed request that is axe's, not the page's."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(axe_script())
    found = page.evaluate(
        """async ([tags, context]) => {
          const rules = axe.getRules(tags).map((rule) => rule.ruleId);
          const results = await axe.run(context || document, {
            runOnly: { type: "rule", values: rules }, resultTypes: ["violations"],
          });
          return { rules: rules.length, violations: results.violations.map((v) => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map((n) => n.target.join(" ") + " " + (n.failureSummary || "").replace(/\\s+/g, " ")),
          })) };
        }""",
        [AXE_TAGS, context],
    )
    if found["rules"] < 50:  # axe-core 4.x has about 70 rules with these tags: not fewer unless the tags are wrong
        raise RuntimeError(f"axe-core knows only {found['rules']} rules tagged {AXE_TAGS}")
    return [f"{v['id']} ({v['impact']}): {v['help']}; {' | '.join(v['nodes'][:5])}" for v in found["violations"]]


# The document's width against the viewport's, and every element of the article that runs out of the viewport:
# its box, cut to the boxes of the ancestors the reader can scroll sideways (a code block, a table's container),
# still reaches past the left or right edge. An ancestor that hides what overflows does not count: what it cuts
# off, nobody can read.
_OVERFLOW = """(selector) => {
  const width = window.innerWidth;
  const outside = [];
  for (const el of document.querySelectorAll(selector + ", " + selector + " *")) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    let [left, right] = [box.left, box.right];
    for (let up = el.parentElement; up; up = up.parentElement) {
      if (["auto", "scroll"].includes(getComputedStyle(up).overflowX)) {
        const frame = up.getBoundingClientRect();
        [left, right] = [Math.max(left, frame.left), Math.min(right, frame.right)];
      }
    }
    if (right > width + 0.5 || left < -0.5) {
      const classes = typeof el.className === "string" ? el.className.trim().split(/\\s+/) : [];
      const name = el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + classes.map((c) => c && "." + c).join("");
      outside.push(`${name} from ${Math.round(left)} to ${Math.round(right)} px: ` +
        JSON.stringify((el.textContent || "").replace(/\\s+/g, " ").trim().slice(0, 60)));
    }
  }
  return { viewport: width, scroll_width: document.documentElement.scrollWidth, outside };
}"""


def overflow(page, selector: str = "article.bd-article") -> dict:
    """`viewport` (px), the document's `scroll_width` (px), and `outside`: the elements of `selector` (the article)
    that run out of the viewport, each with its visible left and right edge."""
    return page.evaluate(_OVERFLOW, selector)


def checked(context, url: str, screenshot: Path | None = None, **kwargs) -> dict:
    """Open `url` (see `open_page`) and check it: `problems` while it loaded, `axe`'s violations, its `overflow`;
    `url` is where the browser ended up. Saves a screenshot of the whole page to `screenshot`, if given."""
    page, problems = open_page(context, url, **kwargs)
    try:
        loaded = list(problems)  # before axe runs (see axe_violations)
        report = {"url": page.url, "problems": loaded, "overflow": overflow(page), "axe": axe_violations(page)}
        if screenshot:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        return report
    finally:
        page.close()
