import threading
import time

import pytest

from app.core.errors import ModelError, StudioError, TemplateError
from app.core.tasks import TaskState
from app.data.importer import import_file
from app.generate.runs import create_run, execute_run, prepare_run, resumable_run, sample_seed
from backends.fake import FakeGenerator
from backends.protocols import SamplerSettings


@pytest.fixture
def ready(nb, topics_csv):
    import_file(nb, topics_csv)
    nb.add_prompt_version("ticket", "Ticket about {{ topic }} for {{ product }}.")
    return nb


def _run(nb, gen, **kw):
    plan = prepare_run(nb, "ticket", **kw)
    return execute_run(nb, create_run(nb, plan, gen.info), gen)


def test_every_record_knows_where_it_came_from(ready, fake):
    run = _run(ready, fake, samples=2, limit_rows=3, seed=5, settings=SamplerSettings(temperature=0.7, max_tokens=20))
    assert run.status == "completed"
    recs = ready.records()
    assert len(recs) == 6
    pv = ready.prompt_version("ticket")
    inputs = dict(ready.input_rows(3))
    for r in recs:
        assert r["run_id"] == run.id and r["prompt_version_id"] == pv.id
        assert r["variables"] == inputs[r["input_record_id"]]
        assert r["prompt"] == f"Ticket about {r['variables']['topic']} for {r['variables']['product']}."
        assert r["seed"] == sample_seed(5, r["input_record_id"], r["sample_index"])
        assert r["output"] and r["completion_tokens"] == len(r["token_logprobs"]) > 0
        assert r["mean_logprob"] == pytest.approx(sum(r["token_logprobs"]) / len(r["token_logprobs"]), abs=1e-5)
        assert r["origin"] == "synthetic" and r["status"] == "new"
    stored = ready.run(run.id)
    assert stored.model_sha256 == fake.info.sha256 and stored.backend == "fake"
    assert stored.settings["temperature"] == 0.7 and stored.settings["max_tokens"] == 20
    assert stored.seed == 5 and stored.samples_per_row == 2 and len(stored.plan) == 3


def test_same_seed_reproduces_outputs_and_samples_differ(ready, fake):
    _run(ready, fake, samples=2, limit_rows=2, seed=1)
    _run(ready, fake, samples=2, limit_rows=2, seed=1)
    runs = ready.runs()
    a = [r["output"] for r in ready.records() if r["run_id"] == runs[0].id]
    b = [r["output"] for r in ready.records() if r["run_id"] == runs[1].id]
    assert a == b
    assert a[0] != a[1]  # two samples of one row differ (different per-sample seeds)


def test_a_template_error_creates_no_run(nb, topics_csv, fake):
    import_file(nb, topics_csv)
    nb.add_prompt_version("bad", "About {{ topic }} and {{ nonexistent }}")
    with pytest.raises(TemplateError, match="nonexistent"):
        prepare_run(nb, "bad")
    assert nb.runs() == [] and nb.count_records() == 0


def test_template_without_inputs_needs_none(nb, fake):
    nb.add_prompt_version("free", "Write a haiku.")
    plan = prepare_run(nb, "free", samples=3)
    run = execute_run(nb, create_run(nb, plan, fake.info), fake)
    assert run.status == "completed" and nb.count_records() == 3
    nb.add_prompt_version("needs", "About {{ topic }}")
    with pytest.raises(StudioError, match="no input rows"):
        prepare_run(nb, "needs")


@pytest.mark.parametrize("kw, msg", [
    ({"samples": 0}, "samples"), ({"limit_rows": 0}, "limit-rows"),
    ({"settings": SamplerSettings(max_tokens=0)}, "max-tokens"),
])
def test_bad_settings_are_refused(ready, kw, msg):
    with pytest.raises(StudioError, match=msg):
        prepare_run(ready, "ticket", **kw)


