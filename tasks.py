"""The two commands of the README, each setting itself up in a virtual environment.

    python3 tasks.py test [pytest args…]        unit tests and every chapter (pytest + nbmake)
    python3 tasks.py book [jupyter-book args…]  build the site into _build/html, and the whole book as
                                                one PDF in it, _build/html/vgg16-from-scratch.pdf

The first run makes `.venv` and installs `requirements.txt` into it; later runs reinstall only when
requirements.txt or pyproject.toml changed. Needs nothing but Python 3.11 or 3.12; the PDF also needs
Chromium (`apt install chromium`, or VGGBOOK_CHROMIUM=/path/to/chromium), else it is skipped.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".requirements.sha256"
PDF_NAME = "vgg16-from-scratch.pdf"  # in the published site, next to index.html; book/intro.md links to it


def digest_of(paths: list[Path]) -> str:
    """sha256 of the files' contents, in the order given."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def requirements_digest() -> str:
    return digest_of([ROOT / "requirements.txt", ROOT / "pyproject.toml"])


def ensure_venv() -> None:
    """Create .venv and install requirements.txt into it, unless that is already done."""
    if sys.version_info < (3, 11):  # noqa: UP036 (tasks.py runs on whatever python3 the reader has)
        sys.exit(f"Python 3.11 or 3.12 is needed, this is {sys.version.split()[0]}")
    if not (BIN / "python").exists() and not (BIN / "python.exe").exists():
        print(f"creating {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    digest = requirements_digest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    python = str(BIN / "python")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True, cwd=ROOT)
    subprocess.run([python, "-m", "pip", "install", "-r", "requirements.txt"], check=True, cwd=ROOT)
    STAMP.write_text(digest)


def helper_digest() -> str:
    """sha256 of the helper package: its Python, and the unit explorer's script and style."""
    helper = ROOT / "src" / "vggbook"
    return digest_of(sorted(p for p in helper.rglob("*") if p.suffix in {".py", ".js", ".css"}))


def forget_stale_outputs() -> None:
    """The execution cache keys a chapter on its own cells only: drop it when the helper package changed,
    so that `book` re-runs the chapters instead of showing outputs of the old helper."""
    build = ROOT / "_build"
    cache, stamp = build / ".jupyter_cache", build / ".vggbook.sha256"
    digest = helper_digest()
    stale = [cache, build / ".doctrees"]  # Sphinx re-reads a page only without its doctree
    built_before = any(path.exists() for path in stale)
    if built_before and (not stamp.exists() or stamp.read_text() != digest):
        print("src/vggbook changed since the last build: every chapter runs again", flush=True)
        for path in stale:
            shutil.rmtree(path, ignore_errors=True)
    build.mkdir(exist_ok=True)
    stamp.write_text(digest)


def find_chromium() -> str | None:
    """The browser that prints the PDF: $VGGBOOK_CHROMIUM if set, else `chromium` on the PATH; None if neither."""
    chosen = os.environ.get("VGGBOOK_CHROMIUM")
    if chosen and not Path(chosen).is_file():
        sys.exit(f"VGGBOOK_CHROMIUM={chosen} is not a file: set it to Chromium's executable, or unset it")
    return chosen or shutil.which("chromium")


def root_page() -> str:
    """The page Jupyter Book's single-page build writes the whole book into: `_toc.yml`'s root, e.g. book/intro.html."""
    found = re.search(r"^root:\s*[\"']?([^\s\"'#]+)", (ROOT / "_toc.yml").read_text(), re.MULTILINE)
    if found is None:
        sys.exit("_toc.yml has no `root:` line: cannot tell which page of the single-page build to print")
    return f"{found.group(1).removesuffix('.md').removesuffix('.ipynb')}.html"


def build_book(args: list[str], env: dict[str, str]) -> int:
    """The site (`jupyter-book build .`), then the same book as one page, printed to PDF inside the site.

    `args` go to both builds; the second reuses the first one's executed notebooks (_build/.jupyter_cache).
    The printing runs in the venv's Python, which has Playwright: tests/site/print_pdf.py.
    """
    chromium = find_chromium()
    pdf = ROOT / "_build" / "html" / PDF_NAME
    pdf.unlink(missing_ok=True)  # never a PDF of an older book next to a new site
    for builder in ("html", "singlehtml"):
        command = [str(BIN / "jupyter-book"), "build", ".", "--builder", builder, *args]
        code = subprocess.run(command, cwd=ROOT, env=env).returncode
        if code != 0:
            return code
    if chromium is None:
        print("PDF skipped: no Chromium found (apt install chromium, or set VGGBOOK_CHROMIUM=/path/to/chromium)")
        return 0
    printer = ROOT / "tests" / "site" / "print_pdf.py"
    single = ROOT / "_build" / "singlehtml"
    command = [str(BIN / "python"), str(printer), str(single), root_page(), str(pdf), "--chromium", chromium]
    return subprocess.run(command, cwd=ROOT, env=env).returncode


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("test", "book"):
        print(__doc__)
        return 2
    ensure_venv()
    # Without MPLBACKEND: where it is set, the chapters' kernels do not draw their figures inline.
    env = {key: value for key, value in os.environ.items() if key != "MPLBACKEND"}
    if argv[0] == "book":
        forget_stale_outputs()
        return build_book(argv[1:], env)
    if env.get("VGGBOOK_BUILD_CACHE"):
        share_executions_with_book(env)
    return subprocess.run([str(BIN / "python"), "-m", "pytest", *argv[1:]], cwd=ROOT, env=env).returncode


def share_executions_with_book(env: dict[str, str]) -> None:
    """VGGBOOK_BUILD_CACHE=1 (CI sets it): every chapter that runs without error under the tests is stored in
    the execution cache the site build reads (tests/conftest.py), stamped with this helper's digest, so that a
    `book` after `test` renders those outputs instead of running every chapter a second time. Only where the
    build would compute the same: CI is offline, so both take the random branch. A reader with network who
    runs `book` gets the ImageNet branch, which is why this is not the default."""
    build = ROOT / "_build"
    build.mkdir(exist_ok=True)
    (build / ".vggbook.sha256").write_text(helper_digest())
    env["VGGBOOK_BUILD_CACHE"] = str(build / ".jupyter_cache")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
