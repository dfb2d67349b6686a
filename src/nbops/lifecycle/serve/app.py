"""The FastAPI app of `nbops serve`: routes, replies, error accounting."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from nbops.lifecycle.serve.batching import INLINE_ROWS
from nbops.lifecycle.serve.payload import PayloadError, decode
from nbops.lifecycle.serve.served import Served
from nbops.lifecycle.serve.service import Service, log

JSON = "application/json"


class Handlers:
    """The routes' code, on one Service: reading the body, predicting, replying and counting."""

    def __init__(self, service: Service):
        import orjson
        from fastapi.responses import Response
        from starlette.requests import ClientDisconnect

        from nbops.lifecycle.models import InputError

        self.service = service
        self.max_body = service.options.max_body
        self._orjson, self._response, self._input_error = orjson, Response, InputError
        self._disconnect = ClientDisconnect

    def reply(self, status: int, body: dict, headers: dict[str, str] | None = None) -> Any:
        orjson = self._orjson
        return self._response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY, default=_plain),
                              status_code=status, media_type=JSON, headers=headers)

    def failed(self, served: Served | None, started: float, status: int, reason: str,
               message: str) -> Any:
        self.service.metrics.observe(served, status, time.perf_counter() - started, reason)
        body = {"error": message}
        if served is not None:
            body.update(model=served.name, version=served.version, alias=served.alias)
            return self.reply(status, body, served.headers)
        return self.reply(status, body)

    async def body(self, request: Any, served: Served, started: float) -> bytes | Any:
        """The raw body, or a 413 reply past --max-body (counted as it arrives: chunked too)."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            return self.failed(served, started, 413, "too_large",
                               f"the body has {declared} bytes; the limit is {self.max_body} (--max-body)")
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > self.max_body:
                    return self.failed(served, started, 413, "too_large",
                                       f"the body exceeds {self.max_body} bytes (--max-body)")
                chunks.append(chunk)
        except self._disconnect:  # the client left, or --read-timeout closed it mid-body
            return self.failed(served, started, 408, "incomplete", "the body did not arrive whole")
        return b"".join(chunks)

    def features(self, raw: bytes, served: Served, started: float,
                 query: Any) -> tuple[Any, int, bool] | Any:
        """(model input, rows, whether class probabilities are asked for) from the body, or a
        400/500 reply naming what is wrong."""
        try:
            payload = self._orjson.loads(raw)
            proba = wants_proba(payload, query)
            if proba and served.model.classes is None:
                raise PayloadError(f"{served.name} version {served.version} gives no class "
                                   "probabilities (its model has no predict_proba); drop "
                                   "'probabilities' / ?proba")
            return (*served.prepare(*decode(payload)), proba)
        except self._orjson.JSONDecodeError as exc:
            return self.failed(served, started, 400, "bad_json", f"the body is not valid JSON: {exc}")
        except (PayloadError, self._input_error) as exc:
            return self.failed(served, started, 400, "bad_input", str(exc))
        except (ValueError, TypeError) as exc:  # a conversion the checks did not foresee
            return self.failed(served, started, 400, "bad_input", f"cannot read the input: {exc}")
        except Exception as exc:  # noqa: BLE001 - a bug here must not stop the service
            log.exception("reading a request for %s version %s failed", served.name, served.version)
            return self.failed(served, started, 500, "internal",
                               f"cannot read the input: {type(exc).__name__}: {exc}")

    @staticmethod
    async def run_model(served: Served, features: Any, rows: int) -> Any:
        import numpy as np

        if rows > INLINE_ROWS:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, served.model.predict, features)
        if served.batcher is not None and isinstance(features, np.ndarray):
            return await served.batcher.submit(features)
        return served.model.predict(features)

    async def predict(self, request: Any) -> Any:
        started = time.perf_counter()
        served = self.service.pick(request.headers.get("x-request-key"))
        if served is None:
            return self.failed(None, started, 503, "not_ready", "the models are still loading")
        raw = await self.body(request, served, started)
        if not isinstance(raw, bytes):
            return raw
        prepared = self.features(raw, served, started, request.query_params)
        if not isinstance(prepared, tuple):
            return prepared
        features, rows, proba = prepared
        body: dict[str, Any] = {"model": served.name, "version": served.version, "alias": served.alias}
        try:
            if proba:
                body["predictions"], body["probabilities"] = await run_with_proba(served, features, rows)
                body["classes"] = list(served.model.classes)
            else:
                body["predictions"] = await self.run_model(served, features, rows)
        except (ValueError, TypeError) as exc:  # the model refused these values (e.g. NaN)
            return self.failed(served, started, 400, "bad_input", _rejected(exc, features, served.names))
        except Exception as exc:  # noqa: BLE001 - one bad request must not stop the service
            log.exception("prediction failed on %s version %s", served.name, served.version)
            return self.failed(served, started, 500, "model_error",
                               f"prediction failed: {type(exc).__name__}: {exc}")
        try:
            response = self.reply(200, body, served.headers)
        except Exception as exc:  # noqa: BLE001 - predictions orjson cannot write
            log.exception("writing predictions of %s version %s failed", served.name, served.version)
            return self.failed(served, started, 500, "model_error",
                               f"cannot write the predictions as JSON: {type(exc).__name__}: {exc}")
        self.service.metrics.observe(served, 200, time.perf_counter() - started)
        return response

    async def health(self, request: Any) -> Any:
        return self.reply(200, {"status": "ok"})

    async def ready(self, request: Any) -> Any:
        state = self.service.readiness()
        return self.reply(200 if state["ready"] else 503, state)

    async def metrics(self, request: Any) -> Any:
        from prometheus_client import CONTENT_TYPE_LATEST

        return self._response(self.service.metrics.text(), media_type=CONTENT_TYPE_LATEST)


def create_app(service: Service, versions: dict[str, Any]):
    """The FastAPI app. VERSIONS (alias -> VersionInfo, resolved before the port was bound) are
    loaded once the server runs."""
    import contextlib

    from fastapi import FastAPI

    @contextlib.asynccontextmanager
    async def lifespan(app):
        tasks = [asyncio.create_task(service.load(versions))]
        if service.options.reload_interval:
            tasks.append(asyncio.create_task(service.watch(service.options.reload_interval)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            service.mlflow.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title=f"nbops serve {service.options.name}", lifespan=lifespan,
                  openapi_url=None, docs_url=None, redoc_url=None)
    h = Handlers(service)
    # plain Starlette routes: FastAPI's dependency solving and body models would only add
    # per-request work here, and the body is read raw anyway
    app.router.add_route("/predict", h.predict, methods=["POST"])
    app.router.add_route("/invocations", h.predict, methods=["POST"])  # MLflow's path
    app.router.add_route("/health", h.health, methods=["GET"])
    app.router.add_route("/ping", h.health, methods=["GET"])  # MLflow's path
    app.router.add_route("/ready", h.ready, methods=["GET"])
    app.router.add_route("/metrics", h.metrics, methods=["GET"])
    return app


def wants_proba(payload: Any, query: Any) -> bool:
    """Whether a request asks for class probabilities: `"probabilities": true` in a JSON object
    body, or `?proba=true` (or 1)."""
    flag = payload.get("probabilities", False) if isinstance(payload, dict) else False
    if not isinstance(flag, bool):
        raise PayloadError(f"'probabilities' must be true or false, got {flag!r}")
    text = query.get("proba", "").lower()
    if text not in ("", "true", "1", "false", "0"):
        raise PayloadError(f"?proba= takes true or false, got {text!r}")
    return flag or text in ("true", "1")


async def run_with_proba(served: Served, features: Any, rows: int) -> tuple[Any, Any]:
    """(predictions, class probabilities), on a worker thread for large requests (not batched)."""
    def both() -> tuple[Any, Any]:
        return served.model.predict(features), served.model.predict_proba(features)

    if rows > INLINE_ROWS:
        return await asyncio.get_running_loop().run_in_executor(None, both)
    return both()


def _rejected(exc: Exception, features: Any, names: tuple[str, ...]) -> str:
    """The model's complaint (its first line: sklearn's go on for a paragraph), naming the
    columns with missing values when there are any, since the model's message does not."""
    import numpy as np

    message = f"the model rejected the input: {(str(exc).strip().splitlines() or [''])[0]}"
    try:
        if isinstance(features, np.ndarray):
            missing: Any = np.isnan(features).any(axis=0).tolist()
            empty = [n for n, bad in zip(names, missing, strict=True) if bad]
        else:
            empty = [str(n) for n in features.columns[features.isna().any().to_numpy()]]
    except (TypeError, ValueError, AttributeError):
        empty = []
    if empty:
        message += f" (missing values in column {', '.join(repr(n) for n in empty)})"
    return message


def _plain(obj: Any) -> Any:
    """orjson's fallback: numpy arrays it cannot take (strings, objects), scalars, pandas."""
    if hasattr(obj, "to_dict") and hasattr(obj, "columns"):  # a DataFrame
        return obj.to_dict(orient="records")
    if hasattr(obj, "tolist"):  # ndarray, Series, numpy scalar
        return obj.tolist()
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


# -- the command -------------------------------------------------------------------------------
