"""Package boundaries: contracts and runtime (`shared/iioe`) ← services ← application tools (`iioe_tools`).

Each layer may import only the layers below it, at module level or inside a function alike.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every absolute module a file imports (`import a.b`, `from a.b import c`), with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"import_module", "find_spec"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def violations(package: Path, forbidden: tuple[str, ...]) -> list[str]:
    out = []
    for path in sorted(package.rglob("*.py")):
        for line, module in imported_modules(path):
            if module.split(".")[0] in forbidden:
                out.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return out


def test_the_checker_sees_imports_in_every_form(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        "import services.x\n"
        "from iioe_tools.cli import main\n"
        "def f():\n"
        "    from services import y\n"
        "    importlib.import_module('iioe_tools.embedded')\n"
        "from . import sibling\n"
        "import iioe.subjects\n"
    )
    found = sorted(module for _, module in imported_modules(tmp_path / "m.py"))
    assert found == ["iioe.subjects", "iioe_tools.cli", "iioe_tools.embedded", "services", "services.x"]


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("shared/iioe", ("services", "iioe_tools", "tests")),
        ("services", ("iioe_tools", "tests")),
        ("iioe_tools", ("tests",)),
    ],
)
def test_a_package_imports_only_the_layers_below_it(package: str, forbidden: tuple[str, ...]) -> None:
    root = ROOT / package
    assert any(root.rglob("*.py")), f"{package} holds no Python files: the check would pass vacuously"
    # a service's own unit tests are test code (they may use test helpers), not the service
    found = [v for v in violations(root, forbidden) if "/tests/" not in v]
    assert found == [], "\n".join(found)


SUBJECT_LITERAL = re.compile(r"^iioe\.(events|contacts|commands|dlq|analytics)\.")


def subject_literals(path: Path) -> list[tuple[int, str]]:
    """String constants (not docstrings) that spell out a NATS subject, f-strings included."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    f_string_parts = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
    skipped = docstrings | f_string_parts
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
            head = node.values[0].value
            if isinstance(head, str) and SUBJECT_LITERAL.match(head):
                found.append((node.lineno, head + "…"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skipped:
            if SUBJECT_LITERAL.match(node.value):
                found.append((node.lineno, node.value))
    return found


def test_the_checker_finds_subject_literals(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        '"""Reads `iioe.events.>` (a docstring is prose)."""\n'
        'A = "iioe.contacts.*.educator_contact.v1"\n'
        'def f(inst):\n    return f"iioe.commands.{inst}.register_educator"\n'
    )
    assert [line for line, _ in subject_literals(tmp_path / "m.py")] == [2, 4]


def test_subjects_are_spelled_only_in_iioe_subjects() -> None:
    subjects_module = ROOT / "shared" / "iioe" / "subjects.py"
    found = [
        f"{path.relative_to(ROOT)}:{line}: {text}"
        for package in ("shared/iioe", "services", "iioe_tools")
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != subjects_module and "/tests/" not in str(path)
        for line, text in subject_literals(path)
    ]
    assert found == [], "\n".join(found)
