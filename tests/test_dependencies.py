"""pyproject.toml declares every third-party package the helper imports, and this environment satisfies it.

The imports are read from src/vggbook/*.py with `ast` (every `import` and `from … import`, at the top of a module
or inside a function), the module → distribution map comes from `importlib.metadata.packages_distributions()`.
OpenCV is declared in the `opencv` extra, not in the required dependencies: its four distributions
(opencv-python, -headless, -contrib-python, -contrib-python-headless) all install the same `cv2` folder, so
requiring one would put a second OpenCV into an environment that has another (Colab has three already).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
HELPER = ROOT / "src" / "vggbook"
OPENCV = {"opencv-python", "opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless"}


def normal(name: str) -> str:
    """A distribution name in PEP 503's normal form (`Jinja2` and `jinja_2` compare equal)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirements() -> tuple[list[Requirement], dict[str, list[Requirement]]]:
    """pyproject's required dependencies, and its extras."""
    table = project()
    extras = {name: [Requirement(r) for r in reqs] for name, reqs in table.get("optional-dependencies", {}).items()}
    return [Requirement(r) for r in table.get("dependencies", [])], extras


def optional_imports(tree: ast.AST) -> set[ast.AST]:
    """The import statements inside a `try` whose handlers catch ImportError (or ModuleNotFoundError): the
    helper works without those modules (Colab's own `google.colab`, for instance), so they need no declaration."""
    guarded = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try):
            caught = set()
            for handler in node.handlers:
                kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
                caught |= {kind.id for kind in kinds if isinstance(kind, ast.Name)}
            if caught & {"ImportError", "ModuleNotFoundError"}:
                guarded |= {n for statement in node.body for n in ast.walk(statement)}
    return guarded


def third_party_imports(sources: dict[str, str]) -> dict[str, set[str]]:
    """{top-level module: the files importing it} for every absolute import in `sources` ({file name: code})
    that is neither the standard library nor vggbook itself, nor optional (`optional_imports`)."""
    found: dict[str, set[str]] = {}
    for name, code in sources.items():
        tree = ast.parse(code, filename=name)
        optional = optional_imports(tree)
        for node in ast.walk(tree):
            if node in optional:
                continue
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top not in {"vggbook", "__future__"}:
                    found.setdefault(top, set()).add(name)
    return found


def undeclared(imports: dict[str, set[str]], declared: set[str], distributions: dict[str, list[str]]) -> list[str]:
    """One sentence per imported module that no declared distribution provides."""
    problems = []
    for module, files in sorted(imports.items()):
        providers = {normal(d) for d in distributions.get(module, [])}
        if not providers:
            problems.append(f"{module} (imported by {', '.join(sorted(files))}) is installed by no distribution here")
        elif not providers & declared:
            problems.append(
                f"{module} (imported by {', '.join(sorted(files))}) comes from {', '.join(sorted(providers))}, "
                "which pyproject.toml does not declare"
            )
    return problems


def helper_sources() -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(HELPER.glob("*.py"))}


def test_the_helper_imports_third_party_packages():
    imports = third_party_imports(helper_sources())
    assert {"keras", "numpy", "cv2", "skimage"} <= set(imports), sorted(imports)


def test_every_third_party_import_of_the_helper_is_declared():
    required, extras = requirements()
    declared = {normal(r.name) for r in required} | {normal(r.name) for reqs in extras.values() for r in reqs}
    problems = undeclared(third_party_imports(helper_sources()), declared, packages_distributions())
    assert not problems, "pyproject.toml [project] dependencies:\n" + "\n".join(problems)


def test_an_undeclared_import_is_named():
    sources = {
        "a.py": "import numpy as np\nfrom yaml import safe_load\n",
        "b.py": "def f():\n    import cv2\n",
        "c.py": "try:\n    from google.colab import files\nexcept ImportError:\n    files = None\n",
        "d.py": "try:\n    import torch\nexcept ValueError:\n    pass\n",
    }
    imports = third_party_imports(sources)
    assert imports.pop("torch") == {"d.py"}, "an import guarded by another exception is not optional"
    assert imports == {"numpy": {"a.py"}, "yaml": {"a.py"}, "cv2": {"b.py"}}
    distributions = {"numpy": ["numpy"], "yaml": ["PyYAML"], "cv2": ["opencv-python", "opencv-contrib-python"]}
    problems = undeclared(imports, {"numpy", "opencv-contrib-python"}, distributions)
    assert problems == ["yaml (imported by a.py) comes from pyyaml, which pyproject.toml does not declare"]
    assert undeclared({"nowhere": {"c.py"}}, set(), {}) == [
        "nowhere (imported by c.py) is installed by no distribution here"
    ]


def test_opencv_is_an_extra_never_a_requirement():
    required, extras = requirements()
    assert not {normal(r.name) for r in required} & OPENCV, "a required OpenCV would be a second one next to Colab's"
    opencv_extras = {name: [r for r in reqs if normal(r.name) in OPENCV] for name, reqs in extras.items()}
    assert [len(reqs) for reqs in opencv_extras.values() if reqs] == [1], f"one OpenCV, in one extra: {extras}"


def test_every_declared_dependency_has_a_floor():
    required, extras = requirements()
    for requirement in required + [r for reqs in extras.values() for r in reqs]:
        assert any(spec.operator == ">=" for spec in requirement.specifier), f"{requirement} has no floor"


@pytest.mark.parametrize("requirement", requirements()[0], ids=str)
def test_this_environment_satisfies_the_declared_floors(requirement):
    """The environment the tests run in is one that pyproject allows (pip checks the same when installing)."""
    try:
        installed = version(requirement.name)
    except PackageNotFoundError:
        pytest.fail(f"{requirement.name} is declared but not installed")
    assert requirement.specifier.contains(installed, prereleases=True), f"{requirement.name} {installed}"
