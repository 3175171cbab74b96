"""Differential testing of the engine's answer parsing against h11.

Both sides get the same answer bytes, split at the same points, then the end of the
connection, and each gives a verdict: the answer (status, HTTP version, headers, body) or a
refusal. The engine side is the real thing (``_Connection`` fed through its
``asyncio.Protocol`` methods, with a transport that records what the connection did), so
the state machine, head bounds and framing checks are all exercised; only the socket is
missing. Used by tests/transport/test_engine_fuzz.py (bounded) and bench/fuzz_engine.py (long runs).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import h11

from wechatpay_chain.transport.engine import MAX_HEAD, AsyncEngine, _Connection, _Exchange

#: ("answer", status, version, ((name lower-cased, value), ...), body) or ("refused",)
Verdict = tuple[Any, ...]
REFUSED: Verdict = ("refused",)


class _Transport(asyncio.Transport):
    """Records what the connection does to its socket."""

    def __init__(self) -> None:
        super().__init__()
        self.aborted = False
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def write(self, data: Any) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closing or self.aborted


class EngineSide:
    """One engine (one parser) reused for many verdicts; no event loop runs."""

    def __init__(self, parser: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.engine = AsyncEngine(parser=parser)
        self.engine._loop = self.loop

    def close(self) -> None:
        self.loop.close()

    def verdict(self, method: bytes, chunks: list[bytes]) -> tuple[Verdict, bool]:
        """The verdict, and whether the connection would be reused."""
        engine = self.engine
        conn = _Connection(engine, (b"http", "fuzz", 80, "fuzz"))
        transport = _Transport()
        conn.connection_made(transport)
        exchange = _Exchange(conn, None, method == b"HEAD")
        conn.exchange = exchange
        exchange.sent = True
        if conn.h11:
            conn.parser.start(method)
        for chunk in chunks:
            if transport.aborted or transport.closing:
                break
            conn.data_received(chunk)
        reused = conn.idle and not (transport.aborted or transport.closing)
        if not (transport.aborted or transport.closing):
            conn.eof_received()
        conn.connection_lost(None)
        engine._idle.clear()
        engine._idle_count = 0
        if exchange.error is not None or not exchange.done:
            return REFUSED, False
        body = b"".join(exchange.chunks)
        headers = tuple(
            (lower, value.lower() if lower == b"transfer-encoding" else value)
            for _, lower, value in exchange.headers
        )
        return ("answer", exchange.status, exchange.version, headers, body), reused


#: Where the engine refuses by design what h11 accepts (README, "Differences from h11"):
#: - "cl+te": both Content-Length and Transfer-Encoding (h11 lets chunked win; a proxy in
#:   between may not: the classic request-smuggling split);
#: - "version": an HTTP version other than 1.0 and 1.1 (h11 takes any digit.digit);
#: - "1xx-framing": an informational answer with Content-Length or Transfer-Encoding
#:   (h11 skips any body, llhttp reads one: neither reading is safe to rely on).
#: - "bare-lf" (httptools only): a line ended by LF alone (h11 takes it; llhttp's leniency
#:   for it also accepts a bare LF after chunk data, which h11 refuses: no leniency is safer);
#: - "cl-list" (httptools only): ``Content-Length: 2, 2`` or the header twice with one
#:   value (h11 folds equal values);
#: - "ctl-value" (httptools only): a control character (other than tab) in a header value;
#: - "chunk-ext" (httptools only): some chunk extensions (llhttp checks their syntax, h11
#:   skips them);
#: - "obs-fold" (httptools only): a header continued on the next line (obsolete folding);
#: - "chunk-ws" (httptools only): white space after a chunk size, or after ``chunked`` in
#:   ``Transfer-Encoding``;
#: - "1xx-close" (httptools only): an informational answer that closes the connection
#:   (HTTP/1.0, or ``Connection: close``) followed by the final answer.
#: And where the httptools engine is the more lenient one (LENIENT):
#: - "1xx-blank": a blank line between an informational answer and the final one.
STRICTER = frozenset({"cl+te", "version", "1xx-framing"})
HTTPTOOLS_STRICTER = frozenset(
    {"bare-lf", "cl-list", "ctl-value", "chunk-ext", "obs-fold", "chunk-ws", "1xx-close"}
)
HTTPTOOLS_LENIENT = frozenset({"1xx-blank"})
_BYTE_TRAITS = {
    "bare-lf": re.compile(rb"(?<!\r)\n"),
    "cl-list": re.compile(rb"(?i)content-length:[^\n]*,|\ncontent-length:(?s:.*)\ncontent-length:"),
    "chunk-ext": re.compile(rb"\n[0-9a-fA-F]+;"),
    "obs-fold": re.compile(rb"\n[ \t]"),
    "chunk-ws": re.compile(rb"\n[0-9a-fA-F]+[ \t]|(?i:transfer-encoding:[^\n]*chunked[ \t])"),
    "1xx-blank": re.compile(rb"^HTTP/\d\.\d 1\d\d.*?\r?\n\r?\n[\r\n]", re.DOTALL),
}
_CTL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def byte_traits(data: bytes) -> set[str]:
    """Traits of the raw bytes where the httptools engine and h11 differ by design."""
    return {name for name, pattern in _BYTE_TRAITS.items() if pattern.search(data)}


def h11_verdict(method: bytes, chunks: list[bytes]) -> Verdict:
    """What h11 makes of the same bytes (the end of the connection after the last chunk)."""
    return h11_verdict_and_traits(method, chunks)[0]


def agree(engine: Verdict, reference: Verdict, traits: set[str], parser: str) -> bool:
    """Whether the engine's verdict is h11's, or a refusal h11 would not make that the
    answer's ``traits`` explain (STRICTER; HTTPTOOLS_STRICTER for that parser)."""
    if engine == reference:
        return True
    if parser == "httptools" and reference == REFUSED and traits & HTTPTOOLS_LENIENT:
        return True
    allowed = STRICTER | HTTPTOOLS_STRICTER if parser == "httptools" else STRICTER
    return engine == REFUSED and bool(traits & allowed)


