from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

ROWS = [("refill my meloxicam", "rx"), ("need tramadol refill", "rx"), ("renew naproxen script", "rx"),
        ("pharmacy refill request", "rx"), ("bill is wrong", "money"), ("charged twice copay", "money"),
        ("payment plan for balance", "money"), ("statement question", "money")]


def test_eval_prints_figures_for_any_label_set_and_compares_with_the_baseline(tmp_path):
    train, test = tmp_path / "train.jsonl", tmp_path / "test.csv"
    train.write_text("\n".join(json.dumps({"utterance": t, "intent": y}) for t, y in ROWS * 2))
    test.write_text("utterance,intent\nrefill my naproxen,rx\nwhy two copays,money\nwhere do I park,none\n")
    out = StringIO()
    call_command("eval", train=train, test=test, text_col="utterance", label_col="intent", oos_label="none",
                 no_embeddings=True, json=True, stdout=out)
    result = json.loads(out.getvalue())
    assert set(result) == {"model", "baseline"}
    model = result["model"]
    assert model["in_scope_rows"] == 2 and model["oos_rows"] == 1
    assert set(model["per_class"]) == {"rx", "money"}
    for key in ("accuracy", "macro_f1", "routing_coverage", "routing_precision", "oos_recall", "train_seconds",
                "predictions_per_second", "peak_memory_mb", "confused"):
        assert key in model
    table = StringIO()
    call_command("eval", train=train, test=test, text_col="utterance", label_col="intent", no_embeddings=True,
                 stdout=table)
    assert "TF-IDF+LR" in table.getvalue() and "macro-F1" in table.getvalue()


def test_eval_explains_a_missing_column(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("text,label\nhello,a\n")
    with pytest.raises(CommandError, match="asked for 'body'"):
        call_command("eval", train=path, test=path, text_col="body")
