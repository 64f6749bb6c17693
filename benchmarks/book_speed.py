"""How long the whole book takes to test and to build, and how much memory each chapter needs (issue #6).

(a) `pytest --nbmake book/` wall time on 2 workers (`-n 2`, pytest-xdist), on 2 workers whose kernels use one
    TensorFlow thread each (no oversubscription of the 2 cores), and on one (`-n 0`); the `-n 0` run also gives
    each chapter's own time. Goal: ≤ 4 min.
(b) A site rebuild with unchanged notebooks: one `jupyter-book build` of a temporary copy of the book
    (cold: executes every chapter), then a second build of the same copy (warm: execution cache). Goal ≤ 30 s.
(c) Peak memory of each chapter's kernel, on both branches (issue #11): "random" as the tests run it (offline,
    no ImageNet weights) and "pretrained" with stand-ins for Keras' ImageNet files (tests/standin.py, Keras'
    layout and names, seeded random numbers; written once into a temporary folder) named by
    VGGBOOK_WEIGHTS_DIR, still offline. Every notebook runs in its own runner process (nbclient); this script
    reaps the runner with os.wait4, whose ru_maxrss is the largest RSS in the runner's process tree. The
    runner waits for its kernel, and the kernel prints its own peak RSS in an extra last cell, so the report
    shows both numbers: they agree when the figure is the kernel's. An extra first cell records which of
    Keras' files vggbook reads (`vggbook.weights.cached_file`), so the pretrained run also states the
    download each chapter needs: the sum of the sizes Keras publishes for those files. Goals: a block
    chapter ≤ 1.5 GB on either branch; architecture and classifier ≤ 2.5 GB on the pretrained branch.

Chapters are taken from the working tree (`_toc.yml`, skipping entries whose file does not exist yet). Runs
offline like the test suite (VGGBOOK_OFFLINE=1, an empty KERAS_HOME), kernels drawing their figures inline
(MPLBACKEND unset). Prints, asserts nothing. Run:
`python benchmarks/book_speed.py [--only nbmake rebuild memory] [--branches random pretrained]`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MARKER = "VGGBOOK_KERNEL_PEAK_KIB="
FILES_MARKER = "VGGBOOK_KERAS_FILES="
# First cell of a measured notebook: wrap vggbook.weights.cached_file (where every Keras file is found or
# fetched) in every vggbook module that holds it, to record the names of the files it returns.
RECORD_CELL = """import sys
import vggbook.weights
_bench_files, _bench_cached_file = [], vggbook.weights.cached_file
def _bench_record(*args, **kwargs):
    path = _bench_cached_file(*args, **kwargs)
    _bench_files.append(path.name)
    return path
