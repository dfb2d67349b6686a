"""Is the store there? One bounded check before a command touches the store, saying in one line
why not: a tracking server that is down, one that accepts the connection and never answers
(stalled), one that wants a login (HTTP 401) or refuses this user (403); a database that is down,
stalled, or refuses the login. Standard library only (plus SQLAlchemy for a database URI).

MLflow's own client would find each of these out too, but only after minutes: its HTTP requests
are retried with a 20 s timeout each (core/store.py: RETRY_BUDGET), and its SQLAlchemy store
retries a refused database login ten times with backoff (~100 s, a warning each time) and then
says to install a driver. `core.store.check_reachable` is the entry point.
"""

from __future__ import annotations

import base64
import os
import socket
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import unquote, urlsplit

from nbops.core.errors import StoreAuthError, StoreUnreachable, TrackingError, mask_uri

AUTH_HINT = ("set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (basic auth), or "
             "MLFLOW_TRACKING_TOKEN (a bearer token)")
# database URIs a SQLAlchemy store takes (MLflow's own list: mlflow/store/db/db_types.py)
DATABASE_SCHEMES = ("postgresql", "mysql", "mssql")
# the authenticated read after /health: an auth app hashes the password on every request (PBKDF2,
# ~0.7 s on a loaded 2-core machine, seconds under a test suite's load), so it gets at least this
API_TIMEOUT_S = 6.0  # with /health's 3 s: a stalled API is said within 9 s


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def is_database(uri: str) -> bool:
    return uri.split(":", 1)[0].split("+", 1)[0] in DATABASE_SCHEMES


def auth_headers(uri: str = "", environ: Any = None) -> dict[str, str]:
    """The Authorization header MLflow's client sends from the environment: MLFLOW_TRACKING_TOKEN
    (bearer), MLFLOW_TRACKING_USERNAME/PASSWORD (basic), else credentials written in URI."""
    env = os.environ if environ is None else environ
    token = env.get("MLFLOW_TRACKING_TOKEN")
    user, password = env.get("MLFLOW_TRACKING_USERNAME"), env.get("MLFLOW_TRACKING_PASSWORD")
    if token:
        return {"Authorization": f"Bearer {token}"}
    if not (user and password) and uri:
        parts = urlsplit(uri)
        user, password = unquote(parts.username or ""), unquote(parts.password or "")
    if user and password:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    return {}


def _tls_context(uri: str) -> Any:
    """The TLS settings MLflow's client honours, for an https server; None for http."""
    if not uri.startswith("https://"):
        return None
    import ssl

    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() in ("true", "1"):
        return ssl._create_unverified_context()  # noqa: S323 - the user asked for it, as MLflow does
    return ssl.create_default_context(cafile=os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None)


def _server_error(uri: str, exc: BaseException, timeout: float) -> TrackingError:
    """One line for a server that did not answer: down, stalled, or not there at all."""
    where = f"the tracking server {mask_uri(uri)}"
    hint = "is it running? check MLFLOW_TRACKING_URI (nbops config shows the store)"
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(exc, urllib.error.URLError) and isinstance(reason, TimeoutError):
        # the connection itself was not accepted in time (a firewall dropping packets, a host gone)
        return StoreUnreachable(f"{where} is not reachable: no connection within {timeout:g} s", hint=hint)
    if isinstance(reason, TimeoutError):
        return StoreUnreachable(f"{where} is not reachable: it accepted the connection but did not answer "
                             f"within {timeout:g} s (stalled)",
                             hint="the server is stuck or overloaded: check its log and its database; "
                                  "or check MLFLOW_TRACKING_URI")
    if isinstance(reason, ConnectionRefusedError):
        return StoreUnreachable(f"{where} is not reachable: connection refused (is it down?)", hint=hint)
    if isinstance(reason, socket.gaierror):
        return StoreUnreachable(f"{where} is not reachable: unknown host", hint="check MLFLOW_TRACKING_URI")
    return StoreUnreachable(f"{where} is not reachable: {mask_uri(str(reason))}", hint=hint)


def _auth_error(uri: str, code: int) -> TrackingError:
    where = f"the tracking server {mask_uri(uri)}"
    if code == 401:
        if auth_headers(uri):
            return StoreAuthError(f"{where} refused the login (HTTP 401)",
                                 hint="check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
                                      "(or MLFLOW_TRACKING_TOKEN)")
        return StoreAuthError(f"{where} asks for a login (HTTP 401)", hint=AUTH_HINT)
    user = os.environ.get("MLFLOW_TRACKING_USERNAME") or "this user"
    return StoreAuthError(f"{where} refused {user} access to experiments (HTTP 403)",
                         hint="ask the server's admin for a permission, or use another "
                              "MLFLOW_TRACKING_USERNAME")


