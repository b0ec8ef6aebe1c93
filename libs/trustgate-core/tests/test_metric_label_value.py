"""A label value a client chose is printable and bounded, whatever it sent."""

from __future__ import annotations

from trustgate_core.observability.metrics import label_value


def test_a_client_chosen_label_value_keeps_only_printable_characters_up_to_the_limit() -> None:
    assert label_value("gpt-4o") == "gpt-4o"
    assert label_value("gpt\x00-4o\n\r\t\x1b\x7f\u2028") == "gpt-4o"
    assert label_value("é-模型") == "é-模型"  # printable Unicode is kept
    assert label_value("x" * 500, 16) == "x" * 16
