"""The package's layout: which part may import which, no import cycles, no oversized files.

The graph is read from the source with ``ast`` (nothing is imported): every ``import`` and
``from ... import`` of a focus_ros module, absolute or relative, at any depth of a file (function-level
imports included), except under ``if TYPE_CHECKING:``, which never runs: an annotation may name a
module that imports this one. ``from PKG import NAME`` is an edge to the module PKG.NAME when that is
a module, else to PKG itself (its ``__init__``). Importing a module also runs its parent
packages' ``__init__``, but that is not an edge here: a package ``__init__`` importing its own
submodules, which import their siblings, is how packages are built, not a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "focus_ros"
MAX_LINES = 700
# what the runtime (focus_ros.core) must never import: it is loaded by all of them
NOT_FROM_CORE = ("focus_ros.eval", "focus_ros.training", "focus_ros.cli", "focus_ros.bags", "focus_ros.ros")


def _modules() -> dict[str, Path]:
    """Every Python module under focus_ros by dotted name (a package by its ``__init__.py``)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _type_checking(node: ast.AST) -> bool:
    """Whether ``node`` is ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``)."""
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        isinstance(test, ast.Name)
        and test.id == "TYPE_CHECKING"
        or isinstance(test, ast.Attribute)
        and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` except the bodies of ``if TYPE_CHECKING:`` blocks (their ``else`` runs)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        todo.extend(node.orelse if _type_checking(node) else ast.iter_child_nodes(node))


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The focus_ros modules that module ``name`` (at ``path``) imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for target in targets:
            # "import a.b.c" names the module a.b.c; an unknown name resolves to its nearest module
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target.startswith("focus_ros") and target != name:
                out.add(target)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path that returns to its start, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return stack[stack.index(dep) :] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_reader_sees_relative_absolute_and_function_level_imports():
    graph = _graph()
    assert "focus_ros.core.pipeline" in graph["focus_ros.cli.common"]  # function-level, relative
    assert "focus_ros.eval.scenes" in graph["focus_ros.training.data"]  # module-level, relative
    assert "focus_ros.eval.bench" in graph["focus_ros.cli.bench"]  # "from ..eval import bench"
    assert "focus_ros.eval.scene_styles" in graph["focus_ros.eval.scenes"]  # function-level; and under
    tree = ast.parse("if TYPE_CHECKING:\n    import a\nelse:\n    import b\nimport c\n")  # TYPE_CHECKING: not
    assert {a.name for n in _runtime_nodes(tree) if isinstance(n, ast.Import) for a in n.names} == {"b", "c"}
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_under_focus_ros_is_part_of_an_import_cycle():
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()))


def test_the_runtime_imports_no_evaluation_training_tool_or_ros_code():
    bad = {
        name: sorted(dep for dep in deps if dep.startswith(NOT_FROM_CORE))
        for name, deps in _graph().items()
        if name == "focus_ros.core" or name.startswith("focus_ros.core.")
    }
    assert not {k: v for k, v in bad.items() if v}


def test_evaluation_never_imports_training_tools_or_ros():
    bad = {
        name: sorted(dep for dep in deps if dep.startswith(NOT_FROM_CORE[1:]))
        for name, deps in _graph().items()
        if name.startswith("focus_ros.eval")
    }
    assert not {k: v for k, v in bad.items() if v}


def test_training_imports_only_the_runtime_and_evaluation():
    allowed = ("focus_ros.core", "focus_ros.eval", "focus_ros.training")
    bad = {
        name: sorted(dep for dep in deps if not dep.startswith(allowed))
        for name, deps in _graph().items()
        if name.startswith("focus_ros.training")
    }
    assert not {k: v for k, v in bad.items() if v}


def test_no_python_file_under_focus_ros_is_over_700_lines():
    long = {
        str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long
