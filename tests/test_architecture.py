"""The layout in docs/architecture.md, checked: domain packages import only the layers below them, module
imports form no cycle, and no service hides an import inside a function."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ROOT / "portal" / "services"

# package -> the domain packages it may import (docs/architecture.md, "The domain packages")
ALLOWED = {
    "platform": set(),
    "crm": {"platform"},
    "payments": {"platform"},
    "work": {"platform", "crm", "payments"},
    "billing": {"platform", "crm", "payments", "work"},
    "plans": {"platform", "crm", "payments"},
    "overview": {"platform", "crm", "payments", "work", "billing", "plans"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """(module-level imports, function-level imports with line numbers) of `portal`/`admin` modules."""
    tree = ast.parse(path.read_text())
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    top: list[str] = []
    inner: list[tuple[str, int]] = []

    def targets(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        base = node.module or ""
        if node.level:
            base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
        # `from pkg import mod` imports pkg.mod when mod is a module
        found = []
        for alias in node.names:
            candidate = f"{base}.{alias.name}"
            as_path = ROOT / Path(*candidate.split("."))
            found.append(candidate if as_path.with_suffix(".py").exists() or as_path.is_dir() else base)
        return found

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                for target in targets(child):
                    if target.split(".")[0] in ("portal", "admin"):
                        (inner.append((target, child.lineno)) if in_function else top.append(target))
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, True)
            else:
                visit(child, in_function)

    visit(tree, False)
    return top, inner


def _service_files() -> list[Path]:
    return sorted(SERVICES.rglob("*.py"))


def test_at_most_eight_modules_sit_directly_in_services():
    assert len(list(SERVICES.glob("*.py"))) <= 8


def test_no_service_imports_a_portal_module_inside_a_function():
    hidden = [f"{p.relative_to(ROOT)}:{line} {target}" for p in _service_files() for target, line in _imports(p)[1]]
    assert hidden == []


def test_domain_packages_import_only_the_layers_below_them():
    wrong = []
    for path in _service_files():
        parts = path.relative_to(SERVICES).parts
        if len(parts) < 2:
            continue
        domain = parts[0]
        for target in _imports(path)[0]:
            bits = target.split(".")
            if (bits[:2] == ["portal", "services"] and len(bits) > 2 and bits[2] in ALLOWED and bits[2] != domain
                    and bits[2] not in ALLOWED[domain]):
                wrong.append(f"{path.relative_to(ROOT)} imports {target}")
    assert wrong == []


def test_module_imports_form_no_cycle():
    graph: dict[str, set[str]] = {}
    for path in sorted((ROOT / "portal").rglob("*.py")) + sorted((ROOT / "admin").rglob("*.py")):
        name = _module_name(path)
        deps = set()
        for target in _imports(path)[0]:
            bits = target.split(".")
            # importing a.b.c runs a/__init__ and a.b/__init__ too
            deps.update(".".join(bits[:i]) for i in range(1, len(bits) + 1))
        deps.discard(name)
        graph[name] = {d for d in deps if not name.startswith(d + ".")}  # a package's own parents run first
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(" → ".join(stack[stack.index(dep):] + [dep]))
            elif dep in graph and dep not in state:
                walk(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node)
    assert cycles == []


def test_the_readme_and_docs_point_only_inside_the_repository():
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        assert "../" not in text, doc.name

