"""Whether a judge may decide anything: its sanity result for the model that scored, or a
person's override. A judge that has not been shown to beat chance neither filters nor ranks."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.errors import StudioError
from app.store.criteria import score_version_id
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


def judge_trust(nb: Notebook, criterion: str, model_sha256: str | None = None, version_id: int | None = None,
                *, scored: bool = True) -> Trust:
    """The trust state of ``criterion``'s judge for one model and criterion version.

    With ``scored`` (the default) a model or version not given is the one that made the
    criterion's newest scores: what filtering and ranking would rely on. A version of None
    (criteria from a file) accepts a sanity result of any version.
    """
    name = f"judge:{criterion}"
    if scored:
        model_sha256 = model_sha256 or score_model(nb, name)
        version_id = version_id if version_id is not None else score_version_id(nb, name)
    override = override_for(nb, criterion)
    sanity = latest_sanity(nb, criterion, model_sha256, version_id)
    if sanity is None:
        base = ("no sanity check of this criterion version with this model yet "
                "(run sanity; your labels count as examples)")
    else:
        measures = [f"{label} {sanity.result[key]:.2f}" for key, label in (("auc", "AUC"), ("kappa", "kappa"))
                    if isinstance(sanity.result.get(key), (int, float))]
        base = (f"{'beats' if sanity.trusted else 'does not beat'} chance"
                + (f" ({', '.join(measures)})" if measures else ""))
    if override is not None:
        trusted, author, reason = override
        why = f": {reason}" if reason else ""
        return Trust(criterion, "overridden-trusted" if trusted else "overridden-untrusted", trusted,
                     f"{'trusted' if trusted else 'switched off'} by {author}{why} (sanity: {base})")
    if sanity is None:
        return Trust(criterion, "unchecked", False, base)
    return Trust(criterion, "trusted" if sanity.trusted else "untrusted", sanity.trusted, base)


def require_trusted(nb: Notebook, score_name: str, model_sha256: str | None = None,
                    version_id: int | None = None, *, scored: bool = True) -> None:
    """Refuse to rank by an untrusted judge (a clear message names the way out)."""
    t = judge_trust(nb, criterion_of(score_name), model_sha256, version_id, scored=scored)
    if not t.decides:
        raise StudioError(f"judge {t.criterion!r} is {t.label}: {t.detail}. Check it with `synth-studio sanity` "
                          f"or trust it anyway with `synth-studio criteria trust {nb.path.name} {t.criterion}`")
