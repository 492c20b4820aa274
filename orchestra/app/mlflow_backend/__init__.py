"""orchestra as an MLflow project backend: ``mlflow run URI -b orchestra``.

``backend.py`` is the plugin MLflow loads from the ``mlflow.project_backend`` entry point (it is
the only module here that imports mlflow, and nothing in orchestra imports it). It starts
``child.py`` — a run through ``app.api`` in its own process, so cancelling it is SIGTERM, exactly
as for ``orchestra run`` — and finds the pipeline's parent MLflow run by a tag. ``config.py``
turns MLflow's arguments and ``--backend-config`` into ``RunOptions``
(``schemas/mlflow-backend-config.schema.json``).
"""
