"""`iioe`: run, operate and exercise the platform.

Sub-commands live in small modules that each expose `register(subparsers)`. The tools sit
above the services, so the services' own commands (`iioe verify`, `iioe certification …`,
`iioe analytics rebuild`) are imported here explicitly, like the tools' own.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from iioe_tools import deploy_config
from iioe_tools.cli import asyncapi, credentials, dlq, educators, provision, simulate, status, up
from iioe_tools.operator import operator_environment
from services.analytics import cli as analytics_cli
from services.certification import cli as certification_cli

COMMAND_MODULES = (
    up,
    provision,
    credentials,
    educators,
    dlq,
    status,
    asyncapi,
    certification_cli,
    analytics_cli,
    simulate,
    deploy_config,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iioe", description="IIOE micro-certification event platform")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] not in ("up", "-h", "--help"):
        # operator commands reach the platform `iioe up` runs on this data dir (before defaults are read)
        os.environ.update(operator_environment())
    args = build_parser().parse_args(words)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