for _module in [m for name, m in sys.modules.items() if name.startswith("vggbook")]:
    if getattr(_module, "cached_file", None) is _bench_cached_file:
        _module.cached_file = _bench_record"""
PEAK_CELL = (
    f"import resource\nprint('{MARKER}%d' % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    f"print('{FILES_MARKER}' + ','.join(sorted(set(_bench_files))))"
)
# What a reader downloads for each file: the sizes Keras' server sends (keras.utils.get_file prints them,
# e.g. "58889256/58889256"); any other file is counted at its size in the stand-in folder, marked "*".
KERAS_SIZES = {
    "vgg16_weights_tf_dim_ordering_tf_kernels.h5": 553_467_096,
    "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5": 58_889_256,
    "imagenet_class_index.json": 35_363,
}


def offline_env(keras_home: str) -> dict[str, str]:
    """Offline weights policy and an empty Keras home, as in the test suite (no VGGBOOK_WEIGHTS_DIR: the random
    branch); MPLBACKEND unset, because with it the kernels would not draw their inline figures (the site build
    and a reader's run draw them)."""
    env = {key: value for key, value in os.environ.items() if key not in ("MPLBACKEND", "VGGBOOK_WEIGHTS_DIR")}
    return env | {"VGGBOOK_OFFLINE": "1", "KERAS_HOME": keras_home, "TF_CPP_MIN_LOG_LEVEL": "2"}


def chapters() -> list[str]:
    """Entries of `_toc.yml` that exist in the working tree, e.g. `book/block1` (`.md` pages included)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    entries = [toc["root"]] + [c["file"] for part in toc.get("parts", []) for c in part.get("chapters", [])]
    return [e for e in entries if any((ROOT / f"{e}{ext}").is_file() for ext in (".md", ".ipynb"))]


def stamp() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M:%S} UTC, load average {load}"


def nbmake(env: dict[str, str]) -> None:
    """(a) Wall time of the chapters as tests, on 2 workers and on 1; per-chapter times from the serial run."""
    notebooks = [f"{e}.ipynb" for e in chapters() if (ROOT / f"{e}.ipynb").is_file()]
    print(f"\n(a) pytest --nbmake on {len(notebooks)} notebooks   [{stamp()}]")
    one_thread = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1"}
    runs = [("-n 2", "2", {}), ("-n 2, one TF thread per kernel", "2", one_thread), ("-n 0", "0", {})]
    for label, workers, threads in runs:
        cmd = [str(BIN / "pytest"), "--nbmake", "-n", workers, "-q", "-p", "no:cacheprovider", "--durations=0"]
        start = time.perf_counter()
        run = subprocess.run(cmd + notebooks, cwd=ROOT, env=env | threads, capture_output=True, text=True)
        wall = time.perf_counter() - start
        tail = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-300:]
        print(f"  {label:31s} {wall:6.1f} s wall ({wall / 60:.1f} min; goal ≤ 4 min)   [{tail}]")
        if workers == "0":
            for seconds, name in re.findall(r"^([\d.]+)s call\s+(\S+\.ipynb)", run.stdout, flags=re.M):
                print(f"      {name:28s} {float(seconds):6.1f} s")
    print(f"  done [{stamp()}]")


def rebuild(env: dict[str, str]) -> None:
    """(b) A cold build of a temporary copy of the book, then a warm rebuild with the execution cache."""
    entries = chapters()
    with tempfile.TemporaryDirectory(prefix="vggbook-build-") as tmp:
        copy = Path(tmp)
        for name in ("_config.yml", "book"):
            (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, copy / name)
        toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
        for part in toc.get("parts", []):
            part["chapters"] = [c for c in part.get("chapters", []) if c["file"] in entries]
        toc["parts"] = [p for p in toc.get("parts", []) if p["chapters"]]
        (copy / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
        print(f"\n(b) jupyter-book build of a copy with {len(entries)} pages   [{stamp()}]")
        for label in ("cold (executes every chapter)", "warm (unchanged notebooks, cache)"):
            start = time.perf_counter()
            build = [str(BIN / "jupyter-book"), "build", str(copy)]
            run = subprocess.run(build, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - start
            ok = "ok" if run.returncode == 0 and (copy / "_build/html/index.html").is_file() else "FAILED"
            print(f"  {label:36s} {wall:6.1f} s  [{ok}]")
            if ok != "ok":
                print(run.stdout[-2000:], run.stderr[-2000:])
                return
        print(f"  goal for the warm rebuild: ≤ 30 s   [{stamp()}]")


def run_notebook(path: str) -> None:
    """Runner process of (c): execute one notebook with nbclient, print the peaks and Keras' files as JSON."""
    import resource

    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(RECORD_CELL))
    nb.cells.append(nbformat.v4.new_code_cell(PEAK_CELL))
    start = time.perf_counter()
    where = {"metadata": {"path": str(Path(path).parent)}}  # run in the notebook's folder, as nbmake does
    NotebookClient(nb, timeout=900, kernel_name="python3", resources=where).execute()
    seconds = time.perf_counter() - start
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("output_type") == "stream")
    kernel = int(re.search(rf"{MARKER}(\d+)", text).group(1))
    files = re.search(rf"{FILES_MARKER}(.*)", text).group(1)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "keras_files": files.split(",") if files else [],
                "kernel_self_kib": kernel,  # what the kernel says about itself, in its last cell
                "runner_children_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,  # the reaped kernel
                "runner_self_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            }
        )
    )


