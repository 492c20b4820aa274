"""Emit a run's events to a hook from a separate process, then wait to be killed.

``python -m tests.hooks_emitter URL``: prints ``emitted`` once every event is in the outbox.
Used to check that deliveries survive a SIGKILL of the process that was sending them.
"""

from __future__ import annotations

import sys
import time

from orchestra.core.layout import orchestra_home
from orchestra.integrations.hooks import config as cfg
from orchestra.integrations.hooks.deliver import Policy
from orchestra.integrations.hooks.listener import HookListener
from tests.hooks_receiver import pipeline_events


def main(url: str) -> None:
    hooks = cfg.HooksConfig(tuple(cfg.parse({"*": [{"url": url, "name": "killed"}]}, where="emitter")))
    policy = Policy(connect_timeout_s=1.0, total_timeout_s=2.0, retry_delays_s=(0.2,) * 20, jitter=(1.0, 1.0))
    listener = HookListener(hooks, home=orchestra_home(), policy=policy)
    for event in pipeline_events():
        listener.handle(event)
    print("emitted", flush=True)
    time.sleep(120)  # the test kills this process long before


if __name__ == "__main__":
    main(sys.argv[1])
