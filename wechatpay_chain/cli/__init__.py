"""The ``wechatpay-chain`` command. Each subcommand registers itself in ``build_parser``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def _demo(args: argparse.Namespace) -> int:
    from .demo import run

    return run(verbose=not args.quiet)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wechatpay-chain",
        description="WeChat Pay merchant API tools (APIv3 and APIv2).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="run the seed calls against an embedded fake WeChat Pay server"
    )
    demo.add_argument("-q", "--quiet", action="store_true", help="print only the summary")
    demo.set_defaults(handler=_demo)
    from .commands import register  # certificates, request, notification

    register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))
