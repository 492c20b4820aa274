"""One batch for the whole suite: a real mlflow server, every case through mlflow and orchestra."""

from __future__ import annotations

import time

import pytest

from tests.compat.cases import CASES
from tests.compat.harness import World
from tests.mlflow_server import require_venv, shared_server


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    venv = require_venv()
    server = shared_server(tmp_path_factory.mktemp("mlflow-server"))
    world = World(tmp_path_factory.mktemp("compat"), server.url, venv)
    name = f"compat-{time.time_ns()}"
    experiment = world.api("experiments/create", {"name": name})["experiment_id"]
    run = world.api("runs/create", {"experiment_id": experiment, "start_time": int(time.time() * 1000)})
    world.values.update(experiment_id=experiment, experiment_name=name, run_id=run["run"]["info"]["run_id"])
    return world


@pytest.fixture(scope="session")
def outcomes(world: World):
    """case name → (mlflow's Outcome, orchestra's Outcome)."""
    return world.run_all(CASES)
