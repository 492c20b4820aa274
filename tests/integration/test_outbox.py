"""The one outbox (orchestra/integrations/outbox), each test run against both of its deliverers.

``webhook``: deliveries to a real HTTP receiver on 127.0.0.1 (tests/hooks_receiver.py).
``mlflow``: the mirror's ops of one run. Where a test injects a fault a real ``mlflow server``
cannot produce on demand (500s, 429 with Retry-After, a request that is never answered), they go
to a small real HTTP server on loopback that speaks the few MLflow REST endpoints the mirror's
deliverer calls (tests/outbox_rigs.py: FakeMlflow); where nothing is injected (a refused
connection, a server that comes up later) they go to a real ``mlflow server``
(tests/mlflow_server.py, needs ORCHESTRA_TEST_MLFLOW_VENV). Senders that must end or die are
real processes (tests/outbox_sender.py).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.hooks_receiver import Reply, wait_until
from tests.mlflow_server import MlflowServer, free_port, require_venv
from tests.outbox_rigs import Answering, MirrorSide, WebhookSide, mlflow_delivered_keys, side

pytestmark = pytest.mark.integration

KINDS = ["webhook", "mlflow"]
DEADLINE_S = 60.0


def _error_reply(status: int, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"Content-Type": "application/json", **(headers or {})},
                 b'{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "injected"}')


def _run_id() -> str:
    return uuid.uuid4().hex


def _sender(mode: str, rig: WebhookSide | MirrorSide, url: str, home: Path, count: int) -> subprocess.Popen[str]:
    run_id = rig.run_id if isinstance(rig, MirrorSide) else "-"
    return subprocess.Popen([sys.executable, "-m", "tests.outbox_sender", mode, rig.kind, url, run_id, str(count)],
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "ORCHESTRA_HOME": str(home), "PYTHONPATH": str(REPO_ROOT)})


class _Real:
    """The destination of a test without injected faults: a receiver, or a real mlflow server."""

    def __init__(self, kind: str, port: int, root: Path) -> None:
        self.kind = kind
        self.port = port
        self.root = root
        self.server: MlflowServer | Answering | None = None
        if kind == "mlflow":
            self.venv = require_venv()

    def start(self) -> None:
        if self.kind == "mlflow":
            self.server = MlflowServer(self.venv, self.root, self.port).start()
        else:
            self.server = Answering("webhook", port=self.port)

    def delivered_keys(self, rig: WebhookSide | MirrorSide) -> list[str]:
        if isinstance(self.server, MlflowServer):
            assert isinstance(rig, MirrorSide)
            return mlflow_delivered_keys(self.server, rig.experiment, rig.run_id)
        assert isinstance(self.server, Answering)
        return self.server.delivered_keys(rig.key_of)

    def stop(self) -> None:
        if isinstance(self.server, MlflowServer):
            self.server.stop()
        elif self.server is not None:
            self.server.close()


@pytest.fixture
def real(request: pytest.FixtureRequest, tmp_path: Path):
    made: list[_Real] = []

    def make(kind: str) -> _Real:
        made.append(_Real(kind, free_port(), tmp_path / f"{kind}-server"))
        return made[-1]

    yield make
    for destination in made:
        destination.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_500_twice_then_200_is_retried_until_delivered(kind: str, orchestra_home: Path) -> None:
    with_faults = Answering(kind, lambda request, index: _error_reply(500) if index < 2 else None)
    try:
        rig = side(kind, orchestra_home, with_faults.url, _run_id())
        rig.enqueue(1)
        sender = rig.dispatcher(cooldown_s=0.05)
        try:
            assert sender.drain(DEADLINE_S) == 0
        finally:
            sender.stop()
        [row] = rig.rows()
        assert (row.state, row.attempts) == ("delivered", 3)
        assert [status for _, status in with_faults.answered][:2] == [500, 500]
        assert with_faults.delivered_keys(rig.key_of) == rig.keys()  # once, after the two failures
    finally:
        with_faults.close()


@pytest.mark.parametrize("kind", KINDS)
def test_retry_after_is_honoured(kind: str, orchestra_home: Path) -> None:
    with_faults = Answering(kind, lambda request, index: _error_reply(429, {"Retry-After": "1"}) if index == 0 else None)
    try:
        rig = side(kind, orchestra_home, with_faults.url, _run_id())
        rig.enqueue(1)
        sender = rig.dispatcher(delays=(0.05,), cooldown_s=0.05)  # without Retry-After: 50 ms
        try:
            assert sender.drain(DEADLINE_S) == 0
        finally:
            sender.stop()
        first, second = (request for request, _ in with_faults.answered[:2])
        assert second.at - first.at >= 0.9
        assert [row.state for row in rig.rows()] == ["delivered"]
    finally:
        with_faults.close()


@pytest.mark.parametrize("kind", KINDS)
def test_breaker_opens_on_a_refused_connection_and_closes_after_the_cool_down(kind: str, orchestra_home: Path,
                                                                             real) -> None:
    cooldown = 2.0
    destination = real(kind)  # nothing listens on its port yet
    rig = side(kind, orchestra_home, f"http://127.0.0.1:{destination.port}", _run_id())
    rig.enqueue(3)
    sender = rig.dispatcher(delays=(0.05,) * 200, cooldown_s=cooldown)  # retries alone would hammer
    try:
        sender.start()
        wait_until(lambda: rig.rows()[0].attempts >= 1 and sender.breaker.is_open(rig.destination), DEADLINE_S)
        failed_at = rig.rows()[0].updated_at
        assert sender.breaker.retry_at(rig.destination) >= failed_at + cooldown - 0.1
        destination.start()
        started = time.time()
        wait_until(lambda: all(row.state == "delivered" for row in rig.rows()), DEADLINE_S + 120)
        rows = rig.rows()
        assert not sender.breaker.is_open(rig.destination)  # closed by the first delivery
    finally:
        sender.stop()
    # The first message probed at the cool-down's pace (not every 50 ms); the others were never
    # sent to the refused port: each went once, after the breaker closed.
    assert rows[0].updated_at - failed_at >= cooldown - 0.1
    assert rows[0].attempts <= 2 + (rows[0].updated_at - failed_at) / cooldown
    assert [row.attempts for row in rows[1:]] == [1, 1]
    assert rows[0].updated_at >= started - 0.5
    assert destination.delivered_keys(rig) == rig.keys()


@pytest.mark.parametrize("kind", KINDS)
def test_a_later_process_resumes_what_an_earlier_one_left_pending(kind: str, orchestra_home: Path, real) -> None:
    destination = real(kind)  # down while the earlier process runs
    url = f"http://127.0.0.1:{destination.port}"
    rig = side(kind, orchestra_home, url, _run_id())
    earlier = _sender("leave", rig, url, orchestra_home, 4)
    out, _ = earlier.communicate(timeout=DEADLINE_S)
    assert earlier.returncode == 0 and out.strip() == "left 4"
    assert [row.state for row in rig.rows()] == ["pending"] * 4
    destination.start()
    assert rig.resume(DEADLINE_S) == 0
    rows = rig.rows()
    assert [row.state for row in rows] == ["delivered"] * 4
    delivered = destination.delivered_keys(rig)
    assert sorted(delivered) == sorted(rig.keys()), rows  # each once
    if kind == "mlflow":  # ordered: a later op never overtakes an earlier one
        assert delivered == rig.keys()


def _hangs_first_send(kind: str):
    """Never answer the first request that carries a message (the sender is killed meanwhile)."""
    hung: list[int] = []

    def faults(request, index):  # noqa: ANN001, ANN202
        carries = kind == "webhook" or request.path.endswith("/runs/log-batch")
        if carries and not hung:
            hung.append(index)
            return Reply(hang=True)
        return None

    return faults


@pytest.mark.parametrize("kind", KINDS)
def test_a_sender_killed_mid_send_is_taken_over_without_duplicates(kind: str, orchestra_home: Path) -> None:
    with_faults = Answering(kind, _hangs_first_send(kind))
    try:
        rig = side(kind, orchestra_home, with_faults.url, _run_id())
        doomed = _sender("hold", rig, with_faults.url, orchestra_home, 3)
        try:
            assert doomed.stdout is not None and doomed.stdout.readline().strip() == "sending"
            wait_until(lambda: any(rig.key_of(r) for r in with_faults.receiver.requests), DEADLINE_S)
        finally:
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(DEADLINE_S)
        assert [row.attempts for row in rig.rows()] == [1, 0, 0]  # the first one was in flight
        assert rig.resume(DEADLINE_S) == 0
        rows = rig.rows()
        assert [row.state for row in rows] == ["delivered"] * 3
        assert [row.attempts for row in rows] == [2, 1, 1]  # the killed attempt once more, no other
        assert with_faults.delivered_keys(rig.key_of) == rig.keys()
        if kind == "mlflow":  # the run was created once, by the killed sender, and reused
            assert len(with_faults.fake.runs) == 1
        else:  # the re-sent delivery kept its webhook-id, so a receiver can dedupe
            sent = [rig.key_of(r) for r in with_faults.receiver.requests]
            assert sent == [rig.keys()[0], *rig.keys()]
    finally:
        with_faults.close()


# -- files written before the shared outbox ------------------------------------------------

OLD_HOOKS = """
CREATE TABLE events (id TEXT PRIMARY KEY, run_id TEXT, name TEXT NOT NULL, status TEXT NOT NULL, stage TEXT,
    sequence INTEGER NOT NULL, occurred_at REAL NOT NULL, created_at REAL NOT NULL);
