"""The folders are the architecture: who may import whom, no import circles, no textual in node/."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# what each part of node/ may import from the rest of node/ (besides itself and the top-level
# modules errors, clock, runtime, config and loops); seed and user never import each other
ALLOWED = {
    "wire": set(),
    "storage": set(),
    "crypto": {"wire", "storage"},
    "seed": {"wire", "crypto", "storage"},
    "user": {"wire", "crypto", "storage"},
    "cli": {"wire", "crypto", "storage", "seed", "user", "bench"},
    "bench": {"wire", "crypto", "storage", "seed", "user"},
}
# "": the node package itself
TOP = {"", "errors", "clock", "runtime", "config", "loops", "__main__"}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, typing: bool = False, root: Path = ROOT) -> set[str]:
    """The project modules `path` imports (absolute names), at any depth of the file; with
    `typing`, those imported only under `if TYPE_CHECKING:` too."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    # names imported only for type checking create no import at run time
    for guard in [n for n in ast.walk(tree) if isinstance(n, ast.If) and not typing]:
        if _type_checking(guard.test):
            guard.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)
    return {m for m in found if m.split(".")[0] in ("node", "tui")}


def _type_checking(test: ast.expr) -> bool:
    """`TYPE_CHECKING` or `typing.TYPE_CHECKING`, as an `if` tests it."""
    if isinstance(test, ast.Attribute):
        return test.attr == "TYPE_CHECKING"
    return isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"


def graph(typing: bool = False, root: Path = ROOT) -> dict[str, set[str]]:
    files = [*root.joinpath("node").rglob("*.py"), *root.joinpath("tui").rglob("*.py")]
    modules = {module_name(f, root): f for f in files}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        # an import of a name inside a module counts as an import of that module
        found = imports(path, typing, root)
        edges[name] = {m if m in modules else m.rsplit(".", 1)[0] for m in found}
        edges[name] = {m for m in edges[name] if m in modules and m != name}
    return edges


def part(module: str) -> str:
    bits = module.split(".")
    return bits[1] if len(bits) > 1 else ""


def test_each_part_imports_only_what_it_builds_on():
    wrong = []
    for module, targets in graph().items():
        if not module.startswith("node.") or part(module) in TOP:
            continue
        allowed = ALLOWED[part(module)] | {part(module)} | TOP
        for target in targets:
            if target.startswith("tui") or part(target) not in allowed:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(wrong)


def circles_in(edges: dict[str, set[str]]) -> list[list[str]]:
    """Each import circle found by a depth-first walk, as the modules around it."""
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges.get(module, ())):
            if state.get(target) == 1:
                circles.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    return circles


def test_no_import_circles():
    circles = circles_in(graph())
    assert not circles, "\n".join(" -> ".join(c) for c in circles)


def test_no_import_circles_even_for_type_checking():
    """A circle closed only by an `if TYPE_CHECKING:` import still ties the modules together:
    each part of the seed reaches the others through a narrow interface (`seed/sides.py`), and
    the app's parts see the app through `tui/host.py`."""
    circles = circles_in(graph(typing=True))
    assert not circles, "\n".join(" -> ".join(c) for c in circles)


def copy_of_the_tree(tmp_path: Path) -> Path:
    """node/ and tui/ copied, so a probe module is added to the copy, never to the tree that
    the other tests (on other workers) are reading at the same time."""
    for top in ("node", "tui"):
        shutil.copytree(ROOT / top, tmp_path / top, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_checker_sees_a_circle_closed_for_type_checking(tmp_path):
    root = copy_of_the_tree(tmp_path)
    probes = [root / "node" / "seed" / f"_layering_probe_{n}.py" for n in ("a", "b")]
    probes[0].write_text("from . import _layering_probe_b\n")
    probes[1].write_text(
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
        "    from ._layering_probe_a import x\n"
    )
    assert not circles_in(graph(root=root))
    circle = [f"node.seed._layering_probe_{n}" for n in ("a", "b", "a")]
    assert circle in circles_in(graph(typing=True, root=root))


def test_node_imports_no_textual():
    code = (
        "import sys, pkgutil, importlib, node\n"
        "for m in pkgutil.walk_packages(node.__path__, 'node.'):\n"
        "    m.name.endswith('__main__') or importlib.import_module(m.name)\n"
        "bad = [m for m in sys.modules if m == 'textual' or m.startswith('textual.')]\n"
        "print(len(list(pkgutil.walk_packages(node.__path__, 'node.'))))\n"
        "sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) >= 30  # every module of node/ was imported


def test_the_checker_sees_a_forbidden_import(tmp_path):
    """The rules above can fail: a seed module importing the user side is caught."""
    root = copy_of_the_tree(tmp_path)
    (root / "node" / "seed" / "_layering_probe.py").write_text("from ..user import node\n")
    edges = graph(root=root)
    assert "node.user.node" in edges["node.seed._layering_probe"]


# what tui/ may import from node/: the UserNode API, its events and the row types it returns,
# the config, the errors, names and wire limits, fingerprints as text and the data dirs. The
# seed side only where the app hosts the embedded seed, the command line helpers only in the
# app's own command line. Everything else (the seed link, the store, the outbox) is reached
# through UserNode and its events.
TUI_ALLOWED = {
    "node.user.node",
    "node.user.events",
    "node.user.acts",  # the pure vocabulary of replies, reactions and edits (no I/O)
    "node.config",
    "node.errors",
    "node.wire.names",
    "node.wire.protocol",
    "node.crypto.keys",
    "node.storage.files",
}
TUI_ROW_TYPES = {
    "node.user.store": {"StoredMessage"},
    "node.user.group_store": {"GroupMessage"},
    "node.user.groups": {"GroupState"},
}
TUI_ONLY_IN = {
    "node.seed.server": {"tui.embedded"},
    "node.cli.common": {"tui.cli"},
    "node.runtime": {"tui.cli"},
}


def tui_imports(path: Path) -> list[tuple[str, set[str]]]:
    """(node module, names taken from it) for each import of node/ in a tui/ file."""
    found: list[tuple[str, set[str]]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and not node.level and node.module:
            if node.module.split(".")[0] == "node":
                found.append((node.module, {a.name for a in node.names}))
        elif isinstance(node, ast.Import):
            found += [(a.name, set()) for a in node.names if a.name.split(".")[0] == "node"]
    return found


def tui_reaches(root: Path = ROOT) -> list[str]:
    """Each import of node/ by tui/ that is not through the node's API."""
    wrong = []
    for path in root.joinpath("tui").rglob("*.py"):
        module = module_name(path, root)
        for target, names in tui_imports(path):
            if target in TUI_ALLOWED or module in TUI_ONLY_IN.get(target, set()):
                continue
            rows = TUI_ROW_TYPES.get(target)
            if rows is not None and names and names <= rows:
                continue
            wrong.append(f"{module} imports {', '.join(sorted(names)) or '*'} from {target}")
    return wrong


def test_the_terminal_client_reaches_the_node_only_through_its_api():
    wrong = tui_reaches()
    assert not wrong, "\n".join(wrong)


def test_the_tui_rule_catches_a_reach_into_the_seed_link(tmp_path):
    root = copy_of_the_tree(tmp_path)
    probe = root / "tui" / "_layering_probe.py"
    probe.write_text("from node.user.seed_client import first_answering\n")
    assert tui_imports(probe) == [("node.user.seed_client", {"first_answering"})]
    assert "tui._layering_probe imports first_answering from node.user.seed_client" in tui_reaches(
        root
    )
