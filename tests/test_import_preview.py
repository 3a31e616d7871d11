"""The import preview dialog: the parsed columns and the record text column before anything is written."""

import json

import pytest

pytest.importorskip("PySide6")


def _headers(dialog):
    return [dialog.table.horizontalHeaderItem(i).text() for i in range(dialog.table.columnCount())]


def test_preview_shows_a_semicolon_files_columns_and_the_chosen_text_column(qtbot, tmp_path):
    from widgets.import_preview import ImportPreview

    path = tmp_path / "tickets.csv"
    path.write_text("topic;tier;answer\n" + "".join(f"t{i};pro;text {i}\n" for i in range(30)), encoding="utf-8")
    dialog = ImportPreview(path)
    qtbot.addWidget(dialog)
    assert "semicolon-separated" in dialog.how.text()
    assert _headers(dialog) == ["topic", "tier", "answer"] and dialog.table.rowCount() == 20
    assert dialog.table.item(3, 2).text() == "text 3"
    assert dialog.output_column() is None and dialog.import_button.isEnabled()
    dialog.column_choice.setCurrentText("answer")
    assert dialog.output_column() == "answer"
    assert _headers(dialog)[2] == "answer\n(record text)" and dialog.table.horizontalHeaderItem(2).font().bold()


def test_preview_says_what_a_training_file_was_recognised_as(qtbot, tmp_path):
    from widgets.import_preview import ImportPreview

    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"prompt": "Q", "chosen": "good", "rejected": "bad"}) + "\n")
    dialog = ImportPreview(path)
    qtbot.addWidget(dialog)
    assert "recognised as DPO preference pairs" in dialog.how.text()
    assert dialog.column_choice.currentText().startswith("auto: as DPO preference pairs")


def test_a_file_that_cannot_be_read_shows_why_and_cannot_be_imported(qtbot, tmp_path):
    from widgets.import_preview import ImportPreview

    path = tmp_path / "ragged.csv"
    path.write_text("a;b;c\n1;2\n3;4;5;6\n", encoding="utf-8")
    dialog = ImportPreview(path)
    qtbot.addWidget(dialog)
    assert "single column" in dialog.how.text() and not dialog.import_button.isEnabled()


def test_file_import_in_the_window_goes_through_the_preview(qtbot, nb, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QDialog, QFileDialog

    from widgets import import_preview
    from widgets.main_window import MainWindow

    path = tmp_path / "rows.csv"
    path.write_text("question;answer\n2+2?;4\n3+3?;\n", encoding="utf-8")
    shown = []

    def confirm(dialog):
        dialog.column_choice.setCurrentText("answer")
        shown.append(_headers(dialog))
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    monkeypatch.setattr(import_preview.ImportPreview, "exec", confirm)
    win = MainWindow(nb)
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.runner.sig_done, timeout=10000):
        win._on_import()
    assert shown == [["question", "answer\n(record text)"]]
    assert nb.count_records("input") == 1 and nb.records()[0]["output"] == "4"
    assert "imported 2 rows" in win.statusBar().currentMessage()
