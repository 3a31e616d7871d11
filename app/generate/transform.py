"""LLM transforms: rewrite records into new records linked to their source.

A transform is an ordinary generation run whose prompt is a built-in template
(saved as the prompt ``transform:<op>``) and whose plan is the source records, so
it gets the same lineage, progress, cancel and ``--resume`` as any run. Each new
record's parent is the record it was rewritten from.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.core.errors import StudioError
from app.core.tasks import TaskState
from app.generate.runs import RunPlan, create_run, execute_run
from app.store.notebook import Notebook, Run
from app.store.records import untransformed_samples
from app.store.scores import Score, add_step, sample_texts, save_scores
from backends.protocols import ChoiceRequest, Judge, SamplerSettings, TextGenerator

REWRITES = {
    "succinct": "Rewrite the text below to be succinct: keep every fact and instruction, drop filler.\n\n"
                "Text:\n{{ text }}\n\nWrite only the rewritten text.",
    "tone": "Rewrite the text below in a {tone} tone, keeping its meaning and facts.\n\n"
            "Text:\n{{ text }}\n\nWrite only the rewritten text.",
    "steps": "Rewrite the text below as numbered steps, one action per step, saying briefly why each step "
             "matters.\n\nText:\n{{ text }}\n\nWrite only the steps.",
}
OPS = (*REWRITES, "difficulty")
DIFFICULTY = (("easy", ("easy", " easy", "Easy", " Easy")), ("medium", ("medium", " medium", "Medium", " Medium")),
              ("hard", ("hard", " hard", "Hard", " Hard")))


def source_records(nb: Notebook, op: str, limit: int | None = None) -> list[int]:
    """Samples to transform: not rejected, not themselves made by this transform."""
    ids = untransformed_samples(nb, f"transform:{op}")
    return ids[:limit] if limit else ids


def rewrite(nb: Notebook, generator: TextGenerator, op: str, *, record_ids: Sequence[int] | None = None,
            tone: str = "friendly, professional", seed: int = 0, settings: SamplerSettings | None = None,
            task: TaskState | None = None) -> Run:
    if op not in REWRITES:
        raise StudioError(f"unknown rewrite {op!r} (use {', '.join(REWRITES)})")
    ids = list(record_ids) if record_ids is not None else source_records(nb, op)
    if not ids:
        raise StudioError("no records to transform (generate or import some first)")
    template = REWRITES[op].replace("{tone}", tone)
    pv, _ = nb.add_prompt_version(f"transform:{op}", template)
    plan = RunPlan(pv.id, settings or SamplerSettings(temperature=0.3, max_tokens=256), seed, 1, ids)
    return execute_run(nb, create_run(nb, plan, generator.info), generator, task)


def bucket_difficulty(nb: Notebook, judge: Judge, *, record_ids: Sequence[int] | None = None,
                      task: TaskState | None = None) -> dict[str, int]:
    """Label each record easy / medium / hard from the judge's answer probabilities.

    The stored score ``difficulty`` is the expected level (1 = easy .. 3 = hard).
    """
    task = task or TaskState()
    items = [(rid, text) for rid, text, _ in sample_texts(nb, record_ids)]
    step = add_step(nb, "bucket", "difficulty", {"labels": [d for d, _ in DIFFICULTY]}, judge.info.sha256)
    reqs = [ChoiceRequest(key=rid, messages=(), choices=DIFFICULTY,
                          raw_prompt=f'Text: "{text[:4000]}"\nQuestion: How difficult is the problem in this text '
                                     "to solve?\nAnswer (easy, medium or hard):") for rid, text in items]
    counts = {d: 0 for d, _ in DIFFICULTY}
    scores = []
    for i, res in enumerate(judge.choice_probs(reqs, cancel=task), 1):
        level = sum(k * res.probs[label] for k, (label, _) in enumerate(DIFFICULTY, 1))
        label = max(res.probs, key=res.probs.__getitem__)
        counts[label] += 1
        scores.append(Score(res.key, "difficulty", "bucket", level, None,
                            f"{label} (P: " + ", ".join(f"{k} {v:.2f}" for k, v in res.probs.items()) + ")",
                            judge.info.sha256))
        task.set_progress(i, len(reqs), "difficulty")
    task.check()
    save_scores(nb, scores, step)
    return counts
