"""The training commands' flags refuse what makes no sense, in one argparse line."""

from __future__ import annotations

import argparse

import pytest

from facegate.cli.training import add_common_args


def _parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="prune")
    add_common_args(p)
    return p.parse_args(["--out", "x.npz", *argv])


def test_warmup_and_average_last_take_whole_numbers() -> None:
    args = _parse("--warmup", "150", "--average-last", "8")
    assert (args.warmup, args.average_last) == (150, 8)
    assert (_parse().warmup, _parse().average_last) == (0, 0)


@pytest.mark.parametrize("flag", ["--warmup", "--average-last"])
@pytest.mark.parametrize("value", ["-3", "x", "1.5"])
def test_a_negative_or_non_integer_count_is_one_line_and_exit_2(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        _parse(flag, value)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("prune: error: argument " + flag) and "Traceback" not in err
