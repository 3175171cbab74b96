"""The layering ARCHITECTURE.md promises: no import cycle, no upward import, a sans-I/O core.

Every import counts: module level, inside functions, and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "wechatpay_chain"
ROOT = "wechatpay_chain"

#: Lower layers never import higher ones (same rank: allowed, as long as there is no cycle).
LAYERS: dict[str, int] = {
    "_exceptions": 0,
    "crypto": 1,
    "protocol": 2,
    "_config": 3,
    "transport": 4,
    "middlewares": 5,
    "services": 6,
    "notifications": 6,
    "stores": 6,
    "_chain": 7,
    "_options": 7,
    "_client": 8,
    "contrib": 9,
    "testing": 9,
    "cli": 10,
    "__init__": 11,
    "__main__": 11,
    "endpoints": 11,
}
#: The sans-I/O layer: pure functions over bytes and dicts.
SANS_IO = ("crypto", "protocol")
IO_MODULES = ("httpx", "anyio", "asyncio", "sniffio", "trio", "socket", "ssl")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import in ``path``, resolved to module names."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level > 1:
                    base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                # ``from pkg import mod`` imports the module; ``from pkg import name`` the package.
                child = f"{module}.{alias.name}"
                yield (child if child in MODULES else module), node.lineno


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        deps = set()
        for target, _ in _imports(name, path):
            # A package's own ancestors are imported implicitly anyway; only an import of a
            # sibling or descendant module is an edge.
            if target in MODULES and target != name and not name.startswith(target + "."):
                deps.add(target)
        graph[name] = deps
    return graph


def _layer(module: str) -> tuple[str, int]:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    if top not in LAYERS:
        pytest.fail(f"{module}: its package {top!r} has no layer in LAYERS (ARCHITECTURE.md)")
    return top, LAYERS[top]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_there_is_no_import_cycle() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_module_imports_a_higher_layer() -> None:
    upward = []
    for name, deps in _graph().items():
        top, rank = _layer(name)
        for dep in deps:
            dep_top, dep_rank = _layer(dep)
            if dep_rank > rank:
                upward.append(f"{name} ({top}) imports {dep} ({dep_top})")
    assert upward == []


def test_the_sans_io_layer_imports_no_io() -> None:
    offending = []
    for name, path in MODULES.items():
        if _layer(name)[0] not in SANS_IO:
            continue
        for target, line in _imports(name, path):
            if target.split(".")[0] in IO_MODULES:
                offending.append(f"{path.name}:{line} imports {target}")
    assert offending == []


def test_services_do_not_know_the_client_class() -> None:
    graph = _graph()
    for name in graph:
        if _layer(name)[0] in ("services", "notifications", "middlewares", "transport"):
            assert f"{ROOT}._client" not in graph[name], name


def test_moved_names_still_import_from_the_top_with_a_warning() -> None:
    import wechatpay_chain
    from wechatpay_chain.middlewares import Stack
    from wechatpay_chain.services import Certificates

    with pytest.warns(DeprecationWarning, match="wechatpay_chain.middlewares"):
        assert wechatpay_chain.Stack is Stack  # type: ignore[attr-defined]
    with pytest.warns(DeprecationWarning, match="wechatpay_chain.services"):
        assert wechatpay_chain.Certificates is Certificates  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="no attribute 'Nonsense'"):
        wechatpay_chain.Nonsense  # type: ignore[attr-defined]  # noqa: B018


def test_public_modules_export_what_the_readme_shows() -> None:
    import wechatpay_chain
    from wechatpay_chain import middlewares, notifications, services

    for module in (wechatpay_chain, middlewares, notifications, services):
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"
    for name in ("Notification", "Answer", "MemoryDeduplicator", "Deduplicator"):
        assert name in notifications.__all__
    assert not {"DecodeAnswer", "Stack", "Middleware", "Request"} & set(wechatpay_chain.__all__)