CREATE TABLE deliveries (id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE, hook_name TEXT NOT NULL, url TEXT NOT NULL,
    secret_envs TEXT NOT NULL DEFAULT '[]', allow_http INTEGER NOT NULL DEFAULT 0, body BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0, next_at REAL, claimed_pid INTEGER,
    last_status INTEGER, last_error TEXT, updated_at REAL NOT NULL);
CREATE TABLE attempts (delivery_id INTEGER NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL, at REAL NOT NULL, status_code INTEGER, error TEXT, latency_ms INTEGER, answer TEXT);
CREATE TABLE disabled_hooks (url TEXT PRIMARY KEY, name TEXT NOT NULL, disabled_at REAL NOT NULL,
    reason TEXT NOT NULL);
"""

OLD_MIRROR = """
CREATE TABLE targets (uri TEXT NOT NULL, run_id TEXT NOT NULL, stage TEXT NOT NULL, experiment TEXT NOT NULL,
    experiment_id TEXT, mlflow_run_id TEXT, artifact_uri TEXT, run_name TEXT, start_time REAL NOT NULL,
    tags TEXT NOT NULL DEFAULT '{}', create_attempts INTEGER NOT NULL DEFAULT 0, outputs_uri TEXT,
    PRIMARY KEY (uri, run_id, stage));
