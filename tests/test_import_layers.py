"""The media plane and the server have no import circles, and aiortc's private names live in one place.

An AST walk over every module's imports (function-level ones included: a circle hidden in a function
is still a circle at run time).
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("media", "server")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            found[_module_name(path)] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module of ours that ``name`` (a module or a name inside one) refers to."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            for target in targets:
                found = _resolve(target, modules)
                if found is not None and found != module and not module.startswith(found + "."):
                    graph[module].add(found)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_no_import_circles() -> None:
    assert find_cycles(import_graph()) == []


def test_the_check_sees_a_circle() -> None:
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_media_layers_point_one_way() -> None:
    """core imports no other part of the media plane; transport and ingest never import egress."""
    graph = import_graph()
    for module, imports in graph.items():
        if module.startswith("media.core."):
            assert all(i.startswith("media.core") for i in imports if i.startswith("media")), (module, imports)
        if module.startswith(("media.transport.", "media.ingest.")):
            assert not any(i.startswith("media.egress") for i in imports), (module, imports)


# ---- aiortc, aioice and pylibsrtp internals: only in media/aiortc_compat.py

THIRD_PARTY = ("aiortc", "aioice", "pylibsrtp")
COMPAT = ROOT / "media" / "aiortc_compat.py"
# (file, name) of private names that belong to the standard library although one of the three
# defines the same name: socket_drain reads the loop of asyncio's datagram transport.
STDLIB_PRIVATE = {("media/transport/socket_drain.py", "_loop")}
MUTATORS = {"append", "extend", "insert", "remove", "pop", "clear", "update", "setdefault", "__setitem__"}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def third_party_private_names() -> set[str]:
    """Every private name aiortc, aioice and pylibsrtp define: their private modules, module-level
    names, methods and attributes (name-mangled ones as they are spelled from outside)."""
    names: set[str] = set()
    for package in THIRD_PARTY:
        root = Path(importlib.util.find_spec(package).origin).parent
        names.update(p.name.split(".")[0] for p in root.iterdir() if _private(p.name.split(".")[0]))
        for path in root.rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and _private(node.name):
                    names.add(node.name)
                elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and _private(node.id):
                    names.add(node.id)
                elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and _private(node.attr):
                    names.add(node.attr)
            for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
                for node in ast.walk(cls):
                    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "name", "")
                    if isinstance(name, str) and name.startswith("__") and not name.endswith("__"):
                        names.add(f"_{cls.name.lstrip('_')}{name}")
    return names


def private_uses(source: str, private: set[str]) -> list[str]:
    """Uses of those names: ``x._name`` (and get/set/has/delattr with the name) on anything but
    ``self``/``cls``, and imports of a private module of theirs."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in private:
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) > 1 \
                and isinstance(node.args[1], ast.Constant) and node.args[1].value in private:
            found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            private_modules = [m for m in modules if m.split(".")[0] in THIRD_PARTY
                               and any(_private(p) for p in m.split(".")[1:])]
            if private_modules:
                found.append(f"{node.lineno}: import {private_modules[0]}")
    return found


def global_patches(source: str) -> list[str]:
    """Stores into aiortc's, aioice's or pylibsrtp's modules and the objects imported from them
    (``aiortc.codecs.get_decoder = f``, ``CODECS["video"] += [...]``, ``CODECS["video"].append``),
    also through a local alias of one (``module = aiortc.rtcpeerconnection``)."""
    tree = ast.parse(source)
    theirs: set[str] = set()

    def root(node: ast.AST) -> str | None:
        while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
            node = node.func if isinstance(node, ast.Call) else node.value
        return node.id if isinstance(node, ast.Name) else None

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            theirs.update((a.asname or a.name).split(".")[0] for a in node.names if a.name.split(".")[0] in THIRD_PARTY)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in THIRD_PARTY:
            theirs.update(a.asname or a.name for a in node.names)
    for node in ast.walk(tree):  # aliases
        if isinstance(node, ast.Assign) and isinstance(node.value, (ast.Name, ast.Attribute)) and root(node.value) in theirs:
            theirs.update(t.id for t in node.targets if isinstance(t, ast.Name))
    found = []
    for node in ast.walk(tree):
        stored: list[ast.AST] = []  # what the statement or call changes
        if isinstance(node, (ast.Assign, ast.Delete)):
            stored = [t for t in node.targets if isinstance(t, (ast.Attribute, ast.Subscript))]
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)) and isinstance(node.target, (ast.Attribute, ast.Subscript)):
            stored = [node.target]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS:
            stored = [node.func.value]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr"):
            stored = node.args[:1]
        if any(root(target) in theirs for target in stored):
            found.append(f"{node.lineno}: {ast.unparse(node)}"[:120])
    return found


def _media_files() -> list[Path]:
    return [p for p in sorted((ROOT / "media").rglob("*.py")) if p != COMPAT]


def test_private_third_party_names_only_in_compat() -> None:
    private = third_party_private_names()
    found = {}
    for path in _media_files():
        rel = str(path.relative_to(ROOT))
        uses = private_uses(path.read_text(), private - {n for f, n in STDLIB_PRIVATE if f == rel})
        if uses:
            found[rel] = uses
    assert not found, f"private aiortc/aioice/pylibsrtp names outside media/aiortc_compat.py: {found}"


def test_global_patches_only_in_compat() -> None:
    found = {str(p.relative_to(ROOT)): g for p in _media_files() if (g := global_patches(p.read_text()))}
    assert not found, f"aiortc/aioice/pylibsrtp globals patched outside media/aiortc_compat.py: {found}"


def test_the_checks_see_private_names_and_patches() -> None:
    private = third_party_private_names()
    assert {"_codecs", "_RTCRtpSender__lsr", "_nominated", "_binding", "_srtp"} <= private
    source = (
        "import aioice.ice\nimport aiortc.rtcpeerconnection\nfrom aiortc.codecs import CODECS\n"
        "from pylibsrtp._binding import lib\n"
        "def f(sender, t, self):\n"
        "    sender._RTCRtpSender__lsr = 1\n    x = getattr(t, '_codecs', None)\n    self._codecs = []\n"
        "    aioice.ice.get_host_addresses = list\n    CODECS['video'] += []\n    CODECS['audio'].append(1)\n"
        "    module = aiortc.rtcpeerconnection\n    module.RTCCertificate = None\n"
    )
    assert sorted(int(u.split(":")[0]) for u in private_uses(source, private)) == [4, 6, 7]
    assert sorted(int(g.split(":")[0]) for g in global_patches(source)) == [9, 10, 11, 13]


def test_compat_refuses_other_versions() -> None:
    from media import aiortc_compat

    aiortc_compat.check_versions()  # the installed ones
    with pytest.raises(ImportError, match=r"aiortc 1\.15\.0 \(needs 1\.16\.0\)"):
        aiortc_compat.check_versions(lambda name: "1.15.0" if name == "aiortc" else aiortc_compat.PINNED[name])
