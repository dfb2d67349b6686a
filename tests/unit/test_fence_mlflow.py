"""nbops/_mlflow_private.py: the installed MLflow still has what the kernel side relies on (its
private run-context registry, `RunContextProvider`'s two methods, `start_run`'s parameters), and
registering tags through the fence really tags the runs MLflow starts. A release that moves them
fails here (`make test` runs this on the oldest and newest MLflow nbops supports: tests/matrix)."""

from __future__ import annotations

from nbops import _mlflow_private as fence


def test_the_installed_mlflow_has_what_the_fence_uses():
    import mlflow

    assert fence.missing(mlflow) == []


def test_registered_tags_are_what_mlflow_resolves_for_a_new_run():
    from mlflow.tracking.context.registry import resolve_tags

    on: list[bool] = []  # the registry is the process's: tag nothing once this test is done
    fence.register_run_tags(lambda: {"nbops.fence": "yes"} if on else {})
    on.append(True)
    try:
        assert resolve_tags({"given": "1"})["nbops.fence"] == "yes"
        assert resolve_tags({"nbops.fence": "the caller's"})["nbops.fence"] == "the caller's"
    finally:
        on.clear()
    assert "nbops.fence" not in resolve_tags({})


def test_a_start_run_without_run_id_first_is_named():
    class Moved:  # an MLflow whose start_run lost the parameters the wrapper passes on
        @staticmethod
        def start_run(experiment_id=None, run_name=None):
            return None

        @staticmethod
        def active_run():
            return None

    gone = fence.missing(Moved)
    assert "mlflow.start_run's first parameter run_id" in gone
    assert "mlflow.start_run's keyword nested" in gone


def test_bound_db_retries_lowers_mlflows_count_and_never_raises_it(monkeypatch):
    import mlflow.store.db.utils as utils

    monkeypatch.setattr(utils, fence.DB_RETRIES_NAME, 10)
    fence.bound_db_retries(3)
    assert utils.MAX_RETRY_COUNT == 3
    fence.bound_db_retries(7)
    assert utils.MAX_RETRY_COUNT == 3
