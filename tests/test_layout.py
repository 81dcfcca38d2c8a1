"""The package rules of docs/architecture.md, read from the import statements of every module."""

import ast
from pathlib import Path

import pytest

from tests.helpers import ROOT

PACKAGES = (
    "actions",
    "bench",
    "channels",
    "core",
    "evaluation",
    "harness",
    "runtime",
    "staff",
    "stores",
    "tests",
    "understanding",
    "migrations",
)


def imported_packages(path: Path) -> set[str]:
    """The project packages that `path` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names} & set(PACKAGES)
    return found


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", [p for p in PACKAGES if p not in ("actions", "tests")])
def test_nothing_outside_actions_imports_actions(package: str) -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in modules(package)
        if "actions" in imported_packages(path)
    ]
    assert offenders == []


def test_the_shared_core_imports_no_other_package_of_the_project() -> None:
    for path in modules("core"):
        assert imported_packages(path) <= {"core"}, path


@pytest.mark.parametrize("package", ["understanding", "stores", "channels"])
def test_what_rasa_loads_depends_on_the_core_only(package: str) -> None:
    for path in modules(package):
        assert imported_packages(path) <= {"core", package}, path


def test_tests_start_servers_through_the_harness_not_the_benchmark() -> None:
    offenders = [path.name for path in modules("tests") if "bench" in imported_packages(path)]
    assert offenders == []


def test_the_rules_see_imports() -> None:
    """The parser finds what it should: the check above cannot pass by reading nothing."""
    assert imported_packages(ROOT / "actions" / "handoff.py") >= {"actions", "core"}
    assert "harness" in imported_packages(ROOT / "tests" / "servers.py")


def test_the_files_run_first_are_there() -> None:
    """tests/conftest.py's SLOWEST_FIRST names files that exist (a renamed file would fall to
    the end of the run, unnoticed)."""
    from tests.conftest import SLOWEST_FIRST

    assert [name for name in SLOWEST_FIRST if not (ROOT / "tests" / name).is_file()] == []
