"""Which review comment CI updates: only the newest one its own identity wrote.

The shipped review jobs post review.md as one comment, found again on the next push by the
marker it starts with (`COMMENT_MARKER`). Anyone can write that marker into a comment: the job
must not take over (rewrite) a person's comment, nor fail on every push trying to update a note
its token may not edit. So a comment is the job's own only when its author is the job's identity:

- GitLab (`ci/gitlab/.gitlab-ci.yml`, review job): a note whose `author.id` is the token's user
  (`GET /user` with NBOPS_GITLAB_TOKEN);
- GitHub (`ci/github/review-comment.yml`): a comment whose `user` is the login `github-actions[bot]`
  of type `Bot`, the author of every comment made with the workflow's GITHUB_TOKEN. That job runs
  in github-script and never installs nbops, so its JavaScript applies the same rule
  (`tests/unit/test_ci_files.py` runs it in node against these cases).

Pure: plain dicts in, as the APIs return them; the job does the I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from nbops.review.markdown import COMMENT_MARKER

GITHUB_BOT = "github-actions[bot]"


def written_by(comment: Mapping[str, Any], me: int | str) -> bool:
    """COMMENT's author is ME: a GitLab note's `author.id` (ME an int, the token's user id), or a
    GitHub comment's `user.login` (ME a login; a `[bot]` login only with `user.type` Bot)."""
    if isinstance(me, int) and not isinstance(me, bool):
        author = comment.get("author")
        return isinstance(author, Mapping) and author.get("id") == me and not comment.get("system")
    user = comment.get("user")
    if not isinstance(user, Mapping) or user.get("login") != me:
        return False
    return not str(me).endswith("[bot]") or user.get("type") == "Bot"


def _order(comment: Mapping[str, Any]) -> tuple[str, int]:
    """Oldest first: creation time (both APIs write ISO 8601 UTC), then id."""
    ident = comment.get("id")
    return str(comment.get("created_at") or ""), ident if isinstance(ident, int) else -1


def own_comment(comments: Iterable[Any], me: int | str,
                marker: str = COMMENT_MARKER) -> Mapping[str, Any] | None:
    """The newest of COMMENTS that starts with MARKER and that ME wrote (see `written_by`), or None:
    the job then posts a new comment and leaves every other one, marker or not, as it is."""
    mine = [c for c in comments
            if isinstance(c, Mapping) and isinstance(c.get("body"), str) and c["body"].startswith(marker)
            and written_by(c, me)]
    return max(mine, key=_order, default=None)