def test_cancel_keeps_finished_records_and_resume_completes_the_rest(ready):
    gen = FakeGenerator(delay=0.002)
    task = TaskState()
    made = []

    def on_record(rid):
        made.append(rid)
        if len(made) == 5:
            task.request_interruption()

    plan = prepare_run(ready, "ticket", samples=2, limit_rows=10)
    run = execute_run(ready, create_run(ready, plan, gen.info), gen, task, on_record=on_record)
    assert run.status == "cancelled"
    assert ready.count_records() == 5
    first_five = {r["id"]: r["output"] for r in ready.records()}

    resumed = resumable_run(ready, "ticket", gen.info)
    assert resumed.id == run.id
    done = execute_run(ready, resumed, gen)
    assert done.status == "completed"
    recs = ready.records()
    assert len(recs) == 20
    assert len({(r["row_index"], r["sample_index"]) for r in recs}) == 20
    assert {r["id"]: r["output"] for r in recs if r["id"] in first_five} == first_five
    # resumed samples are exactly what an uninterrupted run makes
    plan2 = prepare_run(ready, "ticket", samples=2, limit_rows=10)
    full = execute_run(ready, create_run(ready, plan2, gen.info), gen)
    by_slot = lambda run_id: {(r["row_index"], r["sample_index"]): r["output"] for r in ready.records() if r["run_id"] == run_id}
    assert by_slot(run.id) == by_slot(full.id)


def test_resume_refuses_a_different_model_and_a_finished_prompt(ready, fake):
    from backends.protocols import ModelInfo

    gen = FakeGenerator()
    plan = prepare_run(ready, "ticket", limit_rows=2)
    run = create_run(ready, plan, gen.info)
    ready.set_run_status(run.id, "cancelled")
    with pytest.raises(ModelError, match="different model file"):
        resumable_run(ready, "ticket", ModelInfo("llama-cpp", "/x.gguf", "abc"))
    execute_run(ready, resumable_run(ready, "ticket", gen.info), gen)
    with pytest.raises(StudioError, match="nothing to resume"):
        resumable_run(ready, "ticket", gen.info)


def test_a_backend_crash_marks_the_run_failed_and_keeps_records(ready):
    class Exploding(FakeGenerator):
        def generate(self, requests, cancel=None, on_token=None):
            for i, r in enumerate(super().generate(requests, cancel, on_token)):
                if i == 3:
                    raise RuntimeError("GPU fell off")
                yield r

    gen = Exploding()
    plan = prepare_run(ready, "ticket", limit_rows=6)
    run = create_run(ready, plan, gen.info)
    with pytest.raises(RuntimeError):
        execute_run(ready, run, gen)
    assert ready.run(run.id).status == "failed" and "GPU fell off" in ready.run(run.id).error
    assert ready.count_records() == 3


def test_progress_is_reported_and_tokens_stream(ready, fake):
    seen, tokens = [], {}
    task = TaskState(lambda d, t, m: seen.append((d, t)))
    plan = prepare_run(ready, "ticket", limit_rows=3)
    execute_run(ready, create_run(ready, plan, fake.info), fake, task,
                on_token=lambda k, t: tokens.__setitem__(k, tokens.get(k, "") + t))
    assert seen[0] == (0, 3) and seen[-1] == (3, 3)
    assert {k[0]: v for k, v in tokens.items()} == {r["row_index"]: r["output"] for r in ready.records()}


def test_cancel_from_another_thread_stops_quickly(ready):
    gen = FakeGenerator(delay=0.01)
    task = TaskState()
    plan = prepare_run(ready, "ticket", samples=5)
    run = create_run(ready, plan, gen.info)
    asked = []

    def cancel_after_first_record(rid):  # from another thread, once something was committed
        if not asked:
            asked.append(time.monotonic())
            threading.Thread(target=task.request_interruption).start()

    result = execute_run(ready, run, gen, task, on_record=cancel_after_first_record)
    assert result.status == "cancelled"
    assert time.monotonic() - asked[0] < 2.0  # stopped within a sample or so of the request
    assert 0 < ready.count_records() < 100
