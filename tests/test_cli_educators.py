"""`iioe educators erase` without a platform: it is registered, and says clearly what is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from iioe_tools.cli.main import build_parser, main


def test_educators_erase_is_an_iioe_command() -> None:
    args = build_parser().parse_args(["educators", "erase", "edu-1", "--json"])
    assert (args.educator_id, args.json) == ("edu-1", True)


def test_without_an_operator_token_it_exits_2_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("IIOE_OPERATOR_TOKEN", raising=False)
    monkeypatch.setenv("IIOE_DATA_DIR", str(tmp_path))
    assert main(["educators", "erase", "edu-1"]) == 2
    assert str(tmp_path / "operator-token") in capsys.readouterr().err


def test_an_unreachable_service_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from iioe_tools.embedded import free_port

    monkeypatch.setenv("IIOE_OPERATOR_TOKEN", "t")
    assert main(["educators", "erase", "edu-1", "--url", f"http://127.0.0.1:{free_port()}"]) == 2
    assert "unreachable" in capsys.readouterr().err
