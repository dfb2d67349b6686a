"""core/errors.py's map_mlflow_errors on MLflow's real exceptions: raised by a real MlflowClient
against a sqlite store, a real `mlflow server`, a port nobody listens on, and a plain HTTP server
that answers 401 or 503. Each becomes the nbops error its error_code (or cause) says, with the
credentials of the URI masked and one line that names what failed."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from nbops.core.errors import (
    AlreadyExists,
    InputError,
    NbopsError,
    NotFound,
    RegistryError,
    StoreAuthError,
    StoreInputError,
    StoreUnreachable,
    TrackingError,
    map_mlflow_errors,
    store_error_kind,
    store_errors,
)
from tests.mlflow_server import free_port
from tests.mlflow_server import mlflow_server as running_server

NO_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
              "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _mapped(uri: str, call, error: type[NbopsError] = TrackingError) -> NbopsError:
    with pytest.raises(NbopsError) as info, map_mlflow_errors(store=uri, what="cannot do it", error=error):
        call(_client(uri))
    exc = info.value
    assert store_error_kind(exc.__cause__) is not None  # the MLflow exception is kept as the cause
    assert "\n" not in exc.one_line() and exc.one_line().startswith("cannot do it: ")
    return exc


def _refusals(uri: str) -> None:
    """The same refusals from any store: each by its error_code, none by its message."""
    client = _client(uri)
    client.create_experiment("dup")
    client.create_registered_model("m")
    cases = [
        (lambda c: c.get_run("0" * 32), NotFound),
        (lambda c: c.get_experiment("999999"), NotFound),
        (lambda c: c.get_registered_model("nosuch"), NotFound),
        (lambda c: c.get_model_version("m", "7"), NotFound),
        (lambda c: c.create_experiment("dup"), AlreadyExists),
        (lambda c: c.search_runs(["0"], filter_string="bogus ==="), StoreInputError),
        (lambda c: c.get_model_version("m", "x"), StoreInputError),
    ]
    for call, kind in cases:
        exc = _mapped(uri, call, error=RegistryError)
        assert type(exc) is kind, (exc, kind)
        assert isinstance(exc, TrackingError) and exc.code and exc.store == uri
    # an input error is a ValueError too, for callers that catch those
    bad = _mapped(uri, lambda c: c.get_model_version("m", "x"))
    assert isinstance(bad, InputError) and isinstance(bad, ValueError) and isinstance(bad, store_errors())
    assert "must be an integer" in bad.message and not bad.message.startswith("cannot do it: INVALID")


def test_a_sqlite_store_refusals(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _refusals(f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_what_is_not_the_store_propagates_untouched(tmp_path):
    with pytest.raises(KeyError), map_mlflow_errors(what="x", store="sqlite:///x.db"):
        raise KeyError("a bug keeps its traceback")
    own = RegistryError("nbops's own")
    with pytest.raises(RegistryError) as info, map_mlflow_errors(what="x"):
        raise own
    assert info.value is own


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    with running_server(tmp_path_factory.mktemp("srv")) as srv:
        yield srv.uri


def test_a_server_refusals(server, monkeypatch):
    for k, v in NO_RETRIES.items():
        monkeypatch.setenv(k, v)
    _refusals(server)


def test_a_server_that_is_down_is_unreachable_with_credentials_masked(monkeypatch):
    for k, v in NO_RETRIES.items():
        monkeypatch.setenv(k, v)
    uri = f"http://alice:s3cret@127.0.0.1:{free_port()}"  # nobody listens there
    exc = _mapped(uri, lambda c: c.get_run("0" * 32))
    assert type(exc) is StoreUnreachable
    line = exc.one_line()
    assert "s3cret" not in line and "s3cret" not in str(exc) and "s3cret" not in (exc.hint or "")
    assert exc.store == "http://***@127.0.0.1:" + uri.rsplit(":", 1)[1]
    assert "connection refused" in line and "http://***@127.0.0.1" in line
    assert "Max retries" not in line  # urllib3's retry report is not the reason
    assert "is the store up?" in (exc.hint or "")
    # the MLflow exception under it quotes the password: it stays the cause, never the message
    assert "s3cret" in str(exc.__cause__)


class _Answer(http.server.BaseHTTPRequestHandler):
    status = 503

    def _reply(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"no")

    do_GET = do_POST = _reply

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def answering(request) -> Iterator[str]:
    handler = type("Handler", (_Answer,), {"status": request.param})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize(("answering", "kind"), [(503, StoreUnreachable), (500, StoreUnreachable),
                                                 (401, StoreAuthError), (403, StoreAuthError)],
                         indirect=["answering"])
def test_a_server_answering_5xx_or_401_403(answering, kind, monkeypatch):
    for k, v in NO_RETRIES.items():
        monkeypatch.setenv(k, v)
    exc = _mapped(answering, lambda c: c.search_experiments(max_results=1))
    assert type(exc) is kind
    if kind is StoreAuthError:
        assert "MLFLOW_TRACKING_USERNAME" in (exc.hint or "")


def test_tokens_in_a_quoted_message_are_masked():
    from nbops.core.errors import mask_secrets

    assert mask_secrets("header Authorization: Bearer abcdefgh12345 at https://u:p@h/x") == \
        "header Authorization: Bearer *** at https://***@h/x"


def test_store_error_kind_needs_no_mlflow_import():
    assert store_error_kind(ConnectionRefusedError()) is StoreUnreachable
    assert store_error_kind(ValueError("a bug")) is None


def test_review_base_is_the_champion_read_by_alias_not_by_message(tmp_path, monkeypatch):
    """review --run's base falls back to the champion: no model or no champion alias is "no base
    run" (MLflow says INVALID_PARAMETER_VALUE for an alias not set: nbops reads the aliases)."""
    from nbops.core.store import use_store
    from nbops.review.results import _base_metrics

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    use_store(uri)
    client = _client(uri)
    assert _base_metrics(client, "n.ipynb", "abc", "nosuch") == ({}, "no base run")
    client.create_registered_model("m")
    assert _base_metrics(client, "n.ipynb", "abc", "m") == ({}, "no base run")
    exp = client.create_experiment("e")
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "accuracy", 0.9)
    client.create_model_version("m", source=str(tmp_path), run_id=run.info.run_id)
    client.set_registered_model_alias("m", "champion", "1")
    assert _base_metrics(client, "n.ipynb", "abc", "m") == ({"accuracy": 0.9}, "champion m v1")


def test_a_registry_write_mlflow_refuses_is_one_nbops_error(project, monkeypatch):
    """A write through MLflow's client (lifecycle/registry_store.py) the store refuses is the map's
    error, not MLflow's exception reaching the CLI as a crash."""
    from nbops.core.config import load_settings
    from nbops.lifecycle.registry import Registry

    monkeypatch.setenv("NBOPS_NO_FAST_REGISTRY", "1")  # every write through MLflow's client
    registry = Registry(load_settings(project))
    with pytest.raises(NotFound) as info:
        registry.store.write("set_registered_model_alias", "nosuch", "champion", "1")
    assert info.value.one_line().startswith("cannot set registered model alias of 'nosuch': ")