CREATE TABLE ops (id INTEGER PRIMARY KEY AUTOINCREMENT, uri TEXT NOT NULL, run_id TEXT NOT NULL, stage TEXT NOT NULL,
    kind TEXT NOT NULL, payload TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL, last_error TEXT, updated_at REAL NOT NULL);
"""


def _old_file(kind: str, home: Path, url: str, run_id: str) -> list[str]:
    """A file as the previous version wrote it: one finished message and one pending; returns their keys."""
    now = time.time()
    if kind == "webhook":
        db = sqlite3.connect(home / "hooks.sqlite")
        db.executescript(OLD_HOOKS)
        for n, state in enumerate(("delivered", "pending")):
            db.execute("INSERT INTO events VALUES (?, 'r', 'run_ended', 'success', NULL, ?, ?, ?)",
                       (f"evt_old{n}", n + 1, now, now))
            db.execute("INSERT INTO deliveries (event_id, hook_name, url, body, state, attempts, next_at, updated_at)"
                       " VALUES (?, 'old', ?, ?, ?, ?, ?, ?)",
                       (f"evt_old{n}", url + "/hook", b'{"old": true}', state, 1 - n, now, now))
        db.execute("INSERT INTO attempts VALUES (1, 1, ?, 200, NULL, 5, 'ok')", (now,))
        keys = ["evt_old0", "evt_old1"]
    else:
        db = sqlite3.connect(home / "mirror.sqlite")
        db.executescript(OLD_MIRROR)
        db.execute("INSERT INTO targets (uri, run_id, stage, experiment, start_time, tags) VALUES (?, ?, '', 'old', ?, ?)",
                   (url, run_id, now, f'{{"orchestra.run_id": "{run_id}"}}'))
        for n, state in enumerate(("done", "pending")):
            payload = f'{{"metrics": [["rig.op", {n}, {n}, {now}]], "params": {{}}, "tags": {{"rig.op.{n}": "sent"}}}}'
            db.execute("INSERT INTO ops (uri, run_id, stage, kind, payload, state, next_at, updated_at)"
                       " VALUES (?, ?, '', 'batch', ?, ?, ?, ?)", (url, run_id, payload, state, now, now))
        keys = ["rig.op.0", "rig.op.1"]
    db.commit()
    db.close()
    return keys


@pytest.mark.parametrize("kind", KINDS)
def test_a_file_of_the_previous_version_is_migrated_and_its_pending_rows_sent(kind: str, orchestra_home: Path,
                                                                             cli) -> None:
    receiving = Answering(kind)
    try:
        rig = side(kind, orchestra_home, receiving.url, _run_id())
        keys = _old_file(kind, orchestra_home, receiving.url, getattr(rig, "run_id", ""))
        if kind == "webhook":  # any command resumes deliveries; `hooks log` reads the migrated history
            listed = cli("hooks", "log")
            assert listed.code == 0 and "evt_old0" in listed.out and "evt_old1" in listed.out, listed.err
            assert cli("runs", "list").code == 0
        assert rig.keys() == keys
        assert rig.resume(DEADLINE_S) == 0
        assert [row.state for row in rig.rows()] == ["delivered", "delivered"]
        assert receiving.delivered_keys(rig.key_of) == keys[1:]  # the finished one is not sent again
        old_view = "deliveries" if kind == "webhook" else "ops"  # readers of the old table still work
        done = "delivered" if kind == "webhook" else "done"
        db = sqlite3.connect(orchestra_home / f"{'hooks' if kind == 'webhook' else 'mirror'}.sqlite")
        assert db.execute(f"SELECT COUNT(*) FROM {old_view} WHERE state = ?", (done,)).fetchone()[0] == 2
    finally:
        receiving.close()
