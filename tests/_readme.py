"""The README's ```python blocks, and what each needs in order to run.

Every block runs as written unless the line right before its fence is a marker comment:

- ``<!-- readme-test: skip REASON -->``: the block needs what a test cannot have (a real
  merchant key file, a KMS, a database); it is still compiled (as a fragment, so it may
  ``await``), so its syntax cannot rot.
- ``<!-- readme-test: mypy-errors -->``: the block shows what mypy says about wrong calls: it is
  not run; ``mypy --strict`` must report an error on every line ending in ``# error: MESSAGE``
  (MESSAGE among that line's messages) and nowhere else. Names as for ``setup client``.
- ``<!-- readme-test: setup NAME -->``: the block is a fragment of a larger story; it runs as
  the body of an ``async def`` (so it may ``await``) in the namespace :data:`PRELUDES` builds
  for ``NAME``: a fake WeChat Pay server and a client for it, plus the few names the prose
  around the block stands for (``appid``, ``prepay_id``, ``mark_paid``, ...).

A fragment that builds a web ``app`` is then served for real and sent notifications, which
must reach its ``mark_paid`` once. Every block that runs is also checked by ``mypy --strict``
(a fragment with its prelude's names declared, :data:`PRELUDE_TYPES`).

A block without a marker, or one naming an unknown setup, that does not run fails the suite.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _notify_servers import serve_aiohttp, serve_asgi

from wechatpay_chain import Client
from wechatpay_chain.testing import FakeWechatPay

_FENCE = re.compile(r"^(\s*)```(\w*)\s*$")  # indented too: a block inside a list item
_MARKER = re.compile(r"^<!--\s*readme-test:\s*([\w-]+)\s*(.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One ```python block: where it starts (1-based line of its first code line)."""

    line: int
    code: str
    marker: str | None  # "skip" | "setup" | None
    argument: str

    @property
    def id(self) -> str:
        return f"README.md:{self.line}"

    def expected_errors(self) -> dict[int, str]:
        """README line -> the mypy message its ``# error:`` comment announces."""
        found = {}
        for offset, line in enumerate(self.code.splitlines()):
            if "# error: " in line:
                found[self.line + offset] = line.split("# error: ", 1)[1].strip()
        return found


def python_blocks(text: str) -> list[Block]:
    """The ```python blocks of a Markdown text, each with the marker on the line before it."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if end == len(lines):
            raise ValueError(f"README.md:{i + 1}: code block never closed")
        if fence.group(2) in ("python", "py", "python3"):
            marker, argument = None, ""
            found = _MARKER.match(lines[i - 1].strip()) if i > 0 else None
            if found is not None:
                marker, argument = found.group(1), found.group(2)
            code = textwrap.dedent("\n".join(lines[i + 1 : end]) + "\n")
            blocks.append(Block(i + 2, code, marker, argument))
        i = end + 1
    return blocks


# --- preludes: what a fragment's surrounding prose stands for --------------------------------
Prelude = Callable[[FakeWechatPay, Client, ExitStack], Awaitable[dict[str, Any]]]

#: A bill in WeChat Pay's CSV format: header, backtick-prefixed records, then the summary.
BILL = (
    "交易时间,微信订单号,商户订单号,交易状态,应结订单金额\r\n"
    "`2024-01-31 10:00:00,`4200000001202401310001,`T1,`SUCCESS,`0.01\r\n"
    "总交易单数,应结订单总金额\r\n"
    "`1,`0.01\r\n"
).encode()


async def _client(server: FakeWechatPay, client: Client, stack: ExitStack) -> dict[str, Any]:
    """``server`` (TLS, catch-all on) and ``client``, plus the values the prose names."""
    from aiohttp import web

    from wechatpay_chain.crypto import rsa_encrypt_oaep

    server.catch_all()
    server.route("POST", "v3/pay/transactions/native", lambda _: {"code_url": "weixin://wxpay/1"})
    server.files.add_bill(BILL, bill_date="2024-01-31")
    server.files.add_bill(BILL, bill_date="2024-01-31", bill_type="BASIC", kind="fundflow")
    Path("logo.png").write_bytes(b"\x89PNG\r\n\x1a\n a logo")
    Path("clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 a clip")
    received: list[Any] = []

    async def mark_paid(out_trade_no: str) -> None:
        received.append(out_trade_no)

    async def handler(notification: Any) -> None:
        received.append(notification.id)

    async def notify_url(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.json_response({"code": "SUCCESS", "message": "OK"})

    app = web.Application()
    app.router.add_post("/notify", notify_url)
    base = stack.enter_context(serve_aiohttp(app))
    headers, body = server.notification("TRANSACTION.SUCCESS", {"out_trade_no": "T1"})
    public = server.merchant.private_key.public_key()
    return {
        "server": server,
        "client": client,
        "appid": "wxd678efh567hg6787",
        "prepay_id": "wx201410272009395522657a690389285100",
        "answer": {"phone": rsa_encrypt_oaep("13800000000", public)},
        "mark_paid": mark_paid,
        "handler": handler,
        "request_headers": headers,
        "raw_body": body,
        "v2_body": server.v2_notification({"out_trade_no": "T1", "total_fee": 1})[1],
        "v2_refund_body": server.v2_notification({"out_refund_no": "R1"}, refund=True)[1],
        "url": f"{base}/notify",
        "pdf_bytes": b"%PDF-1.4 a fapiao",
        "received": received,
    }


PRELUDES: dict[str, Prelude] = {"client": _client}

#: What mypy may assume for a fragment of each setup (names the prelude provides).
PRELUDE_TYPES: dict[str, str] = {
    "client": (
        "from typing import Any\n"
        "from wechatpay_chain import Client\n"
        "from wechatpay_chain.testing import FakeWechatPay\n"
        "server: FakeWechatPay\nclient: Client\nappid: str\nprepay_id: str\n"
        "answer: dict[str, str]\nrequest_headers: dict[str, str]\nraw_body: bytes\n"
        "v2_body: bytes\nv2_refund_body: bytes\nurl: str\npdf_bytes: bytes\n"
        "async def mark_paid(out_trade_no: str) -> None: ...\n"
        "async def handler(notification: Any) -> None: ...\n"
    ),
}


def compile_block(block: Block) -> Any:
    """The block's code object; fragments (``setup``, ``skip``...) may ``await`` at the top."""
    fragment = block.marker in ("setup", "mypy-errors", "skip")
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT if fragment else 0
    # Line numbers in tracebacks are README lines.
    source = "\n" * (block.line - 1) + block.code
    return compile(source, "README.md", "exec", flags=flags, dont_inherit=True)