def check_server(uri: str, timeout: float) -> None:
    """URI's /health within TIMEOUT seconds, then one authenticated read (an experiments search of
    one) within max(TIMEOUT, API_TIMEOUT_S) more: the 401 of an auth app comes from the API (its
    /health is open to all), and a server whose API hangs (its database) is found here too."""
    parts = urlsplit(uri)
    netloc = parts.hostname or ""
    if ":" in netloc:  # an IPv6 address
        netloc = f"[{netloc}]"
    if parts.port:
        netloc += f":{parts.port}"
    base = f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"
    context = _tls_context(uri)
    probes: list[tuple[str, bytes | None]] = [
        ("/health", None), ("/api/2.0/mlflow/experiments/search", b'{"max_results": 1}')]
    for path, body in probes:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers.update({"Content-Type": "application/json", **auth_headers(uri)})
        request = urllib.request.Request(base + path, data=body, headers=headers)
        wait = timeout if body is None else max(timeout, API_TIMEOUT_S)
        try:
            with urllib.request.urlopen(request, timeout=wait, context=context) as reply:  # noqa: S310
                reply.read(256)
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise _auth_error(uri, exc.code) from None
            # it answered: a proxy in front of /health, an old server, an API error MLflow's
            # client words better (the command goes on and MLflow says it)
            continue
        except (OSError, ValueError) as exc:
            if body is not None and isinstance(exc, TimeoutError):
                # /health answered: a slow API (a loaded server, basic auth hashing the password on
                # every request) is no reason to refuse; MLflow's client, its retries bounded
                # (core/store.py), says it if the API really hangs
                return
            raise _server_error(uri, exc, timeout) from None


def _db_error(uri: str, exc: BaseException, timeout: float) -> TrackingError:
    """One line for a database that refused: the login, the connection, or no answer in time."""
    where = f"the database {mask_uri(uri)}"
    text = " ".join(str(getattr(exc, "orig", None) or exc).split()).lower()
    if isinstance(exc, ImportError | ModuleNotFoundError) or "no module named" in text:
        return TrackingError(f"{where} needs a driver that is not installed: {mask_uri(str(exc))}",
                             hint="pip install 'nbops[team]' (psycopg2 for postgresql+psycopg2://)")
    if any(s in text for s in ("password authentication failed", "access denied", "login failed",
                               "authentication failed", "no password supplied", "no pg_hba.conf entry")):
        return StoreAuthError(f"the database refused the login: {mask_uri(uri)} (wrong user or password)",
                             hint="check the user and password in MLFLOW_TRACKING_URI (or tracking_uri)")
    if "does not exist" in text or "unknown database" in text:
        return TrackingError(f"{where} refused: {mask_uri(text[:160])}",
                             hint="create the database (createdb), or check its name in the URI")
    if "timeout" in text or "timed out" in text:
        return StoreUnreachable(f"{where} did not answer within {timeout:g} s (stalled or unreachable)",
                             hint="is the database up and reachable from here? check its host and port")
    if "refused" in text:
        return StoreUnreachable(f"{where} is not reachable: connection refused (is it down?)",
                             hint="is the database running? check its host and port in the URI")
    return StoreUnreachable(f"{where} is not reachable: {mask_uri(text[:200])}",
                         hint="check MLFLOW_TRACKING_URI (nbops config shows the store)")


def check_database(uri: str, timeout: float) -> None:
    """One connection to a database store (postgresql, mysql, mssql URIs), bounded by TIMEOUT:
    the login checked before MLflow's store opens it (MLflow retries a refused login for ~100 s)."""
    try:
        import sqlalchemy
    except ImportError as exc:
        raise _db_error(uri, exc, timeout) from None
    seconds = max(2, round(timeout))  # libpq's connect_timeout: whole seconds, at least 2
    scheme = uri.split(":", 1)[0]
    connect_args: dict[str, Any] = {"connect_timeout": seconds}
    if scheme.startswith("mysql"):
        connect_args["read_timeout"] = seconds
    elif scheme.startswith("mssql"):
        connect_args = {"timeout": seconds}
    try:
        engine = sqlalchemy.create_engine(uri, connect_args=connect_args, poolclass=sqlalchemy.pool.NullPool)
        try:
            with engine.connect() as con:
                con.execute(sqlalchemy.text("SELECT 1"))
        finally:
            engine.dispose()
    except Exception as exc:  # noqa: BLE001 - every driver has its own exception tree; all mean "no"
        raise _db_error(uri, exc, timeout) from None
    _bound_mlflow_db_retries()


def _bound_mlflow_db_retries(count: int = 3) -> None:
    """MLflow's SQLAlchemy store retries opening the database 10 times, sleeping ~100 s in all;
    no variable sets it (the fence: nbops/_mlflow_private.py). The login has just been checked:
    a failure now is transient, three tries (0.4 s) do."""
    from nbops._mlflow_private import bound_db_retries

    bound_db_retries(count)
