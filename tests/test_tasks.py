"""tasks.py, the README's two commands: the site build forgets outputs of an older helper package."""

from __future__ import annotations

import importlib.util
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
