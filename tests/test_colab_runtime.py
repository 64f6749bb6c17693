"""The Colab-runtime environment (.ci/colab.py) and what it copies (.ci/colab-runtime.txt).

- Colab's pinned versions satisfy what pyproject.toml declares: Colab installs the helper with `--no-deps`, so
  pip never checks that there, and a floor above Colab's version would go unnoticed until a reader's run fails.
- The README's table of Colab's versions is the pinned file's, and its ranges are requirements.txt's.
- The chapters run in it through tests/test_chapters_pretrained.py (VGGBOOK_KERNEL_PYTHON), tested there.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PINS = ROOT / ".ci" / "colab-runtime.txt"


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> dict[str, str]:
    """{distribution: version} of .ci/colab-runtime.txt."""
    found = {}
    for line in PINS.read_text().splitlines():
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if match:
            found[normal(match.group(1))] = match.group(2)
    return found


def declared() -> list[Requirement]:
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [r for reqs in table.get("optional-dependencies", {}).values() for r in reqs]
    return [Requirement(r) for r in table["dependencies"] + extras]


def readme_table() -> list[list[str]]:
    """Rows of the README's table of Colab's versions: [distribution, requirements.txt, Colab]."""
    section = (ROOT / "README.md").read_text().split("## Python and package versions", 1)[1].split("\n## ", 1)[0]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in section.splitlines()]
    return [row for row in rows if len(row) == 3 and row[0] not in ("Distribution", "---")]


def test_the_pins_copy_a_named_colab_runtime():
    header = PINS.read_text().split("\n\n", 1)[0]
    assert re.search(r"googlecolab/backend-info commit [0-9a-f]{12} of \d{4}-\d{2}-\d{2}", header), header
    assert re.search(r"Python 3\.13\.\d+", header), header
    assert {"tensorflow", "keras", "numpy", "ipykernel", "opencv-python"} <= set(pins())


def test_colab_versions_satisfy_what_pyproject_declares():
    pinned = pins()
    for requirement in declared():
        name = normal(requirement.name)
        assert name in pinned, f"{requirement.name} is declared in pyproject.toml but not pinned in {PINS.name}"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"pyproject.toml asks {requirement}, Colab has {pinned[name]}: Colab's --no-deps install would break"
        )


def test_the_readme_names_colab_python_and_versions_as_pinned():
    colab_python = re.search(r"Python (3\.13\.\d+)", PINS.read_text()).group(1)
    readme = (ROOT / "README.md").read_text()
    assert f"it runs Python {colab_python}" in readme
    ranges = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            ranges[normal(requirement.name)] = str(requirement.specifier)
    rows = readme_table()
    assert len(rows) >= 10, rows
    pinned = pins()
    for name, in_requirements, colab in rows:
        assert colab == pinned[normal(name)], f"README: Colab has {name} {colab}; {PINS.name}: {pinned[normal(name)]}"
        expected = ",".join(sorted(ranges[normal(name)].split(","))) if normal(name) in ranges else "—"
        assert ",".join(sorted(in_requirements.split(","))) == expected, f"{name}: README {in_requirements}"
