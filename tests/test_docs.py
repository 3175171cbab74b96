"""The docs site builds with ``mkdocs build --strict`` (links, anchors, snippets and the API
reference checked by mkdocs), and every internal link of the built HTML reaches a page and
an anchor that exist.
"""

from __future__ import annotations

import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

import pytest
from _paths import PROJECT

BUILD = PROJECT / "tools" / "build_docs.sh"
pytestmark = pytest.mark.slow  # the site is the same on every Python: the matrix builds it once


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.add(str(found["id"]))
        if tag == "a" and found.get("href"):
            self.links.append(str(found["href"]))


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        ["bash", str(BUILD), str(out)], cwd=PROJECT, capture_output=True, text=True,
        timeout=600, env={**os.environ, "PYTHON": sys.executable}, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_site_has_the_guide_the_examples_and_the_api_reference(site: Path) -> None:
    guide = _parse(site / "index.html")
    assert {"the-chain", "notifications-webhooks"} <= guide.ids  # the README, included
    assert "packages-lowest-layer-first" in _parse(site / "architecture" / "index.html").ids
    examples = (site / "examples" / "index.html").read_text(encoding="utf-8")
    assert "create_app" in examples and "run_sync" in examples and "cli_walkthrough" in examples
    reference = _parse(site / "reference" / "index.html").ids
    assert {"wechatpay_chain.Client", "wechatpay_chain.Client.for_merchant",
            "wechatpay_chain.APIError", "wechatpay_chain.RetryPolicy"} <= reference
    assert "wechatpay_chain.testing.FakeWechatPay.fail" in _parse(
        site / "reference" / "testing" / "index.html").ids


def test_every_internal_link_of_the_site_resolves(site: Path) -> None:
    pages = {path: _parse(path) for path in site.rglob("*.html")}
    broken = []
    for path, page in pages.items():
        for href in page.links:
            if urlsplit(href).scheme or href.startswith(("//", "mailto:")):
                continue  # external: not ours to check offline
            target, anchor = urldefrag(href)
            base = site if target.startswith("/") else path.parent  # 404.html: from the root
            resolved = (base / unquote(target).lstrip("/")).resolve() if target else path
            if resolved.is_dir():
                resolved = resolved / "index.html"
            if resolved.suffix != ".html":
                if not resolved.exists():
                    broken.append(f"{path.relative_to(site)}: {href}")
                continue
            if resolved not in pages:
                broken.append(f"{path.relative_to(site)}: {href}")
            elif anchor and unquote(anchor) not in pages[resolved].ids:
                broken.append(f"{path.relative_to(site)}: {href} (no such anchor)")
    assert len(pages) >= 9
    assert not broken, "\n".join(broken)
