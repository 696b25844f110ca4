"""`iioe asyncapi`: write the AsyncAPI document of contract v1 (generated from the models)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    from iioe_tools.asyncapi import asyncapi_yaml

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "iioe-events.yaml"
    path.write_text(asyncapi_yaml(), encoding="utf-8")
    print(f"wrote {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser("asyncapi", help="write the AsyncAPI document of the event contract")
    p.add_argument("--out", type=Path, default=Path("docs/asyncapi"))
    p.set_defaults(func=_run)
