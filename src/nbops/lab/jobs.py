"""Notebook jobs (jupyter-scheduler's "Create a notebook job", now or on a schedule) executed by
`nbops run`: the project's notebook at its path, with the job's parameters, tracked in the
project's store with the lineage `nbops run` records (git sha, dirty flag, fingerprint, data),
registered when its gates hold. The executed notebook comes back as the job's output."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from jupyter_scheduler.environments import EnvironmentManager
from jupyter_scheduler.executors import ExecutionManager
from jupyter_scheduler.models import JobFeature, RuntimeEnvironment
from jupyter_scheduler.scheduler import Scheduler

NOTEBOOK_TAG = "nbops:notebook="  # the job's notebook, relative to the project root
RUN_TAG = "MLflow run: "  # the job's MLflow run, as a path in the lab's MLflow tab


class NbopsScheduler(Scheduler):
    """jupyter-scheduler's scheduler; a job remembers which project notebook it runs (the
    scheduler itself keeps only a staged copy, which has no git history)."""

    def _remember(self, model: Any) -> None:
        uri = str(model.input_uri)
        if not os.path.isabs(uri) and not any(t.startswith(NOTEBOOK_TAG) for t in model.tags or []):
            model.tags = [*(model.tags or []), NOTEBOOK_TAG + uri]

    def _check_parameters(self, model: Any) -> None:
        """The job's parameters checked as `nbops run -p` checks them (names, types, a
        parameter's `choices`), so a typo fails the form at once in nbops's words, not the job."""
        from jupyter_scheduler.exceptions import SchedulerError

        from nbops.core.errors import NbopsError
        from nbops.notebook.document import load
        from nbops.notebook.params import resolve

        uri = str(model.input_uri)
        path = Path(uri) if os.path.isabs(uri) else Path(self.root_dir) / uri
        try:
            notebook = load(path)
        except (NbopsError, OSError):
            return  # `nbops run` says what is wrong with the notebook, as the job's failure
        try:
            resolve(notebook, dict(model.parameters or {}))
        except NbopsError as exc:
            raise SchedulerError(f"{exc}" + (f" ({exc.hint})" if exc.hint else "")) from None

    def create_job(self, model: Any) -> str:
        self._remember(model)
        if model.parameters:
            self._check_parameters(model)
        job_id = super().create_job(model)
        self._queued(job_id)
        return job_id

    def _queued(self, job_id: str) -> None:
        """A new job reads "Queued" until its process starts it. jupyter-scheduler's table gives
        a job the default status STOPPED and its process (spawned: seconds to import) sets
        IN_PROGRESS only when it starts, so the list said "Stopped" for a job that had not run
        yet. Only a job its process has not started yet (no start time) is changed."""
        from jupyter_scheduler.models import Status
        from jupyter_scheduler.orm import Job

        with self.db_session() as session:
            session.query(Job).filter(Job.job_id == job_id, Job.status == Status.STOPPED,
                                      Job.start_time.is_(None)).update({"status": Status.QUEUED})
            session.commit()

    def create_job_definition(self, model: Any) -> str:
        self._remember(model)
        return super().create_job_definition(model)


class ProjectEnvironment(EnvironmentManager):
    """One environment: the project's, where `nbops run` runs."""

    def list_environments(self) -> list[RuntimeEnvironment]:
        return [RuntimeEnvironment(
            name="nbops", label="nbops run (tracked in MLflow)",
            description="nbops run in this project's Python: tracked, lineage, model registration",
            file_extensions=["ipynb"], output_formats=["ipynb", "html"],
            metadata={"path": sys.executable})]

    def manage_environments_command(self) -> str:
        return ""

    def output_formats_mapping(self) -> dict[str, str]:
        return {"ipynb": "Notebook", "html": "HTML"}


