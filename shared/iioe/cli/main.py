"""`iioe`: run, operate and exercise the platform.

Sub-commands live in small modules that each expose `register(subparsers)`; service
packages contribute their own (verify, simulate, analytics rebuild) the same way.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

COMMAND_MODULES = (
    "iioe.cli.up",
    "iioe.cli.provision",
    "iioe.cli.credentials",
    "iioe.cli.dlq",
    "iioe.cli.asyncapi",
    "services.certification.cli",
    "services.analytics.cli",
    "iioe.cli.simulate",
    "services.notifications.cli",
    "iioe.cli.educators",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iioe", description="IIOE micro-certification event platform")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
