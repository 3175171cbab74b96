"""Generate the typed endpoint layer from the WeChat Pay API documentation.

Two steps, so that CI (which has no network and no documentation checkout) can check the
committed output:

``extract DOCS``
    Read a checkout of the wechatpay-im/website repository (its ``openapi/v2`` and
    ``openapi/v3`` pages) and write the schema of facts, ``tools/endpoints.json``: for each
    documented call its method, template, title, link, and the request and answer fields with
    their types, required flags and enums. No description sentence is copied.

``render`` (``--check`` to compare instead of write)
    Turn the schema into the stub-only typing modules under ``wechatpay_chain/endpoints/``.

Run ``python tools/gen_endpoints.py extract /path/to/website && python tools/gen_endpoints.py
render`` after pulling a newer documentation commit.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "tools" / "endpoints.json"
OUT = ROOT / "wechatpay_chain" / "endpoints"

METHODS = ("get", "put", "post", "patch", "delete")
_HEADING = re.compile(r"^(#{1,2}) (.*?)\s*\{#(get|put|post|patch|delete|mix)\}\s*$")
_ROW = re.compile(r"^\|\s*(.*?)\s*\|\s*(.*?)\s*\|\s*(.*)$")
_ATTRS = re.compile(r"^(.*?)\s*\{([^{}]*)\}\s*$")
_ENUM = re.compile(r"((?:`[^`]*`\s*\\\|\s*)*`[^`]*`)\s*枚举值之一")
_LINK = re.compile(r"\[官方文档\]\((https?://[^)\s]+)\)")
_TITLE = re.compile(r"^title:\s*(.*?)\s*$", re.M)

Field = dict[str, Any]


# --- extract --------------------------------------------------------------------------------
def _split_attrs(cell: str) -> tuple[str, str]:
    found = _ATTRS.match(cell)
    if found:
        return found.group(1).strip(), found.group(2)
    return cell.strip(), ""


def _row(line: str) -> tuple[str, bool, int, str, str, str] | None:
    """(name, required, indent, type, type attrs, description) of one table row."""
    found = _ROW.match(line)
    if not found:
        return None
    name_cell, type_cell, desc = found.groups()
    name, name_attrs = _split_attrs(name_cell)
    if not name or name.startswith("{") or set(name) <= {"-"}:
        return None
    typ, type_attrs = _split_attrs(type_cell)
    indent = re.search(r"data-indent=(\d+)", name_attrs)
    return (
        name,
        "data-required" in name_attrs.split(),
        int(indent.group(1)) if indent else 0,
        typ.strip("` ").strip(),
        type_attrs,
        desc,
    )


def _enum(desc: str) -> list[str] | None:
    found = _ENUM.search(desc)
    if not found:
        return None
    values = re.findall(r"`([^`]*)`", found.group(1))
    return values or None


def _table(lines: list[str]) -> list[Field]:
    """The rows of one table as a tree (children under ``f``)."""
    root: list[Field] = []
    stack: list[tuple[int, list[Field]]] = [(-1, root)]
    for line in lines:
        row = _row(line)
        if row is None:
            continue
        name, required, indent, typ, type_attrs, desc = row
        field: Field = {"n": name, "t": typ}
        if required:
            field["r"] = 1
        enum = _enum(desc)
        if enum:
            field["e"] = enum
        if "by-json_encode" in type_attrs:
            field["j"] = 1  # a JSON string whose structure the children describe
        if "data-encrypted" in type_attrs:
            field["x"] = 1
        while stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        parent.append(field)
        kids: list[Field] = []
        field["f"] = kids
        stack.append((indent, kids))
    _prune(root)
    return root


def _prune(fields: list[Field]) -> None:
    for field in fields:
        if field["f"]:
            _prune(field["f"])
        else:
            del field["f"]


def _tables(section: list[str]) -> tuple[list[Field], list[Field]]:
    request: list[str] = []
    response: list[str] = []
    current: list[str] | None = None
    fenced = False
    for line in section:
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        if line.startswith("| 请求参数"):
            current = request
        elif line.startswith("| 返回字典"):
            current = response
        elif not line.startswith("|"):
            current = None
        elif current is not None:
            current.append(line)
    return _table(request), _table(response)


def _template(page: Path, openapi: Path) -> str:
    rel = page.relative_to(openapi).as_posix()[: -len(".md")]
    if rel.endswith("/index"):
        return rel[: -len("index")]
    return rel


def _page(page: Path, openapi: Path) -> list[dict[str, Any]]:
    text = page.read_text(encoding="utf-8")
    lines = text.splitlines()
    title_found = _TITLE.search(text.split("---", 2)[1]) if text.startswith("---") else None
    page_title = title_found.group(1) if title_found else ""
    page_links = _LINK.findall(text)
    template = _template(page, openapi)
    sections: list[tuple[str, str, int]] = []  # (method, title, first line)
    for number, line in enumerate(lines):
        found = _HEADING.match(line)
        if found and found.group(3) != "mix":
            title = found.group(2)
            if "$frontmatter.title" in title:
                title = page_title
            sections.append((found.group(3).upper(), title, number))
    calls = []
    for index, (method, title, start) in enumerate(sections):
        end = sections[index + 1][2] if index + 1 < len(sections) else len(lines)
        body = lines[start:end]
        request, response = _tables(body)
        links = _LINK.findall("\n".join(body)) or page_links
        calls.append(
            {
                "method": method,
                "template": template,
                "title": title,
                "link": links[0] if links else "",
                "request": request,
                "response": response,
            }
        )
    return calls


def extract(docs: Path) -> dict[str, Any]:
    openapi = docs / "openapi"
    calls: list[dict[str, Any]] = []
    for page in sorted(openapi.rglob("*.md")):
        if page.parent == openapi:
            continue
        calls.extend(_page(page, openapi))
    calls.sort(key=lambda c: (c["template"], METHODS.index(c["method"].lower())))
    commit = ""
    try:
        commit = subprocess.run(
            ["git", "-C", str(docs), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return {"source": "wechatpay-im/website", "commit": commit, "endpoints": calls}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("extract", help="documentation checkout -> tools/endpoints.json")
    ex.add_argument("docs", type=Path)
    ex.add_argument("--commit", default=None, help="the documentation commit, if not a checkout")
    rd = sub.add_parser("render", help="tools/endpoints.json -> wechatpay_chain/endpoints/")
    rd.add_argument("--check", action="store_true", help="fail if the committed files differ")
    args = parser.parse_args(argv)
    if args.command == "extract":
        schema = extract(args.docs)
        if args.commit:
            schema["commit"] = args.commit
        SCHEMA.write_text(dump_schema(schema), encoding="utf-8")
        print(f"{len(schema['endpoints'])} calls -> {SCHEMA.relative_to(ROOT)}")
        return 0
    from _render import render

    files = render(json.loads(SCHEMA.read_text(encoding="utf-8")))
    return write_or_check(files, check=args.check)


def dump_schema(schema: dict[str, Any]) -> str:
    """One call a line: small diffs when the documentation changes, still compact."""
    head = {k: v for k, v in schema.items() if k != "endpoints"}
    lines = [json.dumps(c, ensure_ascii=False, separators=(",", ":")) for c in schema["endpoints"]]
    text = json.dumps(head, ensure_ascii=False)[:-1] + ', "endpoints": [\n'
    return text + ",\n".join(lines) + "\n]}\n"


def write_or_check(files: dict[str, str], *, check: bool) -> int:
    stale = []
    existing = {p.relative_to(OUT).as_posix() for p in OUT.rglob("*.pyi")}
    for rel, text in files.items():
        path = OUT / rel
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            stale.append(rel)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    extra = sorted(existing - set(files))
    for rel in extra:
        stale.append(rel)
        if not check:
            (OUT / rel).unlink()
    if check and stale:
        print(f"out of date: {stale[:10]}{' ...' if len(stale) > 10 else ''}", file=sys.stderr)
        return 1
    print(f"{len(files)} files, {len(stale)} {'stale' if check else 'written'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
