"""Target mix: coverage of kept records per category value (and input row), and top-up runs
that fill what the funnel dropped, with the deterministic fake backend."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from app.cli.main import main
from app.core.errors import StudioError
from app.core.tasks import TaskState
from app.data.importer import import_file
from app.generate.runs import create_run, execute_run, prepare_run
from app.generate.targets import Count, Coverage, assign_rows, parse_target_args, plan_topup, resolve_targets
from app.prompts.templates import parse_template
from app.quality.coverage import coverage, topup
from app.quality.funnel import kept_ids
from app.quality.validators import load_rules
from app.store.notebook import Notebook
from backends.fake import FakeGenerator

TEMPLATE = """---
columns:
  difficulty: {categories: {easy: 5, medium: 1, hard: 1}, target: 4}
---
Write one {{ difficulty }} question about spreadsheets.
"""
VALUES = ("easy", "medium", "hard")


@pytest.fixture
def short_rules(tmp_path):
    """Drops the fake's shorter outputs (it writes 3 to 40 words): about a third of them."""
    path = tmp_path / "rules.toml"
    path.write_text('[[rule]]\nname = "long-enough"\ntype = "length"\nunit = "words"\nmin = 15\n')
    return path


@pytest.fixture
def impossible_rules(tmp_path):
    path = tmp_path / "impossible.toml"
    path.write_text('[[rule]]\nname = "essay"\ntype = "length"\nunit = "words"\nmin = 1000\n')
    return path


@pytest.fixture
def mix(nb, fake):
    """A prompt with a 5:1:1 mix and a target of 4 kept per value, and 6 samples of it made."""
    nb.add_prompt_version("q", TEMPLATE)
    execute_run(nb, create_run(nb, prepare_run(nb, "q", samples=6, seed=3), fake.info), fake)
    return nb


def _kept_by_value(nb, prompt="q"):
    """Counted here from the records and the funnel, not through coverage()."""
    kept = set(kept_ids(nb))
    names = {pv.id: pv.name for pv in nb.prompt_versions()}
    return Counter(r["variables"]["difficulty"] for r in nb.records()
                   if r["id"] in kept and names.get(r["prompt_version_id"]) == prompt)


def _topup_runs(nb):
    return [r for r in nb.runs() if r.settings.get("purpose") == "top-up"]


def test_top_up_reaches_the_target_of_kept_records_per_value_despite_the_funnel(mix, fake, short_rules):
    rules = load_rules(short_rules)
    result = topup(mix, lambda: fake, "q", rules=rules, rules_source=str(short_rules), rounds=10)
    assert result.before.missing > 0  # the 5:1:1 draw left medium and hard short
    assert result.rounds and not result.stopped
    kept = _kept_by_value(mix)
    assert all(kept[v] >= 4 for v in VALUES), kept
    # the funnel did drop some of what the top-up made, and the rounds made up for it
    made = sum(r.made for r in result.rounds)
    assert sum(r.kept for r in result.rounds) < made
    assert len(result.rounds) >= 2
    # a second look reports nothing missing, from the same counts
    again = coverage(mix, "q")
    assert again.missing == 0 and again.value_missing() == {}
    assert {v: c.kept for v, c in again.values["difficulty"].items()} == {v: kept[v] for v in VALUES}
    # and a second top-up has nothing to do: no run, no model
    calls = []
    second = topup(mix, lambda: calls.append(1) or fake, "q", rules=rules, rounds=3)
    assert second.rounds == [] and calls == [] and "nothing missing" in second.message


def test_each_round_asks_only_for_what_is_missing(mix, fake, short_rules):
    rules = load_rules(short_rules)
    before = None

    def on_round(r):
        nonlocal before
        run = mix.run(r.run_id)
        asked = Counter(p["difficulty"] for p in run.settings["pins"])
        wanted = (before or first).value_missing()["difficulty"]
        assert asked == Counter(wanted), (asked, wanted)
        before = r.coverage

    from app.quality.steps import validate

    validate(mix, rules)
    first = coverage(mix, "q")
    topup(mix, lambda: fake, "q", rules=rules, rounds=10, on_round=on_round)
    assert before is not None


def test_pinned_records_carry_the_pinned_value(mix, fake, short_rules):
    topup(mix, lambda: fake, "q", rules=load_rules(short_rules), rounds=10)
    runs = _topup_runs(mix)
    assert runs
    seeds = [r.seed for r in runs]
    assert len(set(seeds)) == len(seeds)  # a fresh seed per round
    for run in runs:
        pins = run.settings["pins"]
        assert len(pins) == len(run.plan)
        recs = [r for r in mix.records() if r["run_id"] == run.id]
        assert len(recs) == len(pins)
        for r in recs:
            value = pins[r["row_index"]]["difficulty"]
            assert r["variables"]["difficulty"] == value
            assert r["prompt"] == f"Write one {value} question about spreadsheets."


