"""A tracking server read (the registry) and written (the alias and tag writes of `promote`,
`approve`, `rollback`) through MLflow's documented REST API (`/api/2.0/mlflow/...`) with urllib:
no `import mlflow` (~2.3 s) for a handful of small requests.

Authentication as MLflow's client does it from the environment: MLFLOW_TRACKING_TOKEN (bearer)
or MLFLOW_TRACKING_USERNAME/PASSWORD (basic). A 404 `RESOURCE_DOES_NOT_EXIST` is "not there";
any other failure raises `Unavailable` and the caller asks MLflow (its retries, its messages).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from nbops.core.reach import auth_headers
from nbops.core.registry_read import RawModel, RawRun, RawVersion, Unavailable

_NOT_FOUND = object()


def _tags(items: list[dict] | None) -> dict[str, str]:
    return {t["key"]: t.get("value", "") for t in items or ()}


def _float(value: Any) -> float:
    return float(value)  # the API writes NaN and infinities as "NaN", "Infinity", "-Infinity"


class RestReader:
    def __init__(self, uri: str):
        self.base = uri.rstrip("/") + "/api/2.0/mlflow/"
        self.timeout = float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT") or 20)
        self.headers = {"Accept": "application/json", "Content-Type": "application/json",
                        **auth_headers()}  # the same as the reachability check's (core/reach.py)

    def _call(self, endpoint: str, query: dict | None = None, body: dict | None = None,
              method: str | None = None) -> Any:
        url = self.base + endpoint + ("?" + urllib.parse.urlencode(query) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, headers=self.headers,
                                         method=method or ("POST" if data is not None else "GET"))
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:  # noqa: S310 - http(s) only
                return json.loads(reply.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                error = json.loads(exc.read() or b"{}")
            except ValueError:
                error = {}
            if exc.code == 404 and error.get("error_code") == "RESOURCE_DOES_NOT_EXIST":
                return _NOT_FOUND
            raise Unavailable(f"{endpoint}: HTTP {exc.code}") from None
        except (OSError, ValueError) as exc:
            raise Unavailable(f"{endpoint}: {exc}") from None

    def model(self, name: str) -> RawModel | None:
        found = self._call("registered-models/get", {"name": name})
        if found is _NOT_FOUND:
            return None
        rm = found["registered_model"]
        return RawModel(rm["name"], _tags(rm.get("tags")),
                        {a["alias"]: str(a["version"]) for a in rm.get("aliases") or ()})

    def model_names(self) -> list[str]:
        found = self._call("registered-models/search", {"max_results": 1000})
        return [] if found is _NOT_FOUND else [m["name"] for m in found.get("registered_models") or ()]

    @staticmethod
    def _version(mv: dict) -> RawVersion:
        return RawVersion(mv["name"], str(mv["version"]), mv.get("run_id") or "", mv.get("source") or "",
                          int(mv.get("creation_timestamp") or 0), _tags(mv.get("tags")))

    def versions(self, name: str) -> list[RawVersion]:
        escaped = name.replace("'", "\\'")
        out: list[RawVersion] = []
        query = {"filter": f"name = '{escaped}'", "max_results": 10_000}
        while True:
            found = self._call("model-versions/search", query)
            if found is _NOT_FOUND:
                return out
            out.extend(self._version(mv) for mv in found.get("model_versions") or ())
            token = found.get("next_page_token")
            if not token:
                return out
            query = {**query, "page_token": token}

    def version(self, name: str, version: str) -> RawVersion | None:
        found = self._call("model-versions/get", {"name": name, "version": str(version)})
        return None if found is _NOT_FOUND else self._version(found["model_version"])

    def run(self, run_id: str) -> RawRun | None:
        found = self._call("runs/get", {"run_id": run_id})
        if found is _NOT_FOUND:
            return None
        data = found["run"].get("data") or {}
        return RawRun(run_id, {m["key"]: _float(m["value"]) for m in data.get("metrics") or ()},
                      {p["key"]: p.get("value", "") for p in data.get("params") or ()}, _tags(data.get("tags")),
                      (found["run"].get("info") or {}).get("artifact_uri", ""))

    def artifact_location(self, model_id: str) -> str | None:
        """Where MLflow keeps a logged model's artifacts (its `models:/<model id>` URI)."""
        found = self._call(f"logged-models/{urllib.parse.quote(model_id)}")
        if found is _NOT_FOUND:
            return None
        return ((found.get("model") or {}).get("info") or {}).get("artifact_uri") or None

    # -- the registry's writes (alias moves, their records, approvals): MlflowClient's names -------
    def _write(self, endpoint: str, body: dict, method: str = "POST") -> None:
        if self._call(endpoint, body=body, method=method) is _NOT_FOUND:
            raise Unavailable(f"{endpoint}: not found")  # MLflow's client says it in its words

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self._write("registered-models/alias", {"name": name, "alias": alias, "version": str(version)})

    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        self._write("registered-models/set-tag", {"name": name, "key": key, "value": value})

    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self._write("model-versions/set-tag", {"name": name, "version": str(version), "key": key, "value": value})

    def delete_model_version_tag(self, name: str, version: str, key: str) -> None:
        self._write("model-versions/delete-tag", {"name": name, "version": str(version), "key": key}, "DELETE")

    def _page(self, endpoint: str, body: dict) -> dict:
        found = self._call(endpoint, body=body)
        if found is _NOT_FOUND:
            raise Unavailable(f"{endpoint}: not found")
        return found

    def running_runs(self) -> list[tuple[str, dict[str, str]]]:
        """RUNNING runs of active experiments (for the orphan check): two requests a page."""
        ids: list[str] = []
        body: dict[str, Any] = {"max_results": 1000}
        while True:
            page = self._page("experiments/search", body)
            ids.extend(e["experiment_id"] for e in page.get("experiments") or ())
            if not page.get("next_page_token"):
                break
            body = {**body, "page_token": page["next_page_token"]}
        out: list[tuple[str, dict[str, str]]] = []
        body = {"experiment_ids": ids, "filter": "attributes.status = 'RUNNING'", "max_results": 1000}
        while ids:
            page = self._page("runs/search", body)
            for run in page.get("runs") or ():
                out.append((run["info"]["run_id"], _tags((run.get("data") or {}).get("tags"))))
            if not page.get("next_page_token"):
                break
            body = {**body, "page_token": page["next_page_token"]}
        return out
