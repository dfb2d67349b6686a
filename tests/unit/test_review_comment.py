"""Which review comment the CI jobs update (nbops.review.comment): only the newest one their own
identity wrote, never another user's comment that carries the marker (issue 22)."""

from __future__ import annotations

import pytest

from nbops.review.comment import GITHUB_BOT, own_comment, written_by
from nbops.review.markdown import COMMENT_MARKER

MARK = COMMENT_MARKER + "\n"
BOT = {"login": GITHUB_BOT, "type": "Bot"}


def note(ident: int, author: int, body: str, minute: int = 0, **extra) -> dict:
    """A GitLab merge-request note as GET .../notes returns it."""
    return {"id": ident, "author": {"id": author, "username": f"user{author}"}, "body": body,
            "created_at": f"2026-03-01T10:{minute:02d}:00.000Z", **extra}


def comment(ident: int, user: dict, body: str, day: int = 1) -> dict:
    """A GitHub issue comment as GET .../comments returns it."""
    return {"id": ident, "user": user, "body": body, "created_at": f"2026-03-{day:02d}T10:00:00Z"}


def test_gitlab_another_users_note_with_the_marker_is_never_chosen():
    notes = [note(1, 55, MARK + "copied the marker"), note(2, 56, MARK), note(3, 7, "LGTM")]
    assert own_comment(notes, 7) is None  # the job posts a new note


def test_gitlab_the_tokens_own_note_is_chosen():
    notes = [note(1, 55, MARK + "theirs", 1), note(2, 7, MARK + "ours", 2), note(3, 55, MARK + "theirs again", 3)]
    assert own_comment(notes, 7)["id"] == 2


def test_gitlab_the_newest_own_note_of_several():
    notes = [note(4, 7, MARK + "b", 5), note(9, 7, MARK + "a", 2), note(3, 7, MARK + "c", 5),
             note(12, 55, MARK + "theirs, newest", 9), note(13, 7, "not a review", 9)]
    assert own_comment(notes, 7)["id"] == 4  # 10:05, and the higher id of the two at 10:05


def test_gitlab_system_notes_and_malformed_entries_are_skipped():
    notes = [note(1, 7, MARK, system=True), {"id": 2, "body": MARK}, {"id": 3, "author": None, "body": MARK},
             note(4, 7, None), "not a note", note(5, 7, "text " + MARK)]
    assert own_comment(notes, 7) is None


def test_github_another_users_comment_with_the_marker_is_never_chosen():
    comments = [comment(1, {"login": "alice", "type": "User"}, MARK + "copied"),
                comment(2, {"login": "renovate[bot]", "type": "Bot"}, MARK),
                comment(3, {"login": GITHUB_BOT, "type": "User"}, MARK)]  # not GitHub's bot
    assert own_comment(comments, GITHUB_BOT) is None


def test_github_the_newest_of_the_bots_own_comments():
    comments = [comment(10, BOT, MARK + "first", 1), comment(11, {"login": "alice", "type": "User"}, MARK, 9),
                comment(12, BOT, MARK + "second", 3), comment(13, BOT, "thanks", 8)]
    assert own_comment(comments, GITHUB_BOT)["id"] == 12


@pytest.mark.parametrize(("item", "me", "mine"), [
    (note(1, 7, MARK), 7, True),
    (note(1, 7, MARK), 8, False),
    (note(1, 7, MARK), "7", False),  # a GitLab id is an int, never matched as a login
    (note(1, 7, MARK), True, False),
    (comment(1, {"login": "alice", "type": "User"}, MARK), "alice", True),  # a PAT's user, if configured
    (comment(1, {"login": "alice", "type": "User"}, MARK), "bob", False),
    (comment(1, {"login": GITHUB_BOT, "type": "Bot"}, MARK), GITHUB_BOT, True),
    (comment(1, {"login": GITHUB_BOT}, MARK), GITHUB_BOT, False),
])
def test_written_by(item, me, mine):
    assert written_by(item, me) is mine


def test_a_custom_marker():
    notes = [note(1, 7, "<!-- other -->\nx"), note(2, 7, MARK)]
    assert own_comment(notes, 7, marker="<!-- other -->")["id"] == 1