def test_a_funnel_that_drops_everything_stops_after_one_round(mix, fake, impossible_rules, capsys):
    code = main(["topup", str(mix.path), "--prompt", "q", "--rules", str(impossible_rules), "--backend", "fake",
                 "--rounds", "5", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 1
    assert len(_topup_runs(mix)) == 1
    assert "round 1: run" in out and "kept 0" in out
    assert "stopped: round 1 kept none of its 12 new records" in err  # 4 per value wanted, none kept
    assert "validator:essay" in err and "words" in err  # the stage that dropped them, and why


def test_a_small_round_that_keeps_nothing_after_others_kept_some_does_not_stop(nb, fake, short_rules):
    nb.add_prompt_version("q", TEMPLATE)
    execute_run(nb, create_run(nb, prepare_run(nb, "q", samples=6, seed=0), fake.info), fake)
    result = topup(nb, lambda: fake, "q", rules=load_rules(short_rules), rounds=10)
    assert [r.kept for r in result.rounds][:3] == [5, 2, 0]  # round 3 asked for one record and lost it
    assert not result.stopped and not result.after.missing
    assert all(n >= 4 for n in _kept_by_value(nb).values())


def test_coverage_cli_prints_the_table_and_json(mix, fake, short_rules, capsys):
    assert main(["coverage", str(mix.path), "--prompt", "q", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    cols = data["columns"]["difficulty"]
    assert set(cols) == set(VALUES) and all(c["target"] == 4 for c in cols.values())
    assert sum(c["made"] for c in cols.values()) == 6 and data["missing"] > 0

    assert main(["topup", str(mix.path), "--prompt", "q", "--rules", str(short_rules), "--backend", "fake",
                 "--rounds", "10", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "every target met" in out
    assert main(["coverage", str(mix.path), "--prompt", "q", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["missing"] == 0
    assert all(c["kept"] >= 4 and c["missing"] == 0 for c in data["columns"]["difficulty"].values())
    assert main(["coverage", str(mix.path), "--prompt", "q"]) == 0
    text = capsys.readouterr().out
    assert "missing: nothing" in text and "hard" in text


def test_target_on_the_command_line_replaces_the_front_matter(mix, fake, short_rules):
    result = topup(mix, lambda: fake, "q", asked=parse_target_args(["difficulty:hard=6"]),
                   rules=load_rules(short_rules), rounds=10)
    assert list(result.before.values["difficulty"]) == ["hard"]
    assert not result.after.missing
    assert _kept_by_value(mix)["hard"] >= 6
    assert {p["difficulty"] for run in _topup_runs(mix) for p in run.settings["pins"]} == {"hard"}


def test_resuming_a_top_up_run_gives_the_same_records(mix, short_rules):
    from app.quality.steps import validate

    validate(mix, load_rules(short_rules))
    cov = coverage(mix, "q")
    plan = plan_topup(mix, "q", cov, seed=11)
    assert plan is not None and plan.extra["purpose"] == "top-up" and len(plan.plan) == cov.missing
    gen = FakeGenerator(delay=0.001)
    task = TaskState()
    made = []

    def on_record(rid):
        made.append(rid)
        if len(made) == 3:
            task.request_interruption()

    run = execute_run(mix, create_run(mix, plan, gen.info), gen, task, on_record=on_record)
    assert run.status == "cancelled"
    done = execute_run(mix, mix.run(run.id), gen)  # resume: fills the missing slots only
    assert done.status == "completed"
    full = execute_run(mix, create_run(mix, plan, gen.info), gen)

    def by_slot(run_id):
        return {(r["row_index"], r["sample_index"]): (r["output"], r["variables"], r["seed"])
                for r in mix.records() if r["run_id"] == run_id}

    assert len(by_slot(run.id)) == len(plan.plan)
    assert by_slot(run.id) == by_slot(full.id)


def test_per_row_targets_fill_the_input_rows_lacking_kept_records(nb, fake, topics_csv, short_rules):
    import_file(nb, topics_csv)
    nb.add_prompt_version("t", "---\ncolumns:\n  tone: {categories: [calm, angry]}\n---\n"
                               "A {{ tone }} ticket about {{ topic }}.")
    execute_run(nb, create_run(nb, prepare_run(nb, "t", limit_rows=5, seed=1), fake.info), fake)
    rules = load_rules(short_rules)
    with pytest.raises(StudioError, match="no targets"):
        topup(nb, lambda: fake, "t", rules=rules)
    result = topup(nb, lambda: fake, "t", per_row=2, rules=rules, rounds=10)
    inputs = [rid for rid, _ in nb.input_rows()]
    assert set(result.before.rows) == set(inputs) and result.before.row_missing()
    assert not result.after.missing
    kept = set(kept_ids(nb))
    per_row = Counter(r["input_record_id"] for r in nb.records() if r["id"] in kept)
    assert all(per_row[rid] >= 2 for rid in inputs), per_row
    # rows with nothing pinned still draw their own tone, and go to the rows that lacked kept records
    first = _topup_runs(nb)[0]
    assert set(first.settings["pins"]) == {None}
    assert Counter(first.plan) == Counter(result.before.row_missing())


def test_assign_rows_fills_needy_rows_first_then_round_robin():
    pins = [{"d": "hard"}] * 5
    plan, out = assign_rows(pins, [10, 20, 30], {30: 2, 20: 1}, start=1)
    assert plan[:3] == [20, 30, 30] and plan[3:] == [20, 30]  # needy rows interleaved, then round-robin from 1
    assert out == pins
    plan, out = assign_rows([{"d": "x"}], [10, 20], {10: 3})
    assert plan == [10, 10, 10] and out == [{"d": "x"}, None, None]
    assert assign_rows([{"d": "x"}] * 2, [None], {}) == ([None, None], [{"d": "x"}] * 2)


def test_targets_asked_for_are_checked_against_the_template():
    pt = parse_template(TEMPLATE)
    assert resolve_targets(pt) == {"difficulty": {"easy": 4, "medium": 4, "hard": 4}}
    assert resolve_targets(pt, parse_target_args(["difficulty=2", "difficulty:hard=7"])) == {
        "difficulty": {"easy": 2, "medium": 2, "hard": 7}}
    for bad, msg in (("difficulty", "COLUMN=N"), ("difficulty=-1", "COLUMN=N"), ("tier=3", "not a categorical"),
                     ("difficulty:extreme=3", "not one of its categories")):
        with pytest.raises(StudioError, match=msg):
            resolve_targets(pt, parse_target_args([bad]))


def test_count_and_coverage_report_what_is_missing():
    cov = Coverage("q", 1, {"d": {"a": Count(5, 9, 4), "b": Count(1, 3, 4)}}, {7: Count(0, 2, 2)}, {7: 1})
    assert cov.value_missing() == {"d": {"b": 3}} and cov.row_missing() == {7: 2} and cov.missing == 5
    assert cov.to_dict()["rows"] == [{"input_record_id": 7, "row": 1, "kept": 0, "made": 2, "target": 2,
                                      "missing": 2}]


def test_coverage_view_shows_kept_target_and_missing(qtbot, mix, fake, short_rules):
    from widgets.coverage_view import CoverageView

    view = CoverageView(mix)
    qtbot.addWidget(view)
    view.refresh()
    assert view.table.rowCount() == 3
    cells = {view.table.item(r, 2).text(): [view.table.item(r, c).text() for c in (3, 4, 5)]
             for r in range(3)}
    cov = coverage(mix, "q")
    assert cells == {v: [str(c.kept), "4", str(c.missing)] for v, c in cov.values["difficulty"].items()}
    assert "missing" in view.summary.text()
    topup(mix, lambda: fake, "q", rules=load_rules(short_rules), rounds=10)
    view.refresh()
    assert all(view.table.item(r, 5).text() == "0" for r in range(3))
    assert "Every target is met" in view.summary.text()


def test_quality_view_has_the_coverage_tab(qtbot, mix):
    from widgets.quality_view import QualityView

    view = QualityView(mix)
    qtbot.addWidget(view)
    tabs = [view.lower_tabs.tabText(i) for i in range(view.lower_tabs.count())]
    assert "Coverage" in tabs
    qtbot.waitUntil(lambda: view.coverage.table.rowCount() == 3, timeout=20000)  # counted off the UI thread


def test_the_top_up_button_fills_the_targets_from_the_window(qtbot, mix):
    """Quality > Coverage: Top up runs the same job as `synth-studio topup` on the view's runner."""
    from widgets.quality_view import QualityView

    view = QualityView(mix)
    qtbot.addWidget(view)
    view.backend = "fake"
    view.lower_tabs.setCurrentWidget(view.coverage)
    qtbot.waitUntil(view.coverage.topup_button.isEnabled, timeout=20000)  # counted off the UI thread
    assert view.coverage.prompt.currentText() == "q"
    assert "Press Top up" in view.coverage.summary.text()
    with qtbot.waitSignal(view.runner.sig_finished, timeout=20000):
        view.coverage.topup_button.click()
    assert not coverage(mix, "q").missing
    assert all(n >= 4 for n in _kept_by_value(mix).values())
    qtbot.waitUntil(lambda: "Every target is met" in view.coverage.summary.text(), timeout=20000)  # recounted
    assert not view.coverage.topup_button.isEnabled()  # nothing left to fill
    assert "target" in view.status.text() or "met" in view.status.text(), view.status.text()


def test_unknown_notebook_prompt_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "e.db"
    Notebook.create(path).close()
    assert main(["coverage", str(path), "--prompt", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