def h11_verdict_and_traits(method: bytes, chunks: list[bytes]) -> tuple[Verdict, set[str]]:
    """h11's verdict, and what h11 saw in the heads that the engine refuses by design."""
    traits = byte_traits(b"".join(chunks))
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
    conn.send(h11.Request(method=method, target=b"/", headers=[(b"Host", b"h")]))
    conn.send(h11.EndOfMessage())
    status = 0
    version = b""
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body = b""
    feed = [*chunks, b""]
    try:
        for index, chunk in enumerate(feed):
            conn.receive_data(chunk)
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    break
                if isinstance(event, h11.InformationalResponse | h11.Response):
                    names = {n for n, _ in event.headers}
                    if event.http_version not in (b"1.0", b"1.1"):
                        traits.add("version")
                    if isinstance(event, h11.InformationalResponse):
                        if names & {b"content-length", b"transfer-encoding"}:
                            traits.add("1xx-framing")
                        closing = any(
                            n == b"connection" and b"close" in v.lower() for n, v in event.headers
                        )
                        if closing or event.http_version != b"1.1":
                            traits.add("1xx-close")
                        continue
                    if {b"content-length", b"transfer-encoding"} <= names:
                        traits.add("cl+te")
                    if any(_CTL.search(value) for _, value in event.headers):
                        traits.add("ctl-value")
                    status = event.status_code
                    version = b"HTTP/" + event.http_version
                    headers = tuple(
                        # h11 lower-cases this one value; the engine hands it on as sent
                        (n.lower(), v.lower() if n.lower() == b"transfer-encoding" else v)
                        for n, v in event.headers.raw_items()
                    )
                elif isinstance(event, h11.Data):
                    body += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    if any(_CTL.search(value) for _, value in event.headers):
                        traits.add("ctl-value")  # in a trailer
                    if conn.trailing_data[0] or any(feed[index + 1 :]):
                        traits.add("trailing")  # bytes after the end of the answer
                    return ("answer", status, version, headers, body), traits
                elif isinstance(event, h11.ConnectionClosed):
                    return REFUSED, traits
    except h11.RemoteProtocolError:
        return REFUSED, traits
    return REFUSED, traits


