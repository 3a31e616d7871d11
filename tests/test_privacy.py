"""Privacy: the pii rule finds personal data and leaves look-alikes alone, redaction is an edit
that undo restores, the copy check finds long copies of real records and few-shot examples
(not short overlaps), and a planted canary is found in a synthetic record that copied it."""

from __future__ import annotations

import json

import pytest

from app.cli import main
from app.prompts.templates import parse_template, render
from app.quality.canaries import check_canaries, plant_canary
from app.quality.copying import copy_check
from app.quality.criteria import import_text, notebook_rules
from app.quality.funnel import compute_funnel
from app.quality.pii import find_pii, redact_text
from app.quality.redact import redact
from app.quality.rulefile import RuleFileError
from app.quality.steps import validate
from app.quality.validators import load_rules
from app.store.scores import scores_for

PLANTED = [
    ("email", "Write to jane.doe+orders@example.co.uk today.", "jane.doe+orders@example.co.uk"),
    ("phone", "Call +44 20 7946 0958 after five.", "+44 20 7946 0958"),
    ("phone", "Call +1 (555) 123-4567 after five.", "+1 (555) 123-4567"),
    ("phone", "Our line is (555) 123-4567.", "(555) 123-4567"),
    ("phone", "Ring 555-123-4567 or not.", "555-123-4567"),
    ("phone", "London office: 020 7946 0958.", "020 7946 0958"),
    ("phone", "Paris: 01 23 45 67 89 (desk).", "01 23 45 67 89"),
    ("card", "Card 4111 1111 1111 1111 expires soon.", "4111 1111 1111 1111"),
    ("card", "Paid with 5555555555554444.", "5555555555554444"),
    ("card", "Amex 3782 822463 10005 on file.", "3782 822463 10005"),
    ("iban", "IBAN GB82 WEST 1234 5698 7654 32 BIC NWBKGB2L.", "GB82 WEST 1234 5698 7654 32"),
    ("iban", "Send it to DE89370400440532013000 please.", "DE89370400440532013000"),
    ("ip", "The server 192.168.1.10 is down.", "192.168.1.10"),
    ("ip", "Reach it at 2001:db8::1 over v6.", "2001:db8::1"),
    ("ip", "Mapped as ::ffff:192.0.2.1 here.", "::ffff:192.0.2.1"),
]

LOOK_ALIKES = [
    "Card 4111 1111 1111 1112 fails the Luhn check.",
    "And 4111111111111112 does too.",
    "IBAN GB82 WEST 1234 5698 7654 33 has a bad check sum.",
    "GB00WEST12345698765432 too.",
    "It happened on 2024-05-01, or 01.05.2024, or 05/01/2024.",
    "Back in 2024 and 1999-2024.",
    "Upgrade from version 3.11.2 to v2.10.4 or 1.2.3 or 10.0.19041.1.",
    "It costs $1,299.99, €1.299,00 or 1 299,00 a year; 1,000,000 users.",
    "The address 999.999.999.999 is no address.",
    "At 12:30:45, std::vector, a ratio of 3:2, MAC 00:1A:2B:3C:4D:5E.",
    "ISBN 978-3-16-148410-0, order 20240501123, pi 3.14159265358979.",
]


@pytest.mark.parametrize("kind, text, value", PLANTED)
def test_pii_finds_planted_personal_data(kind, text, value):
    spans = find_pii(text)
    assert [(s.kind, text[s.start:s.end]) for s in spans] == [(kind, value)]


@pytest.mark.parametrize("text", LOOK_ALIKES)
def test_pii_leaves_look_alikes_alone(text):
    assert find_pii(text) == []


