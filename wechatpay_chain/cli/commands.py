"""CLI subcommands: ``certificates download``, ``request`` and ``notification verify``.

Secrets can come from the environment instead of the command line, where other users of the
machine could read them: ``WECHATPAY_APIV3_KEY`` and ``WECHATPAY_SECRET``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from .._client import Client

__all__ = [
    "EXIT_API",
    "EXIT_CODES_HELP",
    "EXIT_LOCAL",
    "EXIT_NETWORK",
    "EXIT_VERIFICATION",
    "HelpFormatter",
    "OutputClosed",
    "register",
]

#: WeChat Pay answered with an error (HTTP 4xx/5xx, or APIv2 ``FAIL``).
EXIT_API = 1
#: A usage or local problem: bad arguments, unreadable files, missing keys (argparse uses 2 too).
EXIT_LOCAL = 2
#: An answer, certificate or notification failed verification or decryption: do not trust it.
EXIT_VERIFICATION = 3
#: No answer: connection, TLS or timeout.
EXIT_NETWORK = 4

EXIT_CODES_HELP = f"""\
exit status:
  0  success
  {EXIT_API}  WeChat Pay answered with an error (HTTP 4xx/5xx, APIv2 FAIL)
  {EXIT_LOCAL}  usage or local error (bad arguments, unreadable file, missing key)
  {EXIT_VERIFICATION}  verification failed (answer, certificate or notification signature,
     decryption): the data must not be trusted
  {EXIT_NETWORK}  no answer (connection, TLS or timeout)"""

_APIV3_ENV = "WECHATPAY_APIV3_KEY"
_SECRET_ENV = "WECHATPAY_SECRET"  # noqa: S105 - an environment variable's name
_KEY_PASSWORD_ENV = "WECHATPAY_PRIVATE_KEY_PASSWORD"  # noqa: S105 - a variable's name


class _Failure(Exception):
    """A problem the user must fix, printed without a traceback."""


class OutputClosed(Exception):
    """Standard output's reader went away (``| head``): not a failure of the command.

    Not an ``OSError``, so that it cannot be mistaken for a failed network write.
    """


def _say(text: str = "") -> None:
    """Write a line to standard output; a closed pipe becomes ``OutputClosed``."""
    try:
        sys.stdout.write(text + "\n")
    except BrokenPipeError:
        raise OutputClosed from None


# The library's messages name its parameters; here they must name the flags that set them.
_FLAGS = [
    (re.compile(r"certs=\{'(PUB_KEY_ID_[^']*)': '[^']*'\}"), r"-c \1=pub_key.pem"),
    (re.compile(r"\bbootstrap=False\b"), "--no-bootstrap"),
    (re.compile(r"\bsecurity=True\b"), "--security"),
    (re.compile(r"\bcerts\b"), "-c/--cert"),
    (re.compile(r"\bapiv3_key\b"), f"--apiv3-key (or ${_APIV3_ENV})"),
    (re.compile(r"\bsecret \(the APIv2 key\)"), f"--secret (the APIv2 key, or ${_SECRET_ENV})"),
    (re.compile(r"\bmerchant_cert\b"), "--merchant-cert"),
    (re.compile(r"\bmerchant_key\b"), "--merchant-key"),
    (re.compile(r"\bprivate_key\b"), "-k/--private-key"),
    (re.compile(r"\bmchid is required\b"), "-m/--mchid is required"),
    (re.compile(r"\bverify=(?= |\)|$)"), "--cacert"),
]


class HelpFormatter(argparse.HelpFormatter):
    """Wraps one-line paragraphs; keeps the layout of those written on several lines."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        fill = super()._fill_text  # zero-argument super() fails inside a generator before 3.12
        return "\n\n".join(
            paragraph if "\n" in paragraph else fill(paragraph, width, indent)
            for paragraph in text.split("\n\n")
        )


def _in_flags(message: str) -> str:
    for pattern, flag in _FLAGS:
        message = pattern.sub(flag, message)
    return message


def _pair(value: str, sep: str, what: str) -> tuple[str, str]:
    key, found, rest = value.partition(sep)
    if not found or not key.strip():
        raise argparse.ArgumentTypeError(f"{what} must look like NAME{sep}VALUE, got {value!r}")
    return key.strip(), rest.strip() if sep == ":" else rest


