"""nbops/lifecycle/serve/uvicorn_private.py: the installed uvicorn still has what `nbops serve`'s
read deadline and shutdown rely on. A release that moves them fails here (`make test` runs this
on the oldest and newest uvicorn nbops supports); tests/integration/test_fence_uvicorn.py runs
the deadline itself on both of uvicorn's HTTP implementations."""

from __future__ import annotations

from nbops.lifecycle.serve import uvicorn_private as fence


def test_the_installed_uvicorn_has_what_the_fence_uses():
    assert fence.missing() == []


def test_a_moved_attribute_is_named(monkeypatch):
    monkeypatch.setattr(fence, "ASSIGNED", (*fence.ASSIGNED, "self.no_such_attribute ="))
    gone = fence.missing()
    assert "H11Protocol: self.no_such_attribute =" in gone
