"""One registry of settings (core/settings.py: SETTINGS), and everything that names a setting
agrees with it: the docs' table, the deployment's environment file, the YAML files Rasa expands,
scripts/run.sh, and every module that reads the environment."""

import ast
import re

import pytest

from core import settings
from tests.helpers import ROOT

PACKAGES = ("actions", "channels", "core", "runtime", "staff", "stores", "understanding")


def test_the_docs_table_is_the_registry_s() -> None:
    docs = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    assert settings.markdown_table() in docs, "run `python -m core.settings` and paste its table"


def test_the_environment_file_names_exactly_the_registered_settings() -> None:
    text = (ROOT / "deploy" / "systemd" / "assistant.env.example").read_text(encoding="utf-8")
    named = re.findall(r"^#?([A-Z][A-Z0-9_]+)=", text, re.M)
    assert len(named) == len(set(named)), "a setting is named twice"
    assert set(named) == set(settings.REGISTRY)


def test_what_rasa_and_make_run_expand_is_registered() -> None:
    expanded = set()
    for name in ("credentials.yml", "endpoints.yml"):
        lines = (ROOT / name).read_text(encoding="utf-8").splitlines()
        text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
        expanded |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)\}", text))
    run = (ROOT / "scripts" / "run.sh").read_text(encoding="utf-8")
    expanded |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]+):-", run))
    assert expanded >= {"WECHAT_TOKEN", "ACTION_SERVER_TOKEN", "RASA_PORT"}  # the scan reads
    assert expanded <= set(settings.REGISTRY), expanded - set(settings.REGISTRY)


def environment_reads(path) -> list[str]:
    """The names a module reads with os.environ.get(...), os.environ[...] or os.getenv(...)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = ast.unparse(node.func)
            if target in ("os.environ.get", "os.getenv") and node.args:
                names.append(ast.unparse(node.args[0]))
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            names.append(ast.unparse(node.slice))
    return names


def test_only_the_registry_reads_the_environment() -> None:
    readers = {
        str(path.relative_to(ROOT)): environment_reads(path)
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert readers["core/settings.py"], "the scan finds the registry's own read"
    others = {path: names for path, names in readers.items() if names}
    others.pop("core/settings.py")
    assert others == {}, "read through settings.read(NAME), after registering NAME"


def test_an_unregistered_name_is_refused() -> None:
    with pytest.raises(KeyError, match="not a registered setting"):
        settings.read("NOT_A_SETTING")


def test_set_values_are_checked() -> None:
    good = {
        "RETENTION_DAYS": "30",
        "SESSION_SECRET": "x" * 32,
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "WORKER_HANG_SECONDS": "30",
        "STAFF_SECURE_COOKIES": "1",
        "RASA_PORT": "5005",
    }
    assert settings.problems(good) == []
    bad = {
        "RETENTION_DAYS": "0",
        "SESSION_SECRET": "short",
        "REDIS_URL": "127.0.0.1:6379",
        "WORKER_HANG_SECONDS": "abc",
        "STAFF_SECURE_COOKIES": "maybe",
        "RASA_PORT": "70000",
    }
    found = settings.problems(bad)
    assert sorted(line.split("=")[0] for line in found) == sorted(bad), found
    assert all(": must be " in line for line in found), found
    assert "WORKER_HANG_SECONDS='abc': must be a number" in found