def find_run(root: Path, executed: Path) -> tuple[str, str] | None:
    """(experiment id, run id) of the run `nbops run` recorded for the EXECUTED notebook, in the
    project's store; None when it recorded none (--no-track, a run kept in the spool) or the
    store does not answer (the job's result stands without its link)."""
    from mlflow.tracking import MlflowClient

    from nbops.core.config import load_settings
    from nbops.core.context import relative_to_repo
    from nbops.core.errors import NbopsError
    from nbops.core.store import all_experiment_ids, mlflow_errors, use_store

    settings = load_settings(root)
    use_store(settings.resolved_tracking_uri)
    output = relative_to_repo(executed, settings.root).replace("'", "\\'")
    try:
        with mlflow_errors("find the job's run"):
            client = MlflowClient()
            runs = client.search_runs(all_experiment_ids(client), f"tags.`nbops.output` = '{output}'",
                                      max_results=1, order_by=["attributes.start_time DESC"])
    except NbopsError:
        return None
    return (runs[0].info.experiment_id, runs[0].info.run_id) if runs else None


def nbops_command(notebook: str, parameters: dict[str, str] | None, output_dir: str) -> list[str]:
    # a pipeline notebook's job runs its pipeline: the notebooks it needs, then it (one job, one parent run)
    cmd = [sys.executable, "-m", "nbops", "run", notebook, "--with-needs", "--output-dir", output_dir, "--quiet"]
    for name, value in (parameters or {}).items():
        cmd += ["-p", f"{name}={value}"]
    return cmd


class NbopsExecutionManager(ExecutionManager):
    """Runs the job's notebook with `nbops run` in the project root (a separate process, as
    jupyter-scheduler runs every job); a failed run fails the job with nbops's own words."""

    def execute(self) -> None:
        job = self.model
        notebook = next((t[len(NOTEBOOK_TAG):] for t in job.tags or [] if t.startswith(NOTEBOOK_TAG)),
                        self.staging_paths["input"])
        staging = Path(self.staging_paths["input"]).parent
        out = staging / "nbops-output"
        done = subprocess.run(nbops_command(notebook, job.parameters, str(out)), cwd=self.root_dir,
                              capture_output=True, text=True, check=False)
        (staging / "nbops-run.log").write_text(done.stdout + done.stderr, encoding="utf-8")
        # the job's own notebook's output (a pipeline job writes its upstreams' too; a notebook
        # skipped because an upstream failed writes none)
        executed = sorted((p for p in out.glob("**/*.ipynb") if p.parent.name == Path(notebook).stem),
                          key=lambda p: p.stat().st_mtime)
        if executed:
            self._outputs(job, executed[-1])
            self._link_run(job, executed[-1])
        if done.returncode != 0:
            lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
            raise RuntimeError(lines[-1] if lines else f"nbops run exited {done.returncode}")

    def _link_run(self, job: Any, executed: Path) -> None:
        """The job's page names its MLflow run: a tag `MLflow run: mlflow/#/experiments/E/runs/R`
        (the run's page in the lab's MLflow tab, under Jupyter's base URL), found by the
        executed notebook's path, which `nbops run` tags every run with (`nbops.output`)."""
        from jupyter_scheduler.orm import Job

        try:
            run = find_run(Path(self.root_dir), executed)
        except Exception:  # noqa: BLE001 - not mapped: the link is optional; the job's result stands
            return
        if run is None:
            return
        tags = [t for t in job.tags or [] if not t.startswith(RUN_TAG)]
        tags.append(f"{RUN_TAG}mlflow/#/experiments/{run[0]}/runs/{run[1]}")
        with self.db_session() as session:
            session.query(Job).filter(Job.job_id == job.job_id).update({"tags": tags})
            session.commit()

    def _outputs(self, job: Any, executed: Path) -> None:
        for fmt in job.output_formats or []:
            target = self.staging_paths.get(fmt)
            if not target:
                continue
            if fmt == "ipynb":
                shutil.copyfile(executed, target)
            else:
                import nbconvert
                import nbformat

                body, _ = nbconvert.get_exporter(fmt)().from_notebook_node(
                    nbformat.read(str(executed), as_version=4))
                Path(target).write_text(body, encoding="utf-8")

    # jupyter-scheduler calls both on the class with the class as first argument
    def supported_features(cls) -> dict[JobFeature, bool]:
        on = (JobFeature.job_name, JobFeature.parameters, JobFeature.output_formats,
              JobFeature.job_definition, JobFeature.stop_job, JobFeature.delete_job)
        return {feature: feature in on for feature in JobFeature}

    def validate(cls, input_path: str) -> bool:
        return True  # nbops reports a notebook it cannot run, in one line, as the job's failure
