"""A sender in a process of its own, for the outbox tests that need a real process to end or die.

``python -m tests.outbox_sender MODE KIND URL RUN_ID COUNT`` enqueues COUNT messages of the
``KIND`` rig (``webhook`` or ``mlflow``, see tests/outbox_rigs.py) to URL in ORCHESTRA_HOME, then:

- ``leave``: lets its dispatcher try for one second and exits (what it could not send stays);
- ``hold``: starts its dispatcher, prints ``sending`` and waits to be killed.
"""

from __future__ import annotations

import sys
import time

from orchestra.core.layout import orchestra_home
from tests.outbox_rigs import side


def main(mode: str, kind: str, url: str, run_id: str, count: int) -> None:
    rig = side(kind, orchestra_home(), url, run_id)
    rig.enqueue(count)
    sender = rig.dispatcher()
    if mode == "leave":
        left = sender.drain(1.0)
        sender.stop()
        print(f"left {left}", flush=True)
        return
    sender.start()
    sender.wake()
    print("sending", flush=True)
    time.sleep(300)  # the test kills this process long before


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
