"""How the Dask executor hears from its workers, against a real loopback cluster: outcomes and
output lines come as events on the client's own topic (which the scheduler empties once the
client is gone), and a run leaves no topic of its own on a long-lived scheduler."""

from __future__ import annotations

import json
import pickle

import pytest

from orchestra.core.status import AttemptStatus

pytestmark = pytest.mark.integration


@pytest.fixture
def dask_cluster():
    from tests.integration.daskcluster import cluster

    return cluster()


def _orchestra_events(address: str) -> dict[str, list[list]]:
    """Topic → the worker messages orchestra sent there (lists tagged "outcome" or "line")."""
    from distributed import Client

    with Client(address, timeout=10, set_as_default=False) as client:
        topics = client.get_events()
    found: dict[str, list[list]] = {}
    for topic, events in topics.items():
        for _time, msg in events:
            if isinstance(msg, (list, tuple)) and msg and msg[0] in ("outcome", "line"):
                found.setdefault(topic, []).append(list(msg))
    return found


def test_outcomes_and_lines_come_as_events_on_the_clients_topic(cli, make_project, dask_cluster):
    root = make_project("""
        entry_points:
          first:
            command: "echo line-of-first > {outputs}/f.txt; echo said-first"
          second:
            depends_on: [first]
            command: "cat {inputs.first}/f.txt > {outputs}/s.txt"
    """)
    before = _orchestra_events(dask_cluster.address)
    result = cli("run", str(root), "--executor", dask_cluster.url, "--json")
    assert result.code == 0, result.err
    record = json.loads(result.out)
    assert {s["name"]: s["status"] for s in record["stages"]} == {"first": "FINISHED", "second": "FINISHED"}
    assert "[first] said-first" in result.err
    new = {topic: msgs for topic, msgs in _orchestra_events(dask_cluster.address).items() if topic not in before}
    # One topic: the run's client (no per-run topic that a long-lived scheduler would keep).
    assert len(new) == 1, new
    (topic, msgs), = new.items()
    assert not topic.startswith("orchestra-")
    outcomes = [pickle.loads(payload) for kind, _key, payload in (m for m in msgs if m[0] == "outcome")]
    assert sorted(o.stage for o in outcomes) == ["first", "second"]
    assert all(o.status == AttemptStatus.OK for o in outcomes)
    manifests = {s["name"]: s["manifest"] for s in record["stages"]}
    # Shared paths: the driver published the outputs, so the worker's outcome names none.
    assert all(o.manifest is None for o in outcomes) and set(manifests["second"]) == {"s.txt"}
    assert ["line", "first", "stdout", "said-first"] in msgs


def test_outcome_events_carry_the_manifest_published_to_the_store(cli, make_project, dask_cluster, tmp_path):
    root = make_project("""
        entry_points:
          main:
            command: "echo x > {outputs}/o.txt"
    """)
    env = {"ORCHESTRA_ARTIFACTS": f"file://{tmp_path / 'shared-store'}"}
    before = _orchestra_events(dask_cluster.address)
    result = cli("run", str(root), "--executor", dask_cluster.url, "--json", "-q", env=env)
    assert result.code == 0, result.err
    stage = json.loads(result.out)["stages"][0]
    new = [m for topic, msgs in _orchestra_events(dask_cluster.address).items() if topic not in before for m in msgs]
    outcomes = [pickle.loads(m[2]) for m in new if m[0] == "outcome"]
    assert len(outcomes) == 1 and outcomes[0].manifest == stage["manifest"]
    # The outcome is sent once everything it names is in the store: the manifest is there too.
    digest = outcomes[0].manifest_digest
    found = [p for p in (tmp_path / "shared-store" / "runs").rglob("manifest.json")]
    assert [json.loads(p.read_text())["digest"] for p in found] == [digest]


def _end_with_an_event(topic: str, seconds: float) -> str:
    """A task that sends its outcome as orchestra's worker side does, after its stream was idle
    for ``seconds`` (an event sent on its own would leave at once, in a batch of its own)."""
    import time

    from distributed import get_worker

    from orchestra.execution.executors.daskconnect import with_the_end

    time.sleep(seconds)
    with_the_end(get_worker(), topic, ["outcome", "the-key", b"payload"])
    return "ended"


def _batches_with(topic: str, dask_worker=None) -> list[list[dict]]:  # noqa: ANN001 - Dask passes the worker
    return [list(batch) for batch in dask_worker.batched_stream.recent_message_log
            if isinstance(batch, list) and any(isinstance(m, dict) and m.get("topic") == topic for m in batch)]


def _events(client, topic: str, count: int) -> list[list]:  # noqa: ANN001 - a distributed.Client
    """The messages the scheduler holds under ``topic``, once there are ``count`` (60 s at most)."""
    import time

    deadline = time.monotonic() + 60
    while len(found := client.get_events(topic)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return [list(msg) for _time, msg in found]


def test_the_outcome_event_travels_in_the_batch_that_reports_the_tasks_end(dask_cluster):
    """One message batch from the worker per stage: its end and its outcome together, so the end
    never waits out the worker's batching interval behind an event sent just before it."""
    import uuid

    from distributed import Client

    topic, key = f"test-end-{uuid.uuid4().hex}", f"test-end-{uuid.uuid4().hex}"
    with Client(dask_cluster.address, timeout=10, set_as_default=False) as client:
        future = client.submit(_end_with_an_event, topic, 0.3, key=key, pure=False)
        assert future.result(timeout=60) == "ended"
        assert _events(client, topic, 1) == [["outcome", "the-key", b"payload"]]
        (address,) = client.who_has(future)[key]
        (batch,) = client.run(_batches_with, topic, workers=[address])[address]
    assert any(m.get("op") == "task-finished" and m.get("key") == key for m in batch), batch


def test_an_event_with_no_task_end_after_it_still_reaches_the_driver(dask_cluster):
    """An event sent where no task end follows it (a task Dask cancelled meanwhile) is still
    delivered: a timer flushes the worker's batch."""
    import uuid

    from distributed import Client

    topic = f"test-alone-{uuid.uuid4().hex}"
    with Client(dask_cluster.address, timeout=10, set_as_default=False) as client:
        client.run(_event_alone, topic)
        assert _events(client, topic, 2) == [["outcome", "k", b"x"]] * 2  # one from each worker


def _event_alone(topic: str, dask_worker=None) -> None:  # noqa: ANN001 - Dask passes the worker
    from orchestra.execution.executors.daskconnect import with_the_end

    with_the_end(dask_worker, topic, ["outcome", "k", b"x"])
