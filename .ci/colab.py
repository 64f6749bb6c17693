"""Every chapter in Colab's runtime: Colab's Python and package versions, the helper installed as Colab installs it.

    python3 .ci/colab.py [--jobs N] [--book DIR]   the CI step (.ci/run calls it after the other steps)
    python3 .ci/colab.py refresh BACKEND_INFO      rewrite .ci/colab-runtime.txt from a clone of
                                                   github.com/googlecolab/backend-info (see that file's header)

The CI step, on a clean clone, offline but for the package index:
1. a fresh virtual environment outside the repository, made with Colab's Python (3.13: `python3.13` on the PATH,
   else an installed pyenv 3.13; else it says that Colab's Python is not available and which one it uses);
2. `pip install -r .ci/colab-runtime.txt` (Colab's versions), then the helper from this clone as the chapters'
   first cell installs it in Colab: `pip install --no-deps <clone>` (not editable);
3. stand-ins for Keras' ImageNet files (tests/standin.py) in a folder named by VGGBOOK_WEIGHTS_DIR, because readers
   in Colab get the ImageNet weights: the chapters run on that branch, still offline (VGGBOOK_OFFLINE=1, an empty
   KERAS_HOME, MPLBACKEND unset so that figures are drawn inline as in Colab);
4. every chapter named in `_toc.yml` (.ci/colab_chapters.py), each copied alone into a fresh empty folder and
   run top to bottom in a fresh kernel; non-zero exit, naming the chapter and the cell, when one fails.
It prints the install time and each chapter's seconds and kernel peak memory. Everything it makes is in one
temporary folder, removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PINS = ROOT / ".ci" / "colab-runtime.txt"
RUNNER = ROOT / ".ci" / "colab_chapters.py"
COLAB_PYTHON = "3.13"  # Colab's Python (backend-info's os-info.txt; its patch version is in PINS' header)

# What the chapters import, and what running a notebook needs, by distribution name. The refresh pins each at
# Colab's version, then everything these depend on (pip resolves them) at Colab's version where Colab has it.
CHAPTERS_NEED = [
    "tensorflow",
    "keras",
    "numpy",
    "opencv-python",  # Colab has all three OpenCV distributions; they share the `cv2` folder (see the header)
    "opencv-python-headless",
    "opencv-contrib-python",
    "matplotlib",
    "scikit-image",
    "pandas",
    "scipy",
    "pillow",
    "h5py",
    "ipython",
    "ipykernel",
    "jinja2",  # pandas' Styler, which draws the helper's numbered tables, imports it
]
RUNNING_NEEDS = [
    "jupyter_client",
    "nbclient",
    "nbformat",
    "pytest",  # tests/test_chapters_pretrained.py, whose checks .ci/colab_chapters.py reuses, imports it
    "psutil",  # and this
]


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _runs(python: str) -> bool:
    try:
        return subprocess.run([python, "-c", "import venv"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def find_python() -> tuple[str, str | None]:
    """Colab's Python here: (`python3.13` on the PATH, or pyenv's installed 3.13), with None; else this
    Python, with a sentence saying that Colab's is not available."""
    wanted = f"python{COLAB_PYTHON}"
    on_path = shutil.which(wanted)
    if on_path and _runs(on_path):
        return on_path, None
    pyenv = shutil.which("pyenv")
    if pyenv:  # pyenv's shim is on the PATH but answers only where 3.13 is the selected version
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True).stdout.strip()
        bare = subprocess.run([pyenv, "versions", "--bare"], capture_output=True, text=True).stdout.split()
        found = [v for v in bare if re.fullmatch(rf"{re.escape(COLAB_PYTHON)}\.\d+", v)]
        for version in sorted(found, key=lambda v: int(v.rsplit(".", 1)[1]), reverse=True):
            candidate = Path(root) / "versions" / version / "bin" / wanted
            if _runs(str(candidate)):
                return str(candidate), None
    return sys.executable, (
        f"Colab's Python {COLAB_PYTHON} is not available here (no working {wanted} on the PATH, none in pyenv): "
        f"the chapters run on Python {sys.version.split()[0]} ({sys.executable}) instead, so this run does not "
        "copy Colab's runtime"
    )


