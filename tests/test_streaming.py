"""Streaming you can read: interleaved tokens of parallel sequences are shown one sequence at
a time (the oldest still writing, then the newest), with the count of the others."""

from __future__ import annotations

from widgets.streaming import StreamFollower


def _interleave(f, texts, send=None):
    send = send or f.token
    words = {k: t.split(" ") for k, t in texts.items()}
    for i in range(max(len(w) for w in words.values())):
        for k, w in words.items():
            if i < len(w):
                send(k, ("" if i == 0 else " ") + w[i])


def test_one_sequence_is_followed_until_it_ends():
    f = StreamFollower()
    _interleave(f, {"a": "the login page fails", "b": "my invoice is wrong today", "c": "please refund me"})
    assert f.line() == "the login page fails   (+2 more writing)"
    f.finished("b")  # another one ending changes nothing shown
    assert f.line().startswith("the login page fails") and "(+1 more writing)" in f.line()
    f.finished("a")  # the followed one ends: the newest still writing
    assert f.line() == "please refund me"
    f.follow("zzz")  # not writing: ignored
    f.finished("c")
    assert f.line() == "" and f.running == 0


def test_a_long_text_keeps_its_end_and_the_person_can_pick_one():
    f = StreamFollower()
    f.token(1, "word " * 100)
    f.token(2, "other")
    assert f.line(width=20).startswith("…") and len(f.line(width=20).split("   (")[0]) == 21
    f.follow(2)
    assert f.line().startswith("other")


def test_the_generate_cell_shows_one_sequence(qtbot, nb):
    from app.cells import ensure_cells
    from widgets.notebook_view import NotebookView

    ensure_cells(nb)
    view = NotebookView(nb)
    qtbot.addWidget(view)
    cw = view.cell_widget("generate")
    cw.set_running(True)
    _interleave(cw, {(0, 0): "the login page fails", (1, 0): "my invoice is wrong"}, cw.on_token)
    assert cw.writing.text() == "writing: the login page fails   (+1 more writing)"


def test_review_and_map_cells_say_what_the_notebook_holds_now(qtbot, nb, fake, topics_csv):
    """The Review cell said "nothing to review yet" after samples existed: its line (and the Map
    cell's) follow the notebook, not the cell's last run."""
    from app.cells import ensure_cells
    from app.data.importer import import_file
    from app.generate.runs import create_run, execute_run, prepare_run
    from widgets.notebook_view import NotebookView

    ensure_cells(nb)
    view = NotebookView(nb)
    qtbot.addWidget(view)
    assert "nothing to review yet" in view.cell_widget("review").output.text()
    assert "no map yet" in view.cell_widget("map").output.text()
    import_file(nb, topics_csv)
    nb.add_prompt_version("t", "A ticket about {{ topic }}.")
    execute_run(nb, create_run(nb, prepare_run(nb, "t", limit_rows=4), fake.info), fake)
    view.reload()
    assert view.cell_widget("review").output.text().startswith("0 of 4 samples reviewed")
    from widgets.edit_commands import EditRecordCommand

    view.undo_stack.push(EditRecordCommand(nb, nb.records()[0]["id"], "status", "accepted", lambda _rid: None))
    assert view.cell_widget("review").output.text().startswith("1 of 4 samples reviewed")
    view.undo_stack.undo()
    assert view.cell_widget("review").output.text().startswith("0 of 4 samples reviewed")


def test_the_generate_bar_shows_one_sequence(qtbot, nb):
    """The top bar mixed every parallel sequence's tokens into word salad: it follows one now."""
    from app.jobs import TokenStreamed
    from widgets.generate_bar import GenerateBar

    bar = GenerateBar(nb.path, [])
    qtbot.addWidget(bar)
    _interleave(None, {(0, 0): "the login page fails", (1, 0): "my invoice is wrong", (2, 0): "refund"},
                lambda k, p: bar._on_partial(TokenStreamed(k, p)))
    assert bar.status.text() == "writing: the login page fails   (+2 more writing)"
