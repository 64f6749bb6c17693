"""tasks.py, the README's two commands: `book` forgets outputs of an older helper package and prints the PDF."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tasks(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("tasks", ROOT / "tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "ROOT", tmp_path)
    (tmp_path / "src" / "vggbook").mkdir(parents=True)
    (tmp_path / "src" / "vggbook" / "features.py").write_text("x = 1\n")
    return module


def _built(root: Path) -> None:
    for folder in (".jupyter_cache", ".doctrees"):
        (root / "_build" / folder).mkdir(parents=True, exist_ok=True)


def test_outputs_survive_while_the_helper_is_unchanged(tasks, tmp_path):
    tasks.forget_stale_outputs()  # first build: nothing to forget, the stamp is written
    _built(tmp_path)
    tasks.forget_stale_outputs()
    assert (tmp_path / "_build" / ".jupyter_cache").is_dir() and (tmp_path / "_build" / ".doctrees").is_dir()


def test_a_changed_helper_runs_every_chapter_again(tasks, tmp_path, capsys):
    tasks.forget_stale_outputs()
    _built(tmp_path)
    (tmp_path / "src" / "vggbook" / "features.py").write_text("x = 2\n")
    tasks.forget_stale_outputs()
    assert not (tmp_path / "_build" / ".jupyter_cache").exists()
    assert not (tmp_path / "_build" / ".doctrees").exists()
    assert "src/vggbook changed" in capsys.readouterr().out
    _built(tmp_path)
    tasks.forget_stale_outputs()  # the new helper is now the one built with
    assert (tmp_path / "_build" / ".jupyter_cache").is_dir()


class Recorder:
    """Stands in for subprocess.run: records each command, answers with the next of `codes` (then 0)."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []
        self.codes: list[int] = []

    def __call__(self, command: list[str], **kwargs) -> subprocess.CompletedProcess:
        self.commands.append(command)
        return subprocess.CompletedProcess(command, self.codes.pop(0) if self.codes else 0)


@pytest.fixture
def runs(tasks, tmp_path, monkeypatch) -> Recorder:
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters: []\n")
    recorder = Recorder()
    monkeypatch.setattr(tasks.subprocess, "run", recorder)
    return recorder


def test_book_builds_the_site_then_one_page_then_prints_it(tasks, tmp_path, runs, monkeypatch):
    chromium = tmp_path / "chromium"
    chromium.write_text("")
    monkeypatch.setenv("VGGBOOK_CHROMIUM", str(chromium))
    old_pdf = tmp_path / "_build" / "html" / tasks.PDF_NAME
    old_pdf.parent.mkdir(parents=True)
    old_pdf.write_text("a PDF of an older book")
    assert tasks.build_book(["-W", "--keep-going"], env={}) == 0
    site, single, printer = runs.commands
    assert site[1:] == ["build", ".", "--builder", "html", "-W", "--keep-going"]
    assert single[1:] == ["build", ".", "--builder", "singlehtml", "-W", "--keep-going"]
    assert printer[1].endswith("print_pdf.py")
    single_site = str(tmp_path / "_build" / "singlehtml")
    assert printer[2:] == [single_site, "book/intro.html", str(old_pdf), "--chromium", str(chromium)]
    assert not old_pdf.exists()  # the printer (not run here) writes the new one


def test_book_without_chromium_builds_the_site_and_says_how_to_get_the_pdf(tasks, tmp_path, runs, monkeypatch, capsys):
    monkeypatch.delenv("VGGBOOK_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "no-browsers-here"))
    assert tasks.build_book([], env={}) == 0
    assert [command[4] for command in runs.commands] == ["html", "singlehtml"]
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("PDF skipped") and "apt install chromium" in line and "VGGBOOK_CHROMIUM=" in line


def test_book_stops_at_a_failed_site_build(tasks, tmp_path, runs, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no-browsers-here"))
    runs.codes.append(1)
    assert tasks.build_book(["-W"], env={}) == 1
    assert [command[4] for command in runs.commands] == ["html"]


def test_a_wrong_chromium_path_is_an_error_before_any_build(tasks, tmp_path, runs, monkeypatch):
    monkeypatch.setenv("VGGBOOK_CHROMIUM", str(tmp_path / "missing"))
    with pytest.raises(SystemExit, match="VGGBOOK_CHROMIUM=.*missing is not a file"):
        tasks.build_book([], env={})
    assert runs.commands == []


def test_test_shares_its_executions_with_book_when_asked(tasks, tmp_path):
    env = {"VGGBOOK_BUILD_CACHE": "1"}
    tasks.share_executions_with_book(env)
    assert env["VGGBOOK_BUILD_CACHE"] == str(tmp_path / "_build" / ".jupyter_cache")
    _built(tmp_path)  # the tests filled the cache
    tasks.forget_stale_outputs()  # the helper is the one the tests ran: `book` keeps their outputs
    assert (tmp_path / "_build" / ".jupyter_cache").is_dir()


def test_a_chapter_run_by_the_tests_is_what_the_build_finds_in_its_cache(tmp_path):
    import nbformat
    from conftest import cache_executed_notebook
    from jupyter_cache import get_cache
    from nbclient import NotebookClient

    chapter = tmp_path / "chapter.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A chapter"),
        nbformat.v4.new_code_cell("print(6 * 7)", metadata={"tags": ["remove-input"]}),
    ]
    nbformat.write(nb, chapter)
    executed = nbformat.read(chapter, nbformat.NO_CONVERT)
    NotebookClient(executed, record_timing=True).execute()  # as nbmake runs it: timings in the cells' metadata
    assert "execution" in executed.cells[1].metadata
    cache = tmp_path / "cache"
    cache_executed_notebook(cache, chapter, executed, 1.5)
    # what jupyter-book's "cache" mode does with the chapter as committed
    record = get_cache(str(cache)).match_cache_notebook(nbformat.read(chapter, nbformat.NO_CONVERT))
    assert record.data == {"execution_seconds": 1.5}
    _, merged = get_cache(str(cache)).merge_match_into_notebook(nbformat.read(chapter, nbformat.NO_CONVERT))
    assert merged.cells[1].outputs[0]["text"] == "42\n"
    edited = nbformat.read(chapter, nbformat.NO_CONVERT)
    edited.cells[1].source = "print(6 * 9)"
    with pytest.raises(KeyError):  # a changed chapter is not served the old outputs
        get_cache(str(cache)).match_cache_notebook(edited)
