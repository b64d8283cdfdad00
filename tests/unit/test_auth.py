from __future__ import annotations

from pathlib import Path

import pytest

from taskservice.server.auth import TokenFile, TokenFileError


def test_tokens_are_lines_without_comments_or_blanks(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# rotated 2026-11\nalpha\n\n  beta  \n")
    tokens = TokenFile(path)
    assert tokens.accepts("alpha") and tokens.accepts("beta")
    assert not tokens.accepts("") and not tokens.accepts("alph") and not tokens.accepts("# rotated 2026-11")


def test_an_empty_or_missing_token_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("# nothing\n\n")
    with pytest.raises(TokenFileError, match="no token"):
        TokenFile(empty)
    with pytest.raises(TokenFileError, match="cannot read"):
        TokenFile(tmp_path / "missing")


def test_a_failed_reload_keeps_the_tokens_in_force(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("alpha\n")
    tokens = TokenFile(path)
    path.write_text("")
    assert not tokens.reload()
    assert tokens.accepts("alpha")
    path.write_text("beta\n")
    assert tokens.reload()
    assert tokens.accepts("beta") and not tokens.accepts("alpha")
