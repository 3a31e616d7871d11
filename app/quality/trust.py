"""Whether a judge may decide anything: its sanity result for the model that scored, or a
person's override. A judge that has not been shown to beat chance neither filters nor ranks."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.errors import StudioError
from app.store.notebook import Notebook
from app.store.trust import latest_sanity, override_for, score_model

JUDGE_KINDS = ("judge", "rubric", "additive")


@dataclass(frozen=True)
class Trust:
    criterion: str
    state: str  # trusted | untrusted | unchecked | overridden-trusted | overridden-untrusted
    decides: bool  # may filter and rank
    detail: str  # one line for the person

    @property
    def label(self) -> str:
        return {"trusted": "trusted", "untrusted": "untrusted", "unchecked": "unchecked",
                "overridden-trusted": "trusted by you", "overridden-untrusted": "switched off by you"}[self.state]


def criterion_of(score_name: str) -> str:
    return score_name.removeprefix("judge:")


def judge_trust(nb: Notebook, criterion: str) -> Trust:
    """The trust state of ``criterion``'s judge, for the model that made its newest scores."""
    override = override_for(nb, criterion)
    model = score_model(nb, f"judge:{criterion}")
    sanity = latest_sanity(nb, criterion, model) if model else latest_sanity(nb, criterion)
    if sanity is None:
        base = "unchecked: no sanity check for this model yet (run sanity, or label records in review)"
    else:
        auc = sanity.result.get("auc")
        base = (f"{'beats' if sanity.trusted else 'does not beat'} chance"
                + (f" (AUC {auc:.2f})" if isinstance(auc, (int, float)) else ""))
    if override is not None:
        trusted, author, reason = override
        why = f": {reason}" if reason else ""
        return Trust(criterion, "overridden-trusted" if trusted else "overridden-untrusted", trusted,
                     f"{'trusted' if trusted else 'switched off'} by {author}{why} (sanity: {base})")
    if sanity is None:
        return Trust(criterion, "unchecked", False, base)
    return Trust(criterion, "trusted" if sanity.trusted else "untrusted", sanity.trusted, base)


def require_trusted(nb: Notebook, score_name: str) -> None:
    """Refuse to rank by an untrusted judge (a clear message names the way out)."""
    t = judge_trust(nb, criterion_of(score_name))
    if not t.decides:
        raise StudioError(f"judge {t.criterion!r} is {t.label}: {t.detail}. Check it with `synth-studio sanity` "
                          f"or trust it anyway with `synth-studio criteria trust NB.db {t.criterion}`")
