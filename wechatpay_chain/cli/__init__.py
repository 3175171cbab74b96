"""The ``wechatpay-chain`` command. Each subcommand registers itself in ``build_parser``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .commands import EXIT_CODES_HELP, HelpFormatter, OutputClosed, register

__all__ = ["build_parser", "main"]


def _demo(args: argparse.Namespace) -> int:
    from .demo import run

    try:
        return run(verbose=not args.quiet)
    except BrokenPipeError:  # only standard output: the demo talks to its own loopback server
        raise OutputClosed from None


def _version() -> str:
    from .. import __version__

    return f"wechatpay-chain {__version__}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wechatpay-chain",
        description="WeChat Pay merchant API tools (APIv3 and APIv2).",
        epilog=EXIT_CODES_HELP,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("-V", "--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="run the seed calls against an embedded fake WeChat Pay server"
    )
    demo.add_argument("-q", "--quiet", action="store_true", help="print only the summary")
    demo.set_defaults(handler=_demo)
    register(commands)  # certificates, request, notification
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            args = build_parser().parse_args(argv)  # --help and --version exit from here
        except SystemExit:
            _flush()
            raise
        except BrokenPipeError:  # argparse wrote to a closed standard output
            raise OutputClosed from None
        status = int(args.handler(args))
        _flush()
    except OutputClosed:
        # The reader (``| head``) has what it wanted: that is not a failure of the command.
        # Point stdout at /dev/null so the interpreter's final flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0
    return status


def _flush() -> None:
    """A closed pipe shows here, not at exit where it cannot be caught."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise OutputClosed from None
