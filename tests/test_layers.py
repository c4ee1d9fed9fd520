"""The library's shape: every module declares its public API in ``__all__``, and the layers point one way.

Layers (DESIGN.md): notebooks -> presentation (``course_lib.notebook``) and course tooling
(``course_lib.tooling``) -> concept modules (``course_lib/*.py``) -> torch/numpy. A concept module never
imports presentation, tooling or the model zoo; presentation never imports tooling; no module imports
another module's private (``_x``) names. The imports are read with ``ast``, not executed, so an import
inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import types
from pathlib import Path

import pytest

import course_lib

LIBRARY = Path(course_lib.__file__).resolve().parent
PACKAGE = LIBRARY.name  # "course_lib"
PRESENTATION, TOOLING, ZOO = f"{PACKAGE}.notebook", f"{PACKAGE}.tooling", f"{PACKAGE}.zoo"


def module_name(path: Path) -> str:
    """course_lib/notebook/runtime.py -> course_lib.notebook.runtime; a package's __init__ -> the package."""
    parts = path.relative_to(LIBRARY.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


FILES = {module_name(path): path for path in sorted(LIBRARY.rglob("*.py"))}


# --------------------------------------------------------------------------------------------------
# __all__


def top_level_definitions(tree: ast.Module) -> set[str]:
    """Names a module defines itself at its top level: functions, classes and assigned names."""
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return names


@pytest.mark.parametrize("name", sorted(FILES))
def test_all_lists_exactly_the_public_api(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, list), f"{name} has no __all__ list"
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats names: {sorted(exported)}"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what the module does not have: {missing}"
    not_own = sorted(set(exported) - top_level_definitions(ast.parse(FILES[name].read_text(encoding="utf-8"))))
    assert not not_own, f"{name}.__all__ re-exports names defined elsewhere: {not_own}"
    assert not [n for n in exported if n.startswith("_")], f"{name}.__all__ lists private names"
    namespace: dict[str, object] = {}
    exec(f"from {name} import *", namespace)  # what a learner's `import *` brings
    modules = sorted(k for k, v in namespace.items() if isinstance(v, types.ModuleType) and not k.startswith("__"))
    assert not modules, f"`from {name} import *` brings modules: {modules}"
    public = sorted(k for k, v in vars(module).items()
                    if not k.startswith("_") and (inspect.isfunction(v) or inspect.isclass(v))
                    and v.__module__ == name)
    unlisted = sorted(set(public) - set(exported))
    assert not unlisted, f"{name} defines public functions or classes missing from __all__: {unlisted}"


def test_every_module_is_checked() -> None:
    """The parametrisation above sees every module, sub-packages included (none silently skipped)."""
    expected = {PACKAGE, f"{PACKAGE}.validation", PRESENTATION, f"{PRESENTATION}.runtime", f"{TOOLING}.syllabus"}
    assert expected <= set(FILES), f"not found: {sorted(expected - set(FILES))}"


# --------------------------------------------------------------------------------------------------
# layers


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module an ImportFrom reads from (relative imports resolved against module)."""
    if not node.level:
        return node.module or ""
    package = module if is_package else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str, list[str]]]:
    """(line, module imported from, names taken from it) for every import statement, nested ones too.

    ``import a.b`` gives ("a.b", []); ``from a import b, c`` gives ("a", ["b", "c"]).
    """
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, _resolve(node, module, is_package), [a.name for a in node.names]))
    return found


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def forbidden_for(module: str) -> tuple[str, ...]:
    """The parts of the library that ``module`` must not import."""
    if module == PACKAGE or (module.count(".") == 1 and module != ZOO):  # a concept module (or the package)
        return PRESENTATION, TOOLING, ZOO
    if _within(module, PRESENTATION):
        return (TOOLING,)
    return ()


def layer_violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """Every import of ``source`` (the text of ``module``) that breaks the layering, as readable lines."""
    problems = []
    for line, imported, names in _imports(ast.parse(source), module, is_package):
        # `from course_lib import notebook` imports the sub-package as surely as `import course_lib.notebook`
        targets = [imported] + [f"{imported}.{n}" for n in names]
        for forbidden in forbidden_for(module):
            if any(_within(target, forbidden) for target in targets):
                problems.append(f"{module}:{line} imports {forbidden}")
        if _within(imported, PACKAGE):
            private = [n for n in imported.split(".") + names
                       if n.startswith("_") and not n.endswith("__") and n != "*"]  # __version__ is public
            if private and imported != module:
                problems.append(f"{module}:{line} imports private {private} from {imported}")
    return problems


@pytest.mark.parametrize("name", sorted(FILES))
def test_the_layers_point_one_way(name: str) -> None:
    path = FILES[name]
    assert layer_violations(path.read_text(encoding="utf-8"), name, path.name == "__init__.py") == []


@pytest.mark.parametrize("module, source", [
    ("course_lib.attention", "import course_lib.notebook.runtime"),
    ("course_lib.attention", "from course_lib.notebook.checks import check_close"),
    ("course_lib.attention", "from course_lib import notebook"),
    ("course_lib.attention", "from course_lib.tooling import syllabus"),
    ("course_lib.models", "from course_lib.zoo import load_tiny_gpt"),
    ("course_lib.models", "from . import zoo"),
    ("course_lib.models", "from .notebook.plotting import PALETTE"),
    ("course_lib.models", "def f():\n    from course_lib.zoo import train\n"),  # nested imports count too
    ("course_lib", "from course_lib.notebook import runtime"),
    ("course_lib.notebook.widgets", "from course_lib.tooling.syllabus import LESSONS"),
    ("course_lib.notebook.widgets", "from ..tooling import student_edition"),
    ("course_lib.costs", "from course_lib.attention import _check_qkv"),
    ("course_lib.zoo", "from course_lib.models import TinyGPT, _check_shape"),
    ("course_lib.notebook.graphs", "from .plotting import _private_style"),
])
def test_a_forbidden_import_is_reported(module: str, source: str) -> None:
    assert len(layer_violations(source, module)) == 1


@pytest.mark.parametrize("module, source", [
    ("course_lib.models", "from course_lib.attention import KVCache\nimport torch.nn.functional as F"),
    ("course_lib.measure", "from torch.utils._pytree import tree_flatten"),  # torch's privates are torch's business
    ("course_lib.zoo", "from course_lib.models import TinyGPT"),  # the zoo may use every concept
    ("course_lib.notebook.graphs", "from course_lib.notebook.plotting import PALETTE\nimport course_lib.autograd"),
    ("course_lib.tooling.syllabus", "from course_lib.notebook import runtime"),
    ("course_lib.attention", "from __future__ import annotations"),
])
def test_an_allowed_import_is_not_reported(module: str, source: str) -> None:
    assert layer_violations(source, module) == []
