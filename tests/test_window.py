"""The first window: it shows the notebook's records and each record's lineage."""

import pytest

pytest.importorskip("PySide6")

from app.importer import import_file  # noqa: E402
from app.pipeline.generate import create_run, execute_run, prepare_run  # noqa: E402


@pytest.fixture
def filled(nb, topics_csv, fake):
    import_file(nb, topics_csv)
    nb.add_prompt_version("ticket", "Ticket about {{ topic }}.")
    execute_run(nb, create_run(nb, prepare_run(nb, "ticket", samples=2, limit_rows=5), fake.info), fake)
    return nb


def test_window_lists_records_and_shows_lineage(qtbot, filled):
    from widgets.main_window import MainWindow

    win = MainWindow(filled)
    qtbot.addWidget(win)
    assert win.model.rowCount() == 10
    assert "10 samples" in win.summary_label.text()
    win.table.selectRow(3)
    rec = win.model.record_at(3)
    text = win.detail.toPlainText()
    assert f"Record {rec['id']}" in text
    assert "ticket v1" in text and "fake-model-v1" in text and f"{rec['seed']}" in text


def test_records_model_pages_instead_of_loading_everything(qtbot, nb):
    from widgets.records_table import PAGE, RecordsModel

    nb.add_imported_rows([({"i": i}, f"text {i}") for i in range(PAGE * 3 + 7)], origin="real", source="s")
    model = RecordsModel(nb)
    assert model.rowCount() == 0 and model.canFetchMore()
    model.fetchMore()
    assert model.rowCount() == PAGE
    while model.canFetchMore():
        model.fetchMore()
    assert model.rowCount() == PAGE * 3 + 7
    assert model.data(model.index(5, 4)) == "text 5"
