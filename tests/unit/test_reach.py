"""The store check's words (core/reach.py) and who a run is recorded as (core/context.who_ran):
pure, no server (tests/e2e/test_stalling_server.py and tests/server/test_bounded_waits.py run them
against real ones)."""

from __future__ import annotations

import socket
import urllib.error

import pytest

from nbops.core import reach
from nbops.core.context import who_ran
from nbops.core.errors import StoreAuthError, StoreUnreachable, TrackingError
from nbops.core.store import check_reachable, check_sqlite_exists


def test_the_authenticated_user_wins_over_the_ci_actor_and_the_login():
    env = {"MLFLOW_TRACKING_USERNAME": "alice", "GITHUB_ACTOR": "bot", "USER": "root"}
    assert who_ran(env) == "alice"
    assert who_ran({"MLFLOW_TRACKING_USERNAME": "  ", "GITHUB_ACTOR": "bot"}) == "bot"
    assert who_ran({"GITLAB_USER_LOGIN": "carol"}) == "carol"


def test_auth_headers_as_mlflow_sends_them():
    assert reach.auth_headers("", {"MLFLOW_TRACKING_TOKEN": "t"}) == {"Authorization": "Bearer t"}
    basic = reach.auth_headers("", {"MLFLOW_TRACKING_USERNAME": "a", "MLFLOW_TRACKING_PASSWORD": "p"})
    assert basic == {"Authorization": "Basic YTpw"}
    assert reach.auth_headers("http://a:p@host:5000", {}) == basic
    assert reach.auth_headers("http://host:5000", {}) == {}


@pytest.mark.parametrize(("exc", "words"), [
    (urllib.error.URLError(ConnectionRefusedError()), "connection refused"),
    (TimeoutError("timed out"), "did not answer within 3 s (stalled)"),
    (urllib.error.URLError(TimeoutError()), "no connection within 3 s"),
    (urllib.error.URLError(socket.gaierror()), "unknown host"),
])
def test_server_failures_are_told_apart(exc, words):
    error = reach._server_error("http://u:secret@127.0.0.1:5000", exc, 3.0)
    assert words in error.message and "***@127.0.0.1:5000" in error.message
    assert "secret" not in error.message
    assert isinstance(error, StoreUnreachable)  # the kind core/errors.py's map gives MLflow's own


def test_a_401_names_the_variables_to_set(monkeypatch):
    for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    error = reach._auth_error("http://127.0.0.1:5000", 401)
    assert "401" in error.message and isinstance(error, StoreAuthError)
    assert all(v in error.hint for v in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                                         "MLFLOW_TRACKING_TOKEN"))
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "t")
    assert "refused the login" in reach._auth_error("http://127.0.0.1:5000", 401).message


@pytest.mark.parametrize(("text", "words"), [
    ('FATAL:  password authentication failed for user "nbops"', "the database refused the login"),
    ("could not connect to server: Connection refused", "connection refused"),
    ("timeout expired", "did not answer within 3 s"),
])
def test_database_failures_are_told_apart(text, words):
    error = reach._db_error("postgresql+psycopg2://nbops:pw@127.0.0.1/db", RuntimeError(text), 3.0)
    assert words in error.message and "driver" not in (error.hint or ""), error.message
    assert ":pw@" not in error.message
    assert isinstance(error, StoreAuthError if "login" in words else StoreUnreachable)


def test_a_missing_driver_says_so():
    error = reach._db_error("mysql://u:p@127.0.0.1/db", ModuleNotFoundError("No module named 'MySQLdb'"), 3.0)
    assert "driver" in error.message and "nbops[team]" in (error.hint or "")


def test_local_stores_need_no_check(tmp_path):
    check_reachable(f"sqlite:///{tmp_path / 'mlflow.db'}")  # nothing to reach; nothing created
    check_reachable(str(tmp_path / "mlruns"))
    assert list(tmp_path.iterdir()) == []


def test_a_missing_sqlite_store_is_named_and_not_created(tmp_path):
    with pytest.raises(TrackingError, match="does not exist") as info:
        check_sqlite_exists(f"sqlite:///{tmp_path / 'nope' / 'mlflow.db'}")
    assert f"its folder {tmp_path / 'nope'}" in info.value.message
    with pytest.raises(TrackingError, match="no store yet"):
        check_sqlite_exists(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert list(tmp_path.iterdir()) == []