def download_size(files: list[str], folder: Path | None) -> str:
    """'58.9 MB (…_notop.h5)': what a reader downloads for these of Keras' files."""
    if not files:
        return "none"
    sizes = [KERAS_SIZES.get(name) or (folder / name).stat().st_size for name in files]
    short = ", ".join(name.replace("_weights_tf_dim_ordering_tf_kernels", "_…") for name in files)
    unsure = "*" if any(name not in KERAS_SIZES for name in files) else ""
    return f"{sum(sizes) / 1e6:.1f} MB{unsure} ({short})"


def memory(env: dict[str, str], branches: list[str]) -> None:
    """(c) Each notebook in its own runner, per branch; the runner's tree peak from os.wait4, checked against
    the kernel's; on the pretrained branch the download the chapter needs."""
    with tempfile.TemporaryDirectory(prefix="vggbook-standin-") as standin_dir:
        if "pretrained" in branches:
            sys.path.insert(0, str(ROOT / "tests"))
            import standin

            start = time.perf_counter()
            standin.write_standin_folder(standin_dir)
            print(f"\n(stand-in ImageNet files written to {standin_dir} in {time.perf_counter() - start:.1f} s)")
        for branch in branches:
            branch_env = env | {"VGGBOOK_WEIGHTS_DIR": standin_dir} if branch == "pretrained" else env
            memory_of_branch(branch, branch_env, Path(standin_dir) if branch == "pretrained" else None)
    print("  goals: a block chapter ≤ 1.5 GB on either branch; architecture and classifier ≤ 2.5 GB pretrained")


def memory_of_branch(branch: str, env: dict[str, str], standin_dir: Path | None) -> None:
    """(c) for one branch: a table row per chapter."""
    print(f"\n(c) peak memory per chapter, {branch} branch (one runner + kernel per notebook)   [{stamp()}]")
    download = "  download it needs (Keras' files it reads)" if standin_dir else ""
    print(f"  {'chapter':16s} {'wait4 peak':>11s} {'kernel says':>12s} {'runner':>8s} {'time':>7s}{download}")
    for entry in chapters():
        path = ROOT / f"{entry}.ipynb"
        if not path.is_file():
            continue
        with tempfile.TemporaryFile("w+") as out:
            proc = subprocess.Popen(
                [sys.executable, __file__, "--run-notebook", str(path)], stdout=out, stderr=subprocess.DEVNULL, env=env
            )
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            lines = out.read().strip().splitlines()
        if proc.returncode != 0 or not lines:
            print(f"  {path.stem:16s} FAILED (exit {proc.returncode})")
            continue
        peaks = json.loads(lines[-1])
        gb = 1024**2  # KiB in a GB (2**30 bytes)
        kernel_is_it = "= kernel" if abs(usage.ru_maxrss - peaks["kernel_self_kib"]) <= 0.02 * usage.ru_maxrss else "?"
        needs = f"  {download_size(peaks['keras_files'], standin_dir)}" if standin_dir else ""
        print(
            f"  {path.stem:16s} {usage.ru_maxrss / gb:8.2f} GB {peaks['kernel_self_kib'] / gb:9.2f} GB"
            f" {peaks['runner_self_kib'] / gb:5.2f} GB {peaks['seconds']:6.1f} s  {kernel_is_it:8s}{needs}"
        )
    print(f"  GB = 2**30 bytes, MB = 10**6 bytes; * = size of the stand-in, not Keras' file   [{stamp()}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=["nbmake", "rebuild", "memory"], default=None)
    parser.add_argument("--branches", nargs="+", choices=["random", "pretrained"], default=["random", "pretrained"])
    parser.add_argument("--run-notebook", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_notebook:
        run_notebook(args.run_notebook)
        return
    print(f"book speed on {os.cpu_count()} CPUs, Python {sys.version.split()[0]}   [{stamp()}]")
    with tempfile.TemporaryDirectory(prefix="vggbook-keras-home-") as keras_home:
        env = offline_env(keras_home)
        for name in args.only or ["nbmake", "rebuild", "memory"]:
            if name == "memory":
                memory(env, args.branches)
            else:
                {"nbmake": nbmake, "rebuild": rebuild}[name](env)


if __name__ == "__main__":
    main()
