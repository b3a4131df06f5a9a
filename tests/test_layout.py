"""The cut between the two sides (docs/architecture.md, "The two sides"), read from the code.

The far side is stdlib-only and self-contained; the host imports only the far-side modules that
say, in their docstring, that both ends import them: those are the lines a protocol change
touches, so the mark must be true both ways.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pytest_remote_serial"
REMOTE = PACKAGE / "remote"
MARK = "Both ends import this module"


def _far_modules() -> dict[str, Path]:
    return {path.stem: path for path in sorted(REMOTE.glob("*.py")) if path.stem != "__init__"}


def _marked() -> set[str]:
    return {name for name, path in _far_modules().items()
            if MARK in (ast.get_docstring(ast.parse(path.read_text())) or "")}


def _module_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module the file imports, absolute, at any depth (lazy imports in functions too);
    ``from pkg import name`` counts as ``pkg.name`` where that is a module of this package."""
    here = _module_of(path).split(".")
    if path.name != "__init__.py":
        here = here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = here[:len(here) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _far_names(imports: set[str]) -> set[str]:
    prefix = "pytest_remote_serial.remote."
    return {name[len(prefix):].partition(".")[0] for name in imports if name.startswith(prefix)} & set(_far_modules())


def _host_files() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if REMOTE not in p.parents]


def test_the_host_imports_only_the_far_side_modules_marked_as_used_by_both_ends():
    marked = _marked()
    used: dict[str, list[str]] = {}
    for path in _host_files():
        for name in _far_names(_imports(path)):
            used.setdefault(name, []).append(str(path.relative_to(PACKAGE)))
    unmarked = {name: files for name, files in used.items() if name not in marked}
    assert not unmarked, f"the host imports far-side modules not marked {MARK!r}: {unmarked}"
    unused = marked - set(used)
    assert not unused, f"marked as used by both ends, but the host does not import: {unused}"
    assert {"protocol", "wire", "envelope"} <= marked  # what any protocol change touches


def test_the_far_side_imports_only_the_standard_library_and_itself():
    allowed = set(sys.stdlib_module_names) | {"__future__"}
    for name, path in _far_modules().items():
        for module in _imports(path):
            top = module.partition(".")[0]
            if module.startswith("pytest_remote_serial.remote"):
                continue
            # Imported on a target only where the host sent them (injected zips) or the image has them.
            optional = {"cloudpickle", "dill", "numpy", "cupy"}
            assert top in allowed or top in optional, f"remote/{name}.py imports {module}"
            assert not module.startswith("pytest_remote_serial"), f"remote/{name}.py imports the host: {module}"


def test_the_far_side_has_no_import_circle():
    graph = {name: _far_names(_imports(path)) - {name} for name, path in _far_modules().items()}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, "import circle: " + " -> ".join(path[path.index(name):] + (name,))
        if name in done:
            return
        for nxt in sorted(graph[name]):
            visit(nxt, path + (name,))
        done.add(name)

    for name in graph:
        visit(name, ())


def test_the_package_cites_its_own_design_document_only():
    """Code and messages cite docs/architecture.md, which ships with the project."""
    root = PACKAGE.parent
    cited = []
    for path in [*PACKAGE.rglob("*.py"), *(root / "benchmarks").rglob("*.py"), *(root / "tests").rglob("*.py"),
                 *(root / "examples").rglob("*.py"), root / "README.md", root / "noxfile.py",
                 *(root / "docs").rglob("*.md"), *(root / "benchmarks").rglob("*.md")]:
        if path != Path(__file__).resolve() and "DESIGN §" in path.read_text():
            cited.append(str(path.relative_to(root)))
    assert not cited, f"these cite a design brief that is not part of the project: {cited}"
    assert (root / "docs" / "architecture.md").is_file()
