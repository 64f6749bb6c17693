"""Colab's runtime for CI: Colab's Python and package versions, the helper installed as Colab installs it.

    python3 .ci/colab.py venv DIR               make that environment in DIR (.ci/run does, in the background)
    python3 .ci/colab.py                        make it in a temporary folder and run every chapter there
    python3 .ci/colab.py refresh BACKEND_INFO   rewrite .ci/colab-runtime.txt from a clone of
                                                github.com/googlecolab/backend-info (see that file's header)

The environment, offline but for the package index:
1. a fresh virtual environment outside the repository, made with Colab's Python (3.13: `python3.13` on the PATH,
   else an installed pyenv 3.13; else it says that Colab's Python is not available and which one it uses);
2. `pip install -r .ci/colab-runtime.txt` (Colab's versions), then the helper from this clone as the chapters'
   first cell installs it in Colab: `pip install --no-deps <clone>` (not editable), and `pip check`.
The chapters run in it through tests/test_chapters_pretrained.py with VGGBOOK_KERNEL_PYTHON naming its Python:
each chapter copied alone into a fresh empty folder, in a fresh kernel of that Python, on the ImageNet branch
(stand-ins for Keras' files, as readers in Colab get ImageNet weights) and on a photo other than the cat.
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
COLAB_PYTHON = "3.13"  # Colab's Python (backend-info's os-info.txt; its patch version is in PINS' header)

# What the chapters import, and what their kernel needs, by distribution name. The refresh pins each at
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


def make_environment(venv: Path) -> Path:
    """Colab's runtime in the new folder `venv` (see the module's docstring); its Python."""
    python, fallback = find_python()
    if fallback:
        print(f"WARNING: {fallback}", flush=True)
    print(f"Colab runtime: Python {python_version(python)} ({python}), pins {PINS.relative_to(ROOT)}", flush=True)
    bin_ = venv / "bin"
    start = time.perf_counter()
    run([python, "-m", "venv", str(venv)])
    pip = [str(bin_ / "python"), "-m", "pip", "--disable-pip-version-check"]
    run([*pip, "install", "-qq", "-r", str(PINS)])  # -qq: errors only
    packages = time.perf_counter() - start
    # As the chapters' first cell does in Colab (`%pip install --no-deps git+…`): the helper alone, not editable.
    # From a copy of the clone's files, so that the build leaves nothing behind in the clone (setuptools writes
    # build/ and *.egg-info/ next to the sources).
    with tempfile.TemporaryDirectory(prefix="vggbook-source-") as source:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
        for name in filter(None, listed.decode().split("\0")):
            if (ROOT / name).is_file():
                (Path(source) / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, Path(source) / name)
        run([*pip, "install", "-qq", "--no-deps", source])
    helper = time.perf_counter() - start - packages
    run([*pip, "check"])
    versions = (
        "import sys, cv2, keras, numpy, tensorflow; print(f'Python {sys.version.split()[0]}, TensorFlow "
        "{tensorflow.__version__}, Keras {keras.__version__}, NumPy {numpy.__version__}, cv2 {cv2.__version__} "
        '(contrib modules: {hasattr(cv2, "ximgproc")})\')'
    )
    run([str(bin_ / "python"), "-c", versions], env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"})
    print(f"Install: {packages:.0f} s for the environment and Colab's packages, {helper:.0f} s for the helper")
    if fallback:
        print(f"WARNING: {fallback}", flush=True)
    return bin_ / "python"


def run_chapters() -> int:
    """Every chapter in Colab's runtime, through tests/test_chapters_pretrained.py (the README's test
    environment runs pytest; the kernels run in the temporary Colab environment)."""
    with tempfile.TemporaryDirectory(prefix="vggbook-colab-") as tmp:
        python = make_environment(Path(tmp) / "venv")
        env = {key: value for key, value in os.environ.items() if key != "MPLBACKEND"} | {
            "VGGBOOK_KERNEL_PYTHON": str(python)
        }
        command = [sys.executable, str(ROOT / "tasks.py"), "test", "tests/test_chapters_pretrained.py", "-rA"]
        return subprocess.run(command, env=env, cwd=ROOT).returncode


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
    """Rewrite PINS: CHAPTERS_NEED at Colab's versions, and all they depend on (resolved by pip
    for Colab's Python) at Colab's versions where Colab has them."""
    info = read_backend_info(backend_info)
    colab = {}
    for line in info["freeze"].splitlines():
        found = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line.strip())
        if found:
            colab[_normal(found.group(1))] = (found.group(1), found.group(2))
    missing = [name for name in CHAPTERS_NEED if _normal(name) not in colab]
    if missing:
        sys.exit(f"Colab's pip-freeze.txt lacks {', '.join(missing)}: pin them by hand, or drop them from this script")
    colab_python = re.search(r"^Python (\S+)", info["os"], re.MULTILINE).group(1)
    python, fallback = find_python()
    if fallback:
        sys.exit(fallback)
    direct = [f"{colab[_normal(n)][0]}=={colab[_normal(n)][1]}" for n in CHAPTERS_NEED]
    with tempfile.TemporaryDirectory() as tmp:
        requirements, constraints, report = (Path(tmp) / n for n in ("direct.txt", "colab.txt", "report.json"))
        requirements.write_text("\n".join(direct) + "\n")
        constraints.write_text("\n".join(f"{name}=={version}" for name, version in colab.values()) + "\n")
        run(
            [python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report)]
            + ["-r", str(requirements), "-c", str(constraints)]
        )
        resolved = [item["metadata"] for item in json.loads(report.read_text())["install"]]
    wanted = {_normal(n) for n in CHAPTERS_NEED}
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
        "# What the chapters import, and what their kernel needs: Colab's versions.",
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
    sys.stdout.reconfigure(line_buffering=True)  # its lines in order with those of the commands it runs
    if argv[:1] == ["refresh"]:
        parser = argparse.ArgumentParser(prog=".ci/colab.py refresh")
        parser.add_argument("backend_info", type=Path, help="a clone of github.com/googlecolab/backend-info")
        return refresh(parser.parse_args(argv[1:]).backend_info)
    if argv[:1] == ["venv"]:
        parser = argparse.ArgumentParser(prog=".ci/colab.py venv")
        parser.add_argument("folder", type=Path, help="a folder that does not exist yet")
        folder = parser.parse_args(argv[1:]).folder.resolve()
        if folder.exists():
            sys.exit(f"{folder} exists: name a new folder for the environment")
        make_environment(folder)
        return 0
    if argv:
        sys.exit(__doc__)
    return run_chapters()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
