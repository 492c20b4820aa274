"""One outbox, two deliverers: the test rigs of tests/integration/test_outbox.py.

A *side* is the sending half of a deliverer, in one ORCHESTRA_HOME: it enqueues messages of one
lane, builds the dispatcher that sends them and reads their rows back.

- :class:`WebhookSide`: webhook deliveries (one event per message) to one receiver URL;
- :class:`MirrorSide`: MLflow mirror ops of one synthetic run (one ``batch`` op per message,
  each logging metric ``rig.op`` at its own step and tag ``rig.op.<n>``).

A *destination* is the receiving half, a real server on 127.0.0.1: :class:`Answering` wraps
tests/hooks_receiver.py's Receiver and keeps what it answered; for the mirror it speaks the few
MLflow REST endpoints the deliverer calls (:class:`FakeMlflow`), for faults a real ``mlflow
server`` cannot produce on demand (500s, Retry-After, a request never answered). The real server
(tests/mlflow_server.py) is used where no fault is injected.

``python -m tests.outbox_sender`` runs a side in a process of its own.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from orchestra.integrations.outbox.dispatch import Dispatcher
from tests.hooks_receiver import Received, Receiver, Reply

Faults = Callable[[Received, int], "Reply | None"]  # None: answer normally


@dataclass(frozen=True)
class Row:
    id: int
    state: str
    attempts: int
    updated_at: float


class WebhookSide:
    kind = "webhook"

    def __init__(self, home: Path, url: str) -> None:
        self.home = home
        self.url = url + "/hook"
        self.destination = self.url
        self.lane = self.url

    def enqueue(self, count: int) -> None:
        from orchestra.integrations.hooks import outbox
        from orchestra.integrations.hooks.deliver import Target

        conn = outbox.open_db(self.home)
        for n in range(count):
            event_id = f"evt_{uuid.uuid4().hex}"
            body = json.dumps({"id": event_id, "n": n}).encode()
            outbox.record_event(conn, event_id=event_id, run_id="r" * 32, name="run_started", status="running",
                                stage=None, sequence=n + 1, occurred_at=time.time(),
                                deliveries=[outbox.NewDelivery(Target(self.url, "rig"), body)])

    def dispatcher(self, *, delays: tuple[float, ...] = (0.05,) * 50, cooldown_s: float = 5.0) -> Dispatcher:
        from orchestra.integrations.hooks.deliver import Policy
        from orchestra.integrations.hooks.sender import Sender

        return Sender(self.home, Policy(connect_timeout_s=10.0, total_timeout_s=30.0, retry_delays_s=delays,
                                        jitter=(1.0, 1.0), cooldown_s=cooldown_s))

    def resume(self, timeout_s: float) -> int:
        """What any later orchestra command does with deliveries left behind."""
        from orchestra.integrations.hooks import resume_pending
        from orchestra.integrations.hooks.deliver import Policy

        return resume_pending(timeout_s, policy=Policy(retry_delays_s=(0.05,) * 50, jitter=(1.0, 1.0)), home=self.home)

    def keys(self) -> list[str]:
        """The message keys in enqueue order (what the destination sees of them)."""
        return [row[0] for row in self._db().execute("SELECT ref FROM messages WHERE lane = ? ORDER BY id", (self.lane,))]

    def rows(self) -> list[Row]:
        return [Row(*r) for r in self._db().execute(
            "SELECT id, state, attempts, updated_at FROM messages WHERE lane = ? ORDER BY id", (self.lane,))]

    def _db(self) -> sqlite3.Connection:
        from orchestra.integrations.hooks import outbox

        return outbox.open_db(self.home)

    @staticmethod
    def key_of(request: Received) -> str | None:
        return request.headers.get("webhook-id")


class MirrorSide:
    kind = "mlflow"

    def __init__(self, home: Path, url: str, run_id: str, experiment: str = "outbox-rig") -> None:
        from orchestra.core.tracking_uri import parse
        from orchestra.integrations.tracking import queue

        self.home = home
        self.uri = parse(url)
        self.run_id = run_id
        self.experiment = experiment
        self.destination = self.uri.display
        self.lane = queue.lane(self.uri.display, run_id)

    def enqueue(self, count: int) -> None:
        from orchestra.integrations.tracking import ops, queue

        conn = queue.open_db(self.home)
        with queue.transaction(conn):
            queue.add_target(conn, self.uri.display, self.run_id, queue.PARENT, experiment=self.experiment,
                             start_time=time.time(), tags=ops.parent_tags({}, self.run_id), run_name="rig")
        queue.enqueue(conn, self.uri.display, self.run_id, queue.PARENT, [
            ("batch", {"metrics": [["rig.op", float(n), n, time.time()]], "tags": {f"rig.op.{n}": "sent"}, "params": {}})
            for n in range(count)])

    def dispatcher(self, *, delays: tuple[float, ...] = (0.05,), cooldown_s: float = 5.0) -> Dispatcher:
        from orchestra.integrations.outbox.breaker import Breaker
        from orchestra.integrations.outbox.retry_policy import RetryPolicy
        from orchestra.integrations.tracking.deliverer import Policy, dispatcher

        policy = Policy(retry=RetryPolicy(delays), cooldown_s=cooldown_s, lease_s=60.0)
        return dispatcher(self.uri, self.home, self.run_id, breaker=Breaker(cooldown_s), policy=policy)

    def resume(self, timeout_s: float) -> int:
        sender = self.dispatcher()
        try:
            return sender.drain(timeout_s)
        finally:
            sender.stop()

    def keys(self) -> list[str]:
        rows = self._db().execute("SELECT payload FROM messages WHERE lane = ? ORDER BY id", (self.lane,))
        return [next(iter(json.loads(row[0])["tags"])) for row in rows]

    def rows(self) -> list[Row]:
        return [Row(*r) for r in self._db().execute(
            "SELECT id, state, attempts, updated_at FROM messages WHERE lane = ? ORDER BY id", (self.lane,))]

    def _db(self) -> sqlite3.Connection:
        from orchestra.integrations.tracking import queue

        return queue.open_db(self.home)

    @staticmethod
    def key_of(request: Received) -> str | None:
        if not request.path.endswith("/runs/log-batch"):
            return None
        return next((t["key"] for t in request.json.get("tags", []) if t["key"].startswith("rig.op.")), None)


def side(kind: str, home: Path, url: str, run_id: str) -> WebhookSide | MirrorSide:
    return WebhookSide(home, url) if kind == "webhook" else MirrorSide(home, url, run_id)


class FakeMlflow:
    """The MLflow REST endpoints the mirror's deliverer calls, answered from memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.experiments: dict[str, str] = {}
        self.runs: dict[str, dict] = {}

    def __call__(self, request: Received, index: int) -> Reply:
        endpoint = urlsplit(request.path).path.removeprefix("/api/2.0/mlflow/")
        body = request.json if request.body else {}
        with self._lock:
            if endpoint == "experiments/get-by-name":
                name = parse_qs(urlsplit(request.path).query)["experiment_name"][0]
                if name not in self.experiments:
                    return _json(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such experiment"})
                return _json(200, {"experiment": {"experiment_id": self.experiments[name], "name": name,
                                                  "lifecycle_stage": "active"}})
            if endpoint == "experiments/create":
                self.experiments.setdefault(body["name"], str(len(self.experiments) + 1))
                return _json(200, {"experiment_id": self.experiments[body["name"]]})
            if endpoint == "runs/create":
                run_id = uuid.uuid4().hex
                info = {"run_id": run_id, "experiment_id": body["experiment_id"], "status": "RUNNING",
                        "artifact_uri": f"mlflow-artifacts:/{body['experiment_id']}/{run_id}/artifacts"}
                self.runs[run_id] = {"info": info, "data": {"tags": body.get("tags", [])}}
                return _json(200, {"run": self.runs[run_id]})
            if endpoint == "runs/search":
                wanted = re.search(r"`orchestra.run_id` = '([0-9a-f]+)'", body.get("filter", ""))
                found = [r for r in self.runs.values() if wanted and {"key": "orchestra.run_id",
                                                                      "value": wanted.group(1)} in r["data"]["tags"]]
                return _json(200, {"runs": found})
            if endpoint in ("runs/log-batch", "runs/update", "runs/set-tag"):
                return _json(200, {})
        return _json(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": endpoint})


def _json(status: int, doc: dict) -> Reply:
    return Reply(status, {"Content-Type": "application/json"}, json.dumps(doc).encode())


class Answering:
    """A real HTTP server on 127.0.0.1 (webhook receiver or fake MLflow) that keeps its answers."""

    def __init__(self, kind: str, faults: Faults | None = None, port: int = 0) -> None:
        self.kind = kind
        self.faults = faults
        self.fake = FakeMlflow() if kind == "mlflow" else None
        self.answered: list[tuple[Received, int]] = []
        self._lock = threading.Lock()
        self.receiver = Receiver(self._respond, port=port)

    @property
    def url(self) -> str:
        return self.receiver.base

    def _respond(self, request: Received, index: int) -> Reply:
        reply = (self.faults(request, index) if self.faults else None) or (
            self.fake(request, index) if self.fake else Reply())
        if not reply.hang:
            with self._lock:
                self.answered.append((request, reply.status))
        return reply

    def delivered_keys(self, key_of: Callable[[Received], str | None]) -> list[str]:
        """Keys of the messages this destination accepted (2xx), in arrival order."""
        with self._lock:
            return [k for request, status in self.answered if 200 <= status < 300 and (k := key_of(request))]

    def close(self) -> None:
        self.receiver.close()


def mlflow_delivered_keys(server, experiment: str, run_id: str) -> list[str]:  # noqa: ANN001 - MlflowServer
    """What a real mlflow server holds of a MirrorSide's run: one ``rig.op`` metric entry per op sent."""
    parent, _ = server.runs_of(run_id, experiment)
    return [f"rig.op.{m['step']}" for m in sorted(server.metric_history(parent, "rig.op"), key=lambda m: m["step"])]