def split(data: bytes, points: list[int]) -> list[bytes]:
    """``data`` cut at ``points`` (positions, in any order, duplicates ignored)."""
    cuts = sorted({p for p in points if 0 < p < len(data)})
    pieces = []
    start = 0
    for cut in cuts:
        pieces.append(data[start:cut])
        start = cut
    pieces.append(data[start:])
    return [piece for piece in pieces if piece]


# --- answers, well-formed and not -------------------------------------------------------------
_NAMES = [
    b"Content-Type",
    b"X-Id",
    b"Wechatpay-Signature",
    b"Connection",
    b"Request-ID",
    b"Content-Encoding",
    b"Server",
]
_VALUES = [b"a", b"", b"  padded  ", b"keep-alive", b"close", b"gzip", b"x\tz", b"\xe4\xb8\xad"]
_CODINGS = [b"gzip, chunked", b"chunked, gzip", b"identity", b"Chunked", b" chunked ", b"chunked,"]


def answer(rng: Any) -> tuple[bytes, bytes]:
    """``(method, answer bytes)``: an HTTP/1.x answer in one of many framings, often with a
    flaw (bad lengths, odd codings, stray bytes after it, bytes flipped, added or cut).
    ``rng`` is a ``random.Random``."""
    eol = b"\r\n" if rng.random() < 0.9 else b"\n"
    out = []
    if rng.random() < 0.1:
        out.append(b"HTTP/1.1 100 Continue" + eol + eol)
    version = rng.choice([b"HTTP/1.1"] * 6 + [b"HTTP/1.0"] * 2 + [b"HTTP/2.0", b"HTTP/1.2"])
    status = rng.choice([200, 200, 201, 204, 304, 404, 500, 199, 600, 99, 302])
    reason = rng.choice([b"OK", b"", b"Not Found", b"X Y", b"\xe4\xb8\xad"])
    line = version + b" %d" % status + (b" " + reason if rng.random() < 0.9 else b"")
    out.append(line + eol)
    for _ in range(rng.randint(0, 5)):
        out.append(rng.choice(_NAMES) + b":" + rng.choice([b" ", b"", b"  "]))
        out.append(rng.choice(_VALUES) + eol)
    body = rng.choice([b"", b"ok", b'{"code":"X"}', bytes(rng.randint(0, 255) for _ in range(30))])
    framing = rng.choice(["length", "length", "chunked", "chunked", "close", "both", "te", "bad"])
    if framing in ("length", "both"):
        out.append(b"Content-Length: %d" % len(body) + eol)
    if framing in ("chunked", "both"):
        out.append(b"Transfer-Encoding: chunked" + eol)
    if framing == "te":
        out.append(b"Transfer-Encoding: " + rng.choice(_CODINGS) + eol)
    if framing == "bad":
        bad = rng.choice(
            [b"%d" % (len(body) + 1), b"abc", b"+2", b"%d, %d" % (len(body), len(body))]
        )
        out.append(b"Content-Length: " + bad + eol)
        if rng.random() < 0.5:
            out.append(b"Content-Length: %d" % len(body) + eol)
    out.append(eol)
    if framing in ("chunked", "both", "te"):
        rest = body
        while rest:
            size = rng.randint(1, len(rest))
            spelled = rng.choice([b"%x", b"%X", b"0%x"]) % size
            ext = b";a=b" if rng.random() < 0.1 else b""
            out.append(spelled + ext + eol + rest[:size] + eol)
            rest = rest[size:]
        out.append(b"0" + eol)
        if rng.random() < 0.3:
            out.append(b"Wechatpay-Signature: forged" + eol)
        out.append(eol)
    else:
        out.append(body)
    if rng.random() < 0.2:
        out.append(
            rng.choice([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK", b"\r\n", b"junk"])
        )
    data = bytearray(b"".join(out))
    if rng.random() < 0.3:
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(data) + 1)
            kind = rng.random()
            if kind < 0.4 and at < len(data):
                data[at] = rng.randint(0, 255)
            elif kind < 0.7:
                data[at:at] = bytes([rng.choice(b"\r\n :\t0aZ\x00\x7f\xff")])
            elif at < len(data):
                del data[at]
    method = b"HEAD" if rng.random() < 0.1 else b"GET"
    return method, bytes(data)
