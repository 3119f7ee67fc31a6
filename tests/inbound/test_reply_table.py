"""The reply table (tests/inbound/reply_table.yaml) is the specification of what a patient's
text means: crisis first, opt-outs by any reasonable means, look-alikes that are not crises,
ambiguous cancels, keywords and free text, in English and Spanish."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from rules.keywords import read_inbound

TABLE_PATH = Path(__file__).with_name("reply_table.yaml")
TABLE: list[dict[str, Any]] = yaml.safe_load(TABLE_PATH.read_text(encoding="utf-8"))


def _row_id(row: dict[str, Any]) -> str:
    return row["text"][:48] or "<empty>"


@pytest.mark.parametrize("row", TABLE, ids=[_row_id(row) for row in TABLE])
def test_reply_means_what_the_table_says(row: dict[str, Any]) -> None:
    assert list(read_inbound(row["text"]).kinds) == row["intents"]


LANGUAGE_ROWS = [row for row in TABLE if "language" in row]


@pytest.mark.parametrize("row", LANGUAGE_ROWS, ids=[_row_id(row) for row in LANGUAGE_ROWS])
def test_reply_language_shows_in_its_own_words(row: dict[str, Any]) -> None:
    assert read_inbound(row["text"]).language == row["language"]


def test_table_is_large_and_covers_every_class() -> None:
    kinds = {kind for row in TABLE for kind in row["intents"]}
    assert len(TABLE) >= 60
    assert kinds >= {
        "crisis",
        "opt-out",
        "ambiguous-cancel",
        "help",
        "opt-in",
        "confirm",
        "reschedule",
        "other",
    }
    assert any(row["intents"] == ["crisis", "opt-out"] for row in TABLE)
    assert {row.get("language") for row in TABLE} >= {"en", "es"}