def python_version(python: str) -> str:
    return subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"], capture_output=True, text=True, check=True
    ).stdout.strip()


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("$", " ".join(command), flush=True)
    return subprocess.run(command, check=True, **kwargs)


def ci(jobs: int, book: Path) -> int:
    sys.stdout.reconfigure(line_buffering=True)  # its lines in order with those of the commands it runs
    python, fallback = find_python()
    if fallback:
        print(f"WARNING: {fallback}", flush=True)
    print(f"Colab runtime: Python {python_version(python)} ({python}), pins {PINS.relative_to(ROOT)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="vggbook-colab-") as tmp:
        tmp = Path(tmp)
        venv, bin_ = tmp / "venv", tmp / "venv" / "bin"
        start = time.perf_counter()
        run([python, "-m", "venv", str(venv)])
        pip = [str(bin_ / "python"), "-m", "pip", "--disable-pip-version-check"]
        run([*pip, "install", "-qq", "-r", str(PINS)])  # -qq: errors only
        packages = time.perf_counter() - start
        # As the chapters' first cell does in Colab (`%pip install --no-deps git+…`): the helper alone, not editable.
        # From a copy of the clone's files, so that the build leaves nothing behind in the clone (setuptools writes
        # build/ and *.egg-info/ next to the sources).
        source = tmp / "vggbook-source"
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
        for name in filter(None, listed.decode().split("\0")):
            if (ROOT / name).is_file():
                (source / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, source / name)
        run([*pip, "install", "-qq", "--no-deps", str(source)])
        helper = time.perf_counter() - start - packages
        print(f"Install: {packages:.0f} s for the environment and Colab's packages, {helper:.0f} s for the helper")
        run([*pip, "check"])

        standins = tmp / "standin-weights"
        keras_home = tmp / "keras-home"
        keras_home.mkdir()
        env = {key: value for key, value in os.environ.items() if key != "MPLBACKEND"}  # figures inline, as in Colab
        env.update(VGGBOOK_OFFLINE="1", KERAS_HOME=str(keras_home), PYTHONUNBUFFERED="1")
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        write = "import sys, standin; standin.write_standin_folder(sys.argv[1])"  # tests/standin.py, on PYTHONPATH
        run([str(bin_ / "python"), "-c", write, str(standins)], env=env | {"PYTHONPATH": str(ROOT / "tests")})
        env["VGGBOOK_WEIGHTS_DIR"] = str(standins)
        command = [str(bin_ / "python"), str(RUNNER), "--book", str(book), "--work", str(tmp / "chapters")]
        code = subprocess.run([*command, "--jobs", str(jobs)], env=env).returncode
    if fallback:
        print(f"WARNING: {fallback}", flush=True)
    return code


def read_backend_info(path: Path) -> dict[str, str]:
    """pip-freeze.txt, os-info.txt, and the commit (hash, date) of a clone of googlecolab/backend-info."""

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, check=True).stdout

    return {
        "freeze": git("show", "HEAD:pip-freeze.txt"),
        "os": git("show", "HEAD:os-info.txt"),
        "commit": git("log", "-1", "--format=%H").strip(),
        "date": git("log", "-1", "--format=%cs").strip(),
        "subject": git("log", "-1", "--format=%s").strip(),
    }


