"""The two commands of the README, each setting itself up in a virtual environment.

    python3 tasks.py test [pytest args…]        unit tests and every chapter (pytest + nbmake)
    python3 tasks.py book [jupyter-book args…]  build the site into _build/html

The first run makes `.venv` and installs `requirements.txt` into it; later runs reinstall only when
requirements.txt or pyproject.toml changed. Needs nothing but Python 3.11 or 3.12.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".requirements.sha256"


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


def forget_stale_outputs() -> None:
    """The execution cache keys a chapter on its own cells only: drop it when the helper package changed,
    so that `book` re-runs the chapters instead of showing outputs of the old helper."""
    build = ROOT / "_build"
    cache, stamp = build / ".jupyter_cache", build / ".vggbook.sha256"
    digest = digest_of(sorted((ROOT / "src" / "vggbook").rglob("*.py")))
    stale = [cache, build / ".doctrees"]  # Sphinx re-reads a page only without its doctree
    built_before = any(path.exists() for path in stale)
    if built_before and (not stamp.exists() or stamp.read_text() != digest):
        print("src/vggbook changed since the last build: every chapter runs again", flush=True)
        for path in stale:
            shutil.rmtree(path, ignore_errors=True)
    build.mkdir(exist_ok=True)
    stamp.write_text(digest)


def main(argv: list[str]) -> int:
    commands = {
        "test": [str(BIN / "python"), "-m", "pytest"],
        "book": [str(BIN / "jupyter-book"), "build", "."],
    }
    if not argv or argv[0] not in commands:
        print(__doc__)
        return 2
    ensure_venv()
    if argv[0] == "book":
        forget_stale_outputs()
    # Without MPLBACKEND: where it is set, the chapters' kernels do not draw their figures inline.
    env = {key: value for key, value in os.environ.items() if key != "MPLBACKEND"}
    return subprocess.run(commands[argv[0]] + argv[1:], cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
