"""Reading the model registry: registered models and their versions as plain dataclasses
(lifecycle/versions.py), a NAME@ALIAS or NAME/VERSION reference resolved to its version.

The rows come through lifecycle/registry_store.py (a fast reader, or MLflow's client). What
changes the registry lives beside this: alias moves and their record in lifecycle/aliases.py,
approvals in lifecycle/approvals.py, what a champion must satisfy in lifecycle/eligibility.py.
"""

from __future__ import annotations

import json
from typing import Any

from nbops.core.config import Settings
from nbops.core.errors import RegistryError
from nbops.core.registry_read import RawModel, RawRun, RawVersion
from nbops.core.store import params_digest
from nbops.lifecycle.registry_store import RegistryStore
from nbops.lifecycle.versions import ALIASES, ModelInfo, VersionInfo, parse_ref, rank_key


class Registry:
    """MLflow's registry seen through nbops's conventions; methods return plain dataclasses."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.uri = settings.resolved_tracking_uri
        self.store = RegistryStore(self.uri)

    @property
    def client(self) -> Any:
        """MLflow's client, opened on first use (checks the server, ends a dead nbops's runs)."""
        return self.store.client

    def model(self, name: str) -> ModelInfo:
        rm: RawModel | None = self.store.read("model", name)
        if rm is None:
            names = self.store.read("model_names")
            from nbops.notebook.params import closest

            guess = closest(name, names)
            raise RegistryError(
                f"no registered model named '{name}'",
                hint=f"did you mean '{guess}'?" if guess else
                ("registered: " + ", ".join(names[:10]) if names else "no model is registered yet"),
            )
        try:
            gates = tuple(json.loads(rm.tags.get("nbops.gates", "[]")))
        except json.JSONDecodeError:
            gates = ()
        return ModelInfo(name=name, compare=rm.tags.get("nbops.compare", ""),
                         higher_is_better=rm.tags.get("nbops.higher_is_better", "true") != "false",
                         gates=gates, aliases=dict(rm.aliases))

    def _info(self, mv: RawVersion, aliases_by_version: dict[str, list[str]]) -> VersionInfo:
        tags = dict(mv.tags)
        # the version's `metric.*` tags are rounded to 6 digits for display; the run has the
        # exact values (0.8999996 must not pass `accuracy >= 0.9`), so the run wins when it exists;
        # only a deleted run falls back to the version's tags (gates on them would be weaker)
        metrics = {k[len("metric."):]: float(v) for k, v in tags.items() if k.startswith("metric.")}
        run: RawRun | None = self.store.read("run", mv.run_id) if mv.run_id else None
        if run is not None:
            metrics.update(run.metrics)
            tags.setdefault("nbops.params_digest", params_digest(dict(run.params)))
            for key in ("nbops.notebook", "nbops.git_sha"):
                if key in run.tags:
                    tags.setdefault(key, run.tags[key])
        return VersionInfo(
            name=mv.name, version=mv.version, run_id=mv.run_id, source=mv.source, metrics=metrics,
            tags=tags, aliases=tuple(aliases_by_version.get(mv.version, ())), created=mv.created,
            store_uri=self.uri,
        )

    def versions(self, name: str) -> tuple[ModelInfo, list[VersionInfo]]:
        """Every version of NAME, best compare metric first."""
        info = self.model(name)
        versions = [self._info(mv, info.by_version) for mv in self.store.read("versions", name)]
        versions.sort(key=rank_key(info))
        return info, versions

    def names(self) -> list[str]:
        """The registered models' names (MLflow's first 1,000), sorted."""
        return sorted(self.store.read("model_names"))

    def get(self, name: str, version: str) -> VersionInfo:
        info = self.model(name)
        mv: RawVersion | None = self.store.read("version", name, str(version))
        if mv is None:
            raise RegistryError(f"model '{name}' has no version {version}", hint=f"nbops models list {name}")
        return self._info(mv, info.by_version)

    def resolve(self, ref: str) -> VersionInfo:
        """NAME@ALIAS, NAME/VERSION, or NAME (its champion)."""
        name, alias, version = parse_ref(ref)
        if version:
            return self.get(name, version)
        alias = alias or "champion"
        info = self.model(name)
        if alias not in info.aliases:
            raise RegistryError(
                f"model '{name}' has no alias '{alias}'",
                hint=f"nbops models promote {name} VERSION --alias {alias}"
                if alias in ALIASES else f"aliases: {', '.join(info.aliases) or 'none'}",
            )
        return self.get(name, info.aliases[alias])