def test_pii_rule_names_the_kinds_never_the_values(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text('[[rule]]\ntype = "pii"\n\n[[rule]]\nname = "emails-only"\ntype = "pii"\nkinds = ["email"]\n')
    every, emails = load_rules(path)
    text = "Mail jane@example.com or call 555-123-4567."
    v = every.check(text)
    assert not v.passed and v.value == 2
    assert v.reason == "personal data: email, phone" and "jane" not in v.reason and "555" not in v.reason
    assert not emails.check(text).passed and emails.check("call 555-123-4567").passed
    assert every.check("A plain ticket about an invoice for 2024, version 3.1, $12.99.").passed


@pytest.mark.parametrize("setting, message", [
    ('kinds = "email"', "pii kinds must be a list of kinds"),
    ('kinds = ["email", "names"]', "unknown pii kind 'names'"),
    ("kinds = []", "pii kinds is empty"),
    ('kinds = [1]', "pii kinds must be a list of kinds"),
])
def test_pii_kinds_are_type_checked_in_a_file_and_in_the_notebook(tmp_path, nb, setting, message):
    path = tmp_path / "rules.toml"
    path.write_text(f'[[rule]]\ntype = "pii"\n{setting}\n')
    with pytest.raises(RuleFileError, match=message):
        load_rules(path)
    with pytest.raises(RuleFileError, match=message):
        import_text(nb, path.read_text(), "rules.toml")


def test_pii_rule_from_the_notebook_and_by_default(nb):
    nb.add_imported_rows([({}, "Please call me on 020 7946 0958 about the refund."),
                          ({}, "The refund for order 20240501 arrived, thanks a lot.")], origin="real", source="t")
    assert "pii" in {r.name for r in notebook_rules(nb)}  # the bundled default rules have it on
    import_text(nb, '[[rule]]\nname = "contact"\ntype = "pii"\nkinds = ["phone", "email"]\n', "r.toml")
    rules = {r.name: r for r in notebook_rules(nb)}
    assert rules["contact"].params["kinds"] == ["phone", "email"]  # stored, read back, checked again
    validate(nb)
    by_record = {s.record_id: s for r in nb.records() for s in scores_for(nb, r["id"]) if s.name == "validator:contact"}
    first, second = sorted(by_record)
    assert not by_record[first].passed and by_record[first].reason == "personal data: phone"
    assert by_record[second].passed


def _real(nb, *texts: str) -> list[int]:
    before = {r["id"] for r in nb.records()}
    nb.add_imported_rows([({"tier": "pro"}, t) for t in texts], origin="real", source="real.csv")
    return sorted(r["id"] for r in nb.records() if r["id"] not in before)


def _synthetic(nb, *items: tuple[str, str] | str) -> list[int]:
    """Generated records with the given (output, prompt) (a bare string: output, no prompt)."""
    pv, _ = nb.add_prompt_version("p", "Write a ticket.")
    run = nb.create_run(prompt_version_id=pv.id, backend="fake", model_path=None, model_sha256="fake", settings={},
                        seed=0, samples_per_row=len(items), plan=[None])
    ids = []
    for i, item in enumerate(items):
        output, prompt = (item, "Write a ticket.") if isinstance(item, str) else item
        ids.append(nb.add_generated_record(
            run_id=run.id, prompt_version_id=pv.id, input_record_id=None, row_index=len(nb.records()) + i,
            sample_index=i, seed=i, variables={}, prompt=prompt, output=output, prompt_tokens=1, completion_tokens=1,
            token_logprobs=[], finish_reason="stop"))
    return ids


def test_redact_replaces_spans_through_an_edit_that_undo_restores(nb):
    original = "Hi, I'm at jane@example.com or +44 20 7946 0958; card 4111 1111 1111 1111, from 10.0.0.7."
    real, clean = _real(nb, original, "Nothing personal in this ticket about an invoice from 2024.")
    (synth,) = _synthetic(nb, "Write to bob@example.org about IBAN DE89 3704 0044 0532 0130 00 please.")
    done = {r.record_id: r for r in redact(nb)}  # every sample with personal data of the rule's kinds
    assert set(done) == {real, synth}
    assert nb.record(real)["output"] == "Hi, I'm at [EMAIL] or [PHONE]; card [CARD], from [IP]."
    assert nb.record(synth)["output"] == "Write to [EMAIL] about IBAN [IBAN] please."
    assert dict(done[real].kinds) == {"email": 1, "phone": 1, "card": 1, "ip": 1}
    assert nb.record(clean)["output"].startswith("Nothing personal")
    history = nb.history(real)
    assert [(e.field, e.author) for e in history][0] == ("output", "redact") and history[0].old == original
    # the redacted text passes the default rules: no personal data, and the placeholders are not a model's tic
    rules = {r.name: r for r in load_rules("resources/quality/default_rules.toml")}
    for name in ("pii", "no-placeholders"):
        assert rules[name].check(nb.record(real)["output"]).passed, name
    nb.revert_edit(done[real].edit.id)
    assert nb.record(real)["output"] == original
    assert nb.record(real)["origin"] == "real"  # undoing every text edit puts the origin back


def test_redact_command_on_chosen_records_and_kinds(nb, tmp_path, capsys):
    a, b = _real(nb, "Mail jane@example.com or call 555-123-4567.", "Mail bob@example.com please.")
    nb.close()
    assert main(["redact", str(nb.path), "--ids", str(a), "--kinds", "phone"]) == 0
    assert "redacted 1 records (1 phone)" in capsys.readouterr().out
    assert main(["redact", str(nb.path), "--kinds", "names"]) == 2
    assert "unknown kind 'names'" in capsys.readouterr().err
    from app.store.notebook import Notebook

    with Notebook.open(nb.path) as again:
        assert again.record(a)["output"] == "Mail jane@example.com or call [PHONE]."
        assert again.record(b)["output"] == "Mail bob@example.com please."  # not chosen


def test_redact_follows_the_notebooks_pii_rule_and_reaches_input_rows(nb):
    (sample,) = _real(nb, "Mail jane@example.com or call 555-123-4567.")
    nb.add_imported_rows([({"topic": "refund for bob@example.org", "n": 3}, None)], origin="real", source="in")
    (row,) = [r["id"] for r in nb.records(role="input")]
    import_text(nb, '[[rule]]\nname = "mail"\ntype = "pii"\nkinds = ["email"]\n', "r.toml")
    assert [r.record_id for r in redact(nb)] == [sample]  # samples only, and only the rule's kinds
    assert nb.record(sample)["output"] == "Mail [EMAIL] or call 555-123-4567."
    (done,) = redact(nb, [row])
    assert done.field == "variables" and nb.record(row)["variables"] == {"topic": "refund for [EMAIL]", "n": 3}


REAL_TEXT = ("My invoice from last March was charged twice to the company card and the second payment "
             "never showed up in the billing history page at all.")


def test_copy_check_quotes_a_long_copy_of_a_real_record_and_not_a_short_overlap(nb):
    (real,) = _real(nb, REAL_TEXT)
    copied, short, clean = _synthetic(
        nb,
        # twelve words in a row from the real record, in other surroundings and case
        "Hello team. Our INVOICE from last March was charged twice to the company card, and we need help.",
        "Yesterday an invoice from last March was charged and nobody could explain it to us.",  # six words
        "The export to CSV drops the overtime column for every employee on the payroll run.",
    )
    report = copy_check(nb)
    assert [(c.record_id, c.source_id, c.words) for c in report.real] == [(copied, real, 12)]
    scores = {s.name: s for s in scores_for(nb, copied)}
    assert scores["copy:real"].passed is False and scores["copy:real"].kind == "validator"
    assert f"repeats 12 words of real record #{real}" in scores["copy:real"].reason
    assert scores["copy:real"].reason.endswith('"INVOICE from last March was charged twice to the company card, and"')
    for rid in (short, clean):
        assert {s.name: s for s in scores_for(nb, rid)}["copy:real"].passed
    # a shorter span counts when asked for
    assert {c.record_id for c in copy_check(nb, 6).real} == {copied, short}
    # the score is a funnel stage that drops the copy
    funnel = compute_funnel(nb)
    assert funnel.verdicts[copied].stage == "copy:real" and not funnel.verdicts[copied].kept
    assert funnel.verdicts[clean].kept


EXAMPLE = ("Subject: refund still missing. I returned the blue kettle on the fourth of May and the "
           "shop promised a refund within five working days but nothing has arrived yet.")


def test_copy_check_finds_a_copy_of_a_few_shot_example_shown_in_the_prompt(nb):
    (example,) = _synthetic(nb, EXAMPLE)
    nb.edit_record(example, "status", "accepted")
    pt = parse_template("---\nfew_shot: {k: 1, from: accepted}\n---\n"
                        "Write one new support ticket in the same style as these examples of support tickets "
                        "written by our customers last week.\n{{ few_shot() }}\nNow yours:")
    prompt = render(pt, {}, examples=[{"id": example, "output": EXAMPLE}])
    assert f"Example 1:\n{EXAMPLE}" in prompt
    copied, echo, other = _synthetic(
        nb,
        ("Hi. I returned the blue kettle on the fourth of May and the shop promised a refund, where is it?", prompt),
        # repeating the prompt's own instructions is not copying an example
        ("Write one new support ticket in the same style as these examples of support tickets: my login fails.",
         prompt),
        (EXAMPLE, "Write a ticket."),  # the same text, but the example was not in its prompt
    )
    report = copy_check(nb)
    assert [(c.record_id, c.source_id) for c in report.few_shot] == [(copied, example)]
    reason = {s.name: s for s in scores_for(nb, copied)}["copy:few-shot"].reason
    assert reason.startswith(f"repeats 16 words of few-shot example #{example}")
    assert '"I returned the blue kettle on the fourth of May and the shop promised a refund"' in reason
    for rid in (echo, other):
        assert {s.name: s for s in scores_for(nb, rid)}["copy:few-shot"].passed
    # the example itself is synthetic, so copying it is not a copy of a real record
    assert report.real == []


def test_canary_planted_in_a_real_row_is_found_in_a_synthetic_copy(nb, capsys):
    real, _ = _real(nb, "A real ticket about a late delivery.", "Another real ticket about a refund.")
    nb.add_imported_rows([({"topic": "login fails after a reset", "tier": "pro"}, None)], origin="real", source="in")
    (row,) = [r["id"] for r in nb.records(role="input")]
    leaked, clean = _synthetic(nb, "My parcel is late. ZEBRA-canary  7731 quartz again.", "My parcel is late again.")
    nb.close()
    assert main(["canary", str(nb.path), "add", "zebra-canary 7731 quartz", "--record", str(real)]) == 0
    assert "planted canary #1 in record" in capsys.readouterr().out
    assert main(["canary", str(nb.path), "add", "second canary in the default row", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["record_id"] == real  # the first real sample, by default
    assert main(["canary", str(nb.path), "add", "third canary for the input", "--record", str(row)]) == 0
    assert main(["canary", str(nb.path), "add", "a synthetic one", "--record", str(leaked)]) == 2
    assert "not a real record" in capsys.readouterr().err
    assert main(["canary", str(nb.path), "check"]) == 0
    out = capsys.readouterr().out
    assert f"record {leaked}: contains canary #1 (planted in record {real})" in out
    assert "1 synthetic records contain a canary" in out
    from app.store.notebook import Notebook

    with Notebook.open(nb.path) as again:
        rec = again.record(real)
        assert rec["output"].endswith("late delivery. zebra-canary 7731 quartz second canary in the default row")
        assert [e.author for e in again.history(real) if e.field == "output"] == ["canary", "canary"]
        assert again.record(row)["variables"]["topic"] == "login fails after a reset third canary for the input"
        scores = {s.name: s for s in scores_for(again, leaked)}
        assert scores["canary"].passed is False and scores["canary"].kind == "validator"
        assert {s.name: s for s in scores_for(again, clean)}["canary"].passed
        assert compute_funnel(again).verdicts[leaked].stage == "canary"
        # the row stays real data: few-shot from real records still draws it, and a canary is never planted twice
        from app.store.records import few_shot_samples

        assert real in [rid for rid, _, _ in few_shot_samples(again, "real", 10)]
        with pytest.raises(Exception, match="already planted"):
            plant_canary(again, "zebra-canary 7731 quartz")
        assert [h.record_id for h in check_canaries(again)] == [leaked]


def test_redact_text_keeps_everything_else():
    text = "Reach me: a@b.io, 555-123-4567. Version 3.11.2 costs $12.99 since 2024-05-01."
    assert redact_text(text)[0] == "Reach me: [EMAIL], [PHONE]. Version 3.11.2 costs $12.99 since 2024-05-01."


def test_times_are_not_ipv6_addresses():
    from app.quality.pii import find_pii

    assert find_pii("11th February, 2023, 1:08:12.170000-11:27::1271 at 10:30:15") == []
    assert [f.kind for f in find_pii("server at 2001:db8::8a2e:370:7334 and fe80::1")] == ["ip", "ip"]