def run_block(block: Block) -> dict[str, Any]:
    """Run the block as the README reader would; returns its namespace."""
    code = compile_block(block)
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    if block.marker is None:
        exec(code, namespace)  # noqa: S102 - the README is ours, executing it is the test
        return namespace
    if block.marker != "setup" or block.argument not in PRELUDES:
        raise AssertionError(f"{block.id}: unknown marker {block.marker} {block.argument!r}")
    import anyio

    prelude = PRELUDES[block.argument]

    async def main() -> None:
        with ExitStack() as stack, FakeWechatPay(tls=True) as server:
            async with server.client() as client:
                namespace.update(await prelude(server, client, stack))
                result = eval(code, namespace)  # noqa: S307 - as above
                if inspect.isawaitable(result):
                    await result
                if "app" in namespace:
                    await _notify_app(namespace, server)

    anyio.run(main)
    return namespace


async def _notify_app(namespace: dict[str, Any], server: FakeWechatPay) -> None:
    """A block that builds a web ``app`` is served for real and sent a notification, which
    must reach its handler (``mark_paid``) once, however often WeChat Pay re-sends it."""
    from aiohttp import web

    app = namespace["app"]
    serve = serve_aiohttp if isinstance(app, web.Application) else serve_asgi
    with serve(app) as base:
        for _ in range(2):
            answer = await server.send_notification(
                f"{base}/wechatpay/notify", "TRANSACTION.SUCCESS", {"out_trade_no": "N1"},
                id="EV-README")
            assert answer.status_code == 200, answer.text
        forged = await server.send_notification(
            f"{base}/wechatpay/notify", "TRANSACTION.SUCCESS", {"out_trade_no": "N2"},
            fault="tamper_signature")
        assert forged.status_code == 401
    assert namespace["received"].count("N1") == 1 and "N2" not in namespace["received"]


def mypy_source(block: Block) -> str:
    """The block as a module mypy can check: a fragment becomes the body of an ``async def``
    after declarations of its prelude's names."""
    if block.marker not in ("setup", "mypy-errors"):
        return block.code
    body = "".join(f"    {line}" if line.strip() else line for line in block.code.splitlines(True))
    prelude = PRELUDE_TYPES[block.argument or "client"]
    return f"{prelude}\n\nasync def _fragment() -> None:\n{body}"


README = Path(__file__).resolve().parent.parent / "README.md"