def refresh(backend_info: Path) -> int:
    """Rewrite PINS: CHAPTERS_NEED and RUNNING_NEEDS at Colab's versions, and all they depend on (resolved by pip
    for Colab's Python) at Colab's versions where Colab has them."""
    info = read_backend_info(backend_info)
    colab = {}
    for line in info["freeze"].splitlines():
        found = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line.strip())
        if found:
            colab[_normal(found.group(1))] = (found.group(1), found.group(2))
    missing = [name for name in CHAPTERS_NEED + RUNNING_NEEDS if _normal(name) not in colab]
    if missing:
        sys.exit(f"Colab's pip-freeze.txt lacks {', '.join(missing)}: pin them by hand, or drop them from this script")
    colab_python = re.search(r"^Python (\S+)", info["os"], re.MULTILINE).group(1)
    python, fallback = find_python()
    if fallback:
        sys.exit(fallback)
    direct = [f"{colab[_normal(n)][0]}=={colab[_normal(n)][1]}" for n in CHAPTERS_NEED + RUNNING_NEEDS]
    with tempfile.TemporaryDirectory() as tmp:
        requirements, constraints, report = (Path(tmp) / n for n in ("direct.txt", "colab.txt", "report.json"))
        requirements.write_text("\n".join(direct) + "\n")
        constraints.write_text("\n".join(f"{name}=={version}" for name, version in colab.values()) + "\n")
        run(
            [python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report)]
            + ["-r", str(requirements), "-c", str(constraints)]
        )
        resolved = [item["metadata"] for item in json.loads(report.read_text())["install"]]
    wanted = {_normal(n) for n in CHAPTERS_NEED + RUNNING_NEEDS}
    dependencies = sorted((m for m in resolved if _normal(m["name"]) not in wanted), key=lambda m: _normal(m["name"]))
    lines = [
        f"# Colab's runtime, as of googlecolab/backend-info commit {info['commit'][:12]} of {info['date']}",
        f'# ("{info["subject"]}"): Python {colab_python}. Written by `python3 .ci/colab.py refresh BACKEND_INFO`;',
        "# .ci/colab.py installs it into a fresh Python 3.13 environment and runs every chapter there (.ci/run).",
        "#",
        "# To refresh: `git clone https://github.com/googlecolab/backend-info /tmp/backend-info` (or pull it),",
        "# `python3 .ci/colab.py refresh /tmp/backend-info`, then `python3 .ci/colab.py` and commit this file.",
        "#",
        "# OpenCV: Colab has opencv-python, opencv-python-headless and opencv-contrib-python, and all three",
        "# install into one `cv2/` folder (the same files: __init__.py, version.py, cv2.abi3.so), so `import cv2`",
        "# gives whichever was installed last. backend-info does not say in what order Colab installs them; one",
        "# `pip install -r` of this file installs same-depth packages in reverse name order, so opencv-contrib-python",
        "# comes last and `import cv2` gives its version (.ci/colab.py prints the one it got).",
        "",
        "# What the chapters import, and what running a notebook needs: Colab's versions.",
        *direct,
        "",
        "# What those depend on, resolved by pip for Python 3.13: Colab's version where Colab has the package.",
    ]
    for meta in dependencies:
        note = "" if _normal(meta["name"]) in colab else "  # not in Colab's image"
        if _normal(meta["name"]) in colab and colab[_normal(meta["name"])][1] != meta["version"]:
            sys.exit(f"pip resolved {meta['name']}=={meta['version']}, Colab has {colab[_normal(meta['name'])][1]}")
        lines.append(f"{meta['name']}=={meta['version']}{note}")
    PINS.write_text("\n".join(lines) + "\n")
    print(f"wrote {PINS.relative_to(ROOT)}: {len(direct)} packages and {len(dependencies)} dependencies")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["refresh"]:
        parser = argparse.ArgumentParser(prog=".ci/colab.py refresh")
        parser.add_argument("backend_info", type=Path, help="a clone of github.com/googlecolab/backend-info")
        return refresh(parser.parse_args(argv[1:]).backend_info)
    parser = argparse.ArgumentParser(prog=".ci/colab.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1, help="chapters run at a time")
    parser.add_argument("--book", type=Path, default=ROOT, help="the book to run (a folder with _toc.yml)")
    args = parser.parse_args(argv)
    return ci(args.jobs, args.book.resolve())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
