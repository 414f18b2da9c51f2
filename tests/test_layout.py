"""The architecture as rules: layers point one way (handlers → bot → queries), and modules stay small."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "handlers", "queries")
# The composition root is the one place in bot/ that knows the entry points, so it can wire them.
COMPOSITION_ROOT = {"bot/app.py"}
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 40
# A module or function over the limit says why in a comment carrying this marker (within its first lines).
WHY_LONG = "# long:"


def sources(*packages: str) -> Iterator[Path]:
    """Every Python file under the given top-level packages."""
    for package in packages:
        yield from sorted((ROOT / package).rglob("*.py"))


def rel(path: Path) -> str:
    """The path as the repository names it."""
    return path.relative_to(ROOT).as_posix()


def imported_modules(path: Path) -> list[tuple[str, list[str], bool]]:
    """(module, names, type_checking_only) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            guarded.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, [], id(node) in guarded) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names], id(node) in guarded))
    return found


def top(module: str) -> str:
    """The top-level package of a dotted module name."""
    return module.split(".")[0]


def test_queries_import_nothing_from_bot_or_handlers() -> None:
    """queries/ is the bottom layer: SQL and its row types only."""
    bad = [f"{rel(p)} imports {m}" for p in sources("queries") for m, _, _ in imported_modules(p)
           if top(m) in {"bot", "handlers"}]
    assert bad == []


def test_bot_does_not_reach_up_into_handlers() -> None:
    """bot/ holds behaviour; only the composition root names entry points."""
    bad = [f"{rel(p)} imports {m}" for p in sources("bot") for m, _, _ in imported_modules(p)
           if top(m) == "handlers" and rel(p) not in COMPOSITION_ROOT]
    assert bad == []


def test_no_handler_imports_another() -> None:
    """Shared behaviour lives in bot/, so entry points stay independent of each other."""
    bad = []
    for path in sources("handlers"):
        if path.name == "__init__.py" and path.parent == ROOT / "handlers":
            continue  # handlers/__init__.py lists the entry points for the composition root
        own = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        bad += [f"{rel(path)} imports {m}" for m, _, _ in imported_modules(path)
                if top(m) == "handlers" and m != own]
    assert bad == []


def test_blocks_import_no_database_code() -> None:
    """bot/blocks/ renders values: no driver, no pool, no query function — only row types from queries/."""
    bad = []
    for path in sources("bot/blocks"):
        for module, names, _ in imported_modules(path):
            if top(module) == "asyncpg" or module in {"bot.db", "queries.executor"}:
                bad.append(f"{rel(path)} imports {module}")
            elif top(module) == "queries":
                loaded = importlib.import_module(module)
                bad += [f"{rel(path)} imports {module}.{name}, which is not a value type" for name in names
                        if not (isinstance(getattr(loaded, name), type)
                                and dataclasses.is_dataclass(getattr(loaded, name)))]
    assert bad == []


def test_sql_lives_in_queries() -> None:
    """No SQL statement is written in bot/ or handlers/: they call typed functions from queries/."""
    keywords = ("SELECT ", "INSERT INTO", "UPDATE ", "DELETE FROM", "pg_advisory", "LISTEN ", "NOTIFY ")
    bad = []
    for path in sources("bot", "handlers"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.lstrip() \
                    and any(node.value.lstrip().startswith(k) for k in keywords):
                bad.append(f"{rel(path)}:{node.lineno}")
    assert bad == []


def _explains(lines: list[str], start: int) -> bool:
    """Whether a `# long:` comment sits on the lines just before or at the start of a definition."""
    window = lines[max(0, start - 3):start + 2]
    return any(WHY_LONG in line for line in window)


@pytest.mark.parametrize("package", PACKAGES)
def test_modules_and_functions_are_small_or_say_why(package: str) -> None:
    """Modules under ~300 lines and functions under ~40, unless a `# long:` comment says why."""
    bad = []
    for path in sources(package):
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        if len(lines) > MAX_MODULE_LINES and WHY_LONG not in "\n".join(lines[:15]):
            bad.append(f"{rel(path)}: {len(lines)} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if length > MAX_FUNCTION_LINES and not _explains(lines, first - 1):
                    bad.append(f"{rel(path)}:{node.lineno} {node.name}() is {length} lines")
    assert bad == []


def test_every_lint_ignore_says_why() -> None:
    """A `# noqa` or `# type: ignore` is followed by a comment giving its reason."""
    marker = re.compile(r"#\s*(noqa|type:\s*ignore)\b(?P<rest>.*)$")
    bad = []
    for path in sources("bot", "handlers", "queries", "tests", "bench"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            found = marker.search(line)
            if found and "#" not in found.group("rest") and "marker = re.compile" not in line:
                bad.append(f"{rel(path)}:{number}")
    assert bad == []
