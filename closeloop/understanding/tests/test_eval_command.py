from __future__ import annotations

import json
import shutil
from datetime import date
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from closeloop.understanding.fieldeval import evaluate_documents

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


def _eval_json(train, test, **options):
    out = StringIO()
    call_command("eval", train=train, test=test, no_embeddings=True, json=True, stdout=out, **options)
    return json.loads(out.getvalue())["model"]


def test_eval_keeps_rows_whose_label_is_the_number_zero(tmp_path):
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    numbered = [(t, 0 if y == "rx" else 1) for t, y in ROWS]
    train.write_text("\n".join(json.dumps({"text": t, "label": y}) for t, y in numbered * 2))
    test.write_text("\n".join(json.dumps({"text": t, "label": y}) for t, y in numbered))
    model = _eval_json(train, test)
    assert model["train_rows"] == 16 and model["in_scope_rows"] == 8
    assert set(model["per_class"]) == {"0", "1"}


def test_eval_reads_a_json_file_holding_an_array_of_rows(tmp_path):
    train = tmp_path / "train.json"
    train.write_text(json.dumps([{"text": t, "label": y} for t, y in ROWS * 2], indent=1))
    assert _eval_json(train, train)["train_rows"] == 16


def test_eval_scores_a_class_found_only_in_the_test_file(tmp_path):
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    train.write_text("text,label\n" + "\n".join(f"{t},{y}" for t, y in ROWS * 2))
    test.write_text("text,label\nrefill my naproxen,rx\nwhy two copays,money\nbook me a knee visit,appt\n")
    model = _eval_json(train, test)
    assert model["per_class"]["appt"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert model["macro_f1"] < 0.9  # three classes present, one never right


@pytest.mark.parametrize(("name", "content", "message"), [
    ("latin1.csv", "text,label\ncaf\xe9 refill,rx\n".encode("latin-1"), "not UTF-8"),
    ("rows.jsonl", b'{"text": "refill", "label": "rx"}\n[1, 2]\n', "line 2"),
    ("rows.json", b'{"train": [["refill", "rx"]]}', "columns"),
    ("one.csv", b"text,label\nrefill my meds,rx\nrenew my script,rx\n", "two labels"),
])
def test_eval_explains_a_file_it_cannot_use_instead_of_crashing(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    good = tmp_path / "good.csv"
    good.write_text("text,label\n" + "\n".join(f"{t},{y}" for t, y in ROWS))
    with pytest.raises(CommandError, match=message):
        call_command("eval", train=path, test=good if name == "one.csv" else path, no_embeddings=True)


DOCS = Path(__file__).resolve().parents[3] / "data" / "dev" / "documents"


def _annotated(tmp_path, *names):
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in names:
        for path in DOCS.glob(f"{name}.*"):
            shutil.copy(path, folder / path.name)
    return folder


def test_eval_documents_prints_field_precision_recall_and_f1_from_the_command_line(tmp_path):
    folder = _annotated(tmp_path, "doc-04", "doc-08", "doc-34")
    out = StringIO()
    call_command("eval", documents=folder, today="2025-06-01", json=True, stdout=out)
    result = json.loads(out.getvalue())
    assert result["documents"] == 3 and result["pages"] == 3
    assert result == evaluate_documents(folder, today=date(2025, 6, 1))
    assert 0.9 <= result["f1"] <= 1.0
    table = StringIO()
    call_command("eval", documents=folder, today="2025-06-01", stdout=table)
    text = table.getvalue()
    assert "precision" in text and "recall" in text and f"{result['f1']:.4f}" in text
    assert "date_of_birth" in text  # per field


def test_eval_documents_explains_a_folder_it_cannot_use(tmp_path):
    with pytest.raises(CommandError, match="no annotated documents"):
        call_command("eval", documents=tmp_path)
    (tmp_path / "doc-99.json").write_text(json.dumps({"fields": {"patient_name": "Ana Silva"}}))
    with pytest.raises(CommandError, match="doc-99.json has no document beside it"):
        call_command("eval", documents=tmp_path)
    (tmp_path / "doc-99.json").write_text("not json")
    with pytest.raises(CommandError, match="doc-99.json"):
        call_command("eval", documents=tmp_path)
    with pytest.raises(CommandError, match="--train and --test"):
        call_command("eval")