def _query(value: str) -> tuple[str, str]:
    return _pair(value, "=", "--query")


def _param(value: str) -> tuple[str, str]:
    return _pair(value, "=", "--param")


def _header(value: str) -> tuple[str, str]:
    return _pair(value, ":", "--header")


def _cert(value: str) -> tuple[str, str]:
    return _pair(value, "=", "--cert")


def _text_arg(value: str) -> str:
    """``@file`` reads the file, ``@-`` standard input, anything else is the value itself."""
    if value == "@-":
        return sys.stdin.read()
    if value.startswith("@"):
        try:
            return Path(value[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise _Failure(f"{value[1:]} cannot be read: {exc.strerror}") from None
    return value


def _json_arg(value: str | None, what: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(_text_arg(value))
    except ValueError as exc:
        raise _Failure(f"{what} is not valid JSON: {exc}") from None


def _certs(pairs: list[tuple[str, str]] | None) -> dict[str, object] | None:
    if not pairs:
        return None
    return {serial: Path(path) for serial, path in pairs}


def _secret(value: str | None, env: str) -> str | None:
    return value if value is not None else os.environ.get(env) or None


# --- shared options ------------------------------------------------------------------------


def _merchant_options(parser: argparse.ArgumentParser, *, v3_only: bool = True) -> None:
    """``-s`` and ``-k`` are optional where APIv2 calls (which do not use them) are allowed."""
    group = parser.add_argument_group("merchant")
    group.add_argument("-m", "--mchid", required=True, help="merchant id")
    group.add_argument(
        "-s", "--serial", required=v3_only, help="serial of the merchant API certificate"
    )
    group.add_argument(
        "-k",
        "--private-key",
        required=v3_only,
        metavar="KEYFILE",
        help="merchant API private key (apiclient_key.pem)",
    )
    group.add_argument(
        "--private-key-password-env",
        metavar="NAME",
        default=_KEY_PASSWORD_ENV,
        help="environment variable holding the passphrase of an encrypted --private-key "
        f"(default: ${_KEY_PASSWORD_ENV}; read only when set)",
    )
    _trust_options(parser)
    parser.add_argument(
        "--base-url", help="another host, e.g. a fake server for tests (default: WeChat Pay)"
    )
    parser.add_argument(
        "--cacert",
        metavar="FILE",
        help="CA certificates (PEM) to trust for HTTPS instead of the system's: a proxy's, a "
        "test server's",
    )


def _trust_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--cert",
        action="append",
        type=_cert,
        metavar="SERIAL=FILE",
        help="trusted platform certificate or public key (PUB_KEY_ID_…=pub_key.pem); repeat",
    )
    parser.add_argument(
        "--apiv3-key",
        help=f"APIv3 key (default: ${_APIV3_ENV}); decrypts certificates and notifications",
    )


def _client(args: argparse.Namespace, **overrides: Any) -> Client:
    from .._client import Client

    options: dict[str, Any] = {
        "mchid": getattr(args, "mchid", None),
        "serial": getattr(args, "serial", None),
        "private_key": Path(args.private_key) if getattr(args, "private_key", None) else None,
        "certs": _certs(args.cert),
        "apiv3_key": _secret(args.apiv3_key, _APIV3_ENV),
        "secret": _secret(getattr(args, "secret", None), _SECRET_ENV),
    }
    password_env = getattr(args, "private_key_password_env", None)
    if password_env and options["private_key"] is not None:
        # From the environment only: a passphrase on the command line shows in `ps`.
        options["private_key_password"] = os.environ.get(password_env) or None
        if options["private_key_password"] is None and password_env != _KEY_PASSWORD_ENV:
            raise _Failure(f"${password_env} is not set (--private-key-password-env)")
    if getattr(args, "base_url", None):
        options["base_url"] = args.base_url
    if getattr(args, "cacert", None):
        import ssl

        try:
            options["verify"] = ssl.create_default_context(cafile=args.cacert)
        except OSError as exc:  # ssl.SSLError too: not a PEM file
            raise _Failure(f"--cacert {args.cacert}: {exc.strerror or exc}") from None
    options.update(overrides)
    return Client(**options)


def _run(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Errors the user can act on become one ``error:`` line and an exit status by kind."""

    def run(args: argparse.Namespace) -> int:
        import httpx

        from .._exceptions import (
            APIError,
            DecryptionError,
            PublicKeyOnlyError,
            VerificationError,
            WechatpayError,
        )

        status: int
        try:
            return handler(args)
        except PublicKeyOnlyError as exc:  # our own advice, written for Python callers
            message, status = _in_flags(str(exc)), EXIT_API
        except APIError as exc:  # WeChat Pay's words: printed as they came
            message, status = str(exc), EXIT_API
        except (VerificationError, DecryptionError) as exc:
            message, status = _in_flags(str(exc)), EXIT_VERIFICATION
        except (_Failure, WechatpayError) as exc:
            message, status = _in_flags(str(exc)), EXIT_LOCAL
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:  # --base-url, PATH
            message, status = str(exc), EXIT_LOCAL
        except httpx.HTTPError as exc:
            message, status = _in_flags(str(exc)), EXIT_NETWORK
        except OSError as exc:
            message, status = str(exc), EXIT_LOCAL
        print(f"error: {message}", file=sys.stderr)
        return status

    return run


# --- certificates download -----------------------------------------------------------------


def _write_atomically(path: Path, data: bytes) -> None:
    fd, temporary = tempfile.mkstemp(prefix=".wechatpay_", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temporary, 0o644)  # a certificate is public
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _certificates_download(args: argparse.Namespace) -> int:
    if _secret(args.apiv3_key, _APIV3_ENV) is None:
        raise _Failure(f"the APIv3 key is required: --apiv3-key or ${_APIV3_ENV}")
    client = _client(args)
    certificates = client.certificates.download_sync(bootstrap=not args.no_bootstrap)
    client.close()
    folder = Path(args.output)
    folder.mkdir(parents=True, exist_ok=True)
    for cert in certificates:
        path = folder / f"wechatpay_{cert.serial}.pem"
        _write_atomically(path, cert.pem)
        _say(
            f"{cert.serial}  effective {cert.effective_time:%Y-%m-%dT%H:%M:%SZ}  "
            f"expires {cert.expire_time:%Y-%m-%dT%H:%M:%SZ}  {path}"
        )
    return 0


# --- request -------------------------------------------------------------------------------


def _request(args: argparse.Namespace) -> int:
    path = args.path.lstrip("/")
    v2 = path.startswith("v2/")
    if v2 and args.json is not None:
        raise _Failure("--json is for APIv3; v2/... paths take --xml")
    options: dict[str, Any] = dict(args.param or [])
    if args.query:
        options["query"] = dict(args.query)
    if args.header:
        options["headers"] = dict(args.header)
    body = _json_arg(args.json, "--json")
    fields = _json_arg(args.xml, "--xml")
    if body is not None:
        options["json"] = body
    if fields is not None:
        if not isinstance(fields, dict):
            raise _Failure("--xml must be a JSON object of field -> value")
        options["xml"] = fields
    if args.security:
        options["security"] = True
    from .._exceptions import APIError

    client = _client(args, **_merchant_identity(args))
    try:
        if not v2 and client.config.platform_keys is None:
            if client.config.apiv3_key is None:
                raise _Failure(
                    "answers must be verified: give -c SERIAL=FILE (platform certificate or "
                    f"public key) or the APIv3 key (--apiv3-key / ${_APIV3_ENV}) to download "
                    "the certificates first"
                )
            client.certificates.refresh_sync()
        send = getattr(client.chain(path), f"{args.method.lower()}_sync")
        try:
            response = send(**options)
        except APIError as exc:
            if args.include:  # the error answer, as -i shows a successful one
                _print_answer(exc.response, head=True)
            raise
    finally:
        client.close()
    _print_answer(response, head=args.include)
    return 0


def _print_answer(response: httpx.Response, *, head: bool) -> None:
    if head:
        _say(f"HTTP/1.1 {response.status_code} {response.reason_phrase}")
        for name, value in response.headers.items():
            _say(f"{name}: {value}")
        _say()
    _print_body(response.content)


def _print_body(content: bytes) -> None:
    try:
        document = json.loads(content)
    except ValueError:
        text = content.decode("utf-8", "replace")
        _say(text[:-1] if text.endswith("\n") else text)
        return
    _say(json.dumps(document, ensure_ascii=False, indent=2))


def _merchant_identity(args: argparse.Namespace) -> dict[str, Any]:
    """``--merchant-cert``/``--merchant-key`` for ``--security`` calls (mutual TLS)."""
    options: dict[str, Any] = {}
    if getattr(args, "merchant_cert", None):
        options["merchant_cert"] = Path(args.merchant_cert)
    if getattr(args, "merchant_key", None):
        options["merchant_key"] = Path(args.merchant_key)
    return options


# --- notification verify -------------------------------------------------------------------


def _read_headers(path: str) -> list[tuple[str, str]]:
    text = _text_arg("@" + path)
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            document = json.loads(stripped)
        except ValueError as exc:
            raise _Failure(f"{path} is not valid JSON: {exc}") from None
        return [(str(k), str(v)) for k, v in document.items()]
    pairs = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("HTTP/") or line.split(" ", 1)[0].isupper():
            continue  # blank lines, a status line or a request line ("POST /notify HTTP/1.1")
        name, found, value = line.partition(":")
        if not found:
            raise _Failure(f"{path}: {line[:40]!r} is not a 'Name: value' header line")
        pairs.append((name.strip(), value.strip()))
    return pairs


def _notification_verify(args: argparse.Namespace) -> int:
    from .._exceptions import NotificationError

    if args.body == "-":
        body = sys.stdin.buffer.read()
    else:
        try:
            body = Path(args.body).read_bytes()
        except OSError as exc:
            raise _Failure(f"{args.body} cannot be read: {exc.strerror}") from None
    client = _client(args)
    notifications = client.notifications
    try:
        if args.kind == "v2_pay":
            v2_pay = notifications.parse_v2_pay(body)
            _say(f"verified v2_pay notification {v2_pay!r}")
            return 0
        if args.kind == "v2_refund":
            v2_refund = notifications.parse_v2_refund(body)
            _say(f"verified v2_refund notification {v2_refund!r}")
            return 0
        if not args.headers:
            raise _Failure("--headers FILE is required for APIv3 notifications")
        headers = _read_headers(args.headers)
        now: float = time.time()
        if args.ignore_time:
            stamp = next((v for k, v in headers if k.lower() == "wechatpay-timestamp"), "")
            if stamp.isdigit():
                now = float(stamp)
        notification = notifications.parse(headers, body, now=now)
    except NotificationError as exc:
        # str(exc) starts with the reason already: print it once.
        detail = _in_flags(str(exc).removeprefix(f"{exc.reason}: "))
        if exc.reason == "stale" and not args.ignore_time:
            detail += "; to check a saved notification as of its own time, add --ignore-time"
        print(f"rejected ({exc.reason}): {detail}", file=sys.stderr)
        return EXIT_VERIFICATION
    finally:
        client.close()
    _say(
        f"verified: id={notification.id} event_type={notification.event_type} "
        f"create_time={notification.create_time} summary={notification.summary}"
    )
    if args.show_resource:
        _say(json.dumps(notification.resource, ensure_ascii=False, indent=2))
    return 0


# --- registration --------------------------------------------------------------------------


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``certificates``, ``request`` and ``notification`` to the ``wechatpay-chain`` CLI."""
    certificates = commands.add_parser(
        "certificates",
        help="platform certificates",
        description="Platform certificates WeChat Pay signs its answers with.",
    )
    certificate_commands = certificates.add_subparsers(
        dest="certificates_command", required=True, metavar="COMMAND"
    )
    download = certificate_commands.add_parser(
        "download",
        help="download, decrypt and verify the platform certificates",
        description=(
            "GET v3/certificates, decrypt each certificate with the APIv3 key, check its "
            "dates and the answer's signature, and write DIR/wechatpay_<serial>.pem. Without "
            "-c the answer is verified with the certificate it carries (bootstrap)."
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=HelpFormatter,
    )
    _merchant_options(download)
    download.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    download.add_argument(
        "--no-bootstrap",
        action="store_true",
        help="require the answer to be signed by a key given with -c",
    )
    download.set_defaults(handler=_run(_certificates_download))

    request = commands.add_parser(
        "request",
        help="make any signed API call",
        description=(
            "Sign and send one call, verify the answer and print its body. APIv3 answers "
            "are checked with -c keys, or with certificates downloaded first via the APIv3 "
            "key. v2/... paths are APIv2 (XML, signed with --secret)."
        ),
        epilog=(
            "example: wechatpay-chain request v3/pay/transactions/out-trade-no/1217752501 "
            "--query mchid=1900000001 -m 1900000001 -s SERIAL -k apiclient_key.pem "
            "-c PUB_KEY_ID_…=pub_key.pem\n\n" + EXIT_CODES_HELP
        ),
        formatter_class=HelpFormatter,
    )
    request.add_argument("path", help="e.g. v3/certificates or v3/refund/domestic/refunds")
    request.add_argument(
        "-X",
        "--method",
        default="GET",
        type=str.upper,
        choices=["GET", "POST", "PUT", "PATCH", "DELETE"],
        help="HTTP method (default GET)",
    )
    request.add_argument(
        "--query", action="append", type=_query, metavar="K=V", help="query parameter; repeat"
    )
    request.add_argument(
        "-P",
        "--param",
        action="append",
        type=_param,
        metavar="NAME=VALUE",
        help="value of a {placeholder} in PATH",
    )
    request.add_argument(
        "-H", "--header", action="append", type=_header, metavar="'NAME: VALUE'", help="header"
    )
    request.add_argument("--json", metavar="JSON", help="APIv3 body; @file or @- to read it")
    request.add_argument(
        "--xml", metavar="JSON", help="APIv2 fields as a JSON object; @file or @- to read it"
    )
    request.add_argument("--secret", help=f"APIv2 key (default: ${_SECRET_ENV})")
    request.add_argument(
        "--security",
        action="store_true",
        help="APIv2 call that needs the merchant API certificate (--merchant-cert)",
    )
    request.add_argument(
        "--merchant-cert",
        metavar="FILE",
        help="merchant API certificate for --security: apiclient_cert.pem or .p12",
    )
    request.add_argument(
        "--merchant-key",
        metavar="KEYFILE",
        help="its key, when not the -k key (apiclient_key.pem)",
    )
    request.add_argument(
        "-i", "--include", action="store_true", help="print the status line and headers too"
    )
    _merchant_options(request, v3_only=False)
    request.set_defaults(handler=_run(_request))

    notification = commands.add_parser(
        "notification",
        help="WeChat Pay notifications (webhooks)",
        description="Check notifications WeChat Pay posted to a notify URL.",
    )
    notification_commands = notification.add_subparsers(
        dest="notification_command", required=True, metavar="COMMAND"
    )
    verify = notification_commands.add_parser(
        "verify",
        help="verify (and decrypt) a saved notification",
        description=(
            "Verify a notification saved as its headers and raw body: the signature (with -c "
            "keys) and, for APIv3, the decryption of its resource with the APIv3 key. Exit "
            f"status 0 when it checks out, {EXIT_VERIFICATION} when it is rejected."
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=HelpFormatter,
    )
    verify.add_argument(
        "--headers",
        metavar="FILE",
        help="request headers: a JSON object or 'Name: value' lines (APIv3)",
    )
    verify.add_argument(
        "--body", required=True, metavar="FILE", help="raw request body as received; - for stdin"
    )
    verify.add_argument(
        "--kind",
        choices=["v3", "v2_pay", "v2_refund"],
        default="v3",
        help="notification kind (default v3)",
    )
    _trust_options(verify)
    verify.add_argument("--secret", help=f"APIv2 key for v2 kinds (default: ${_SECRET_ENV})")
    verify.add_argument(
        "--ignore-time",
        action="store_true",
        help="check as of the notification's own timestamp (for old saved notifications)",
    )
    verify.add_argument(
        "--show-resource",
        action="store_true",
        help="print the decrypted resource (personal data: payer, amounts)",
    )
    verify.set_defaults(handler=_run(_notification_verify))
