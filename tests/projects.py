"""The small MLprojects that several tests run, named once.

A :class:`Template` is the text of an MLproject plus the files beside it. The ``project`` fixture
(tests/conftest.py) writes one into the test's tmp_path and returns the directory:
``project(projects.CHAIN)``, ``project(projects.killable(marker))``,
``project(projects.conda_main("hello"), {"conda.yaml": ...})``. Templates that need a path (a
marker file the test waits for) are functions returning a Template.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping


@dataclass(frozen=True)
class Template:
    mlproject: str
    files: Mapping[str, str] = field(default_factory=dict)

    def plus(self, text: str) -> Template:
        """The same project with ``text`` appended to its MLproject (a ``schedules:`` section, ...)."""
        return Template(self.mlproject + text, self.files)


# prep → train → report, passing files along with echo and cat; report reads both upstreams.
CHAIN = Template("""
entry_points:
  prep:
    command: "echo data > {outputs}/d.txt"
    outputs: [d.txt]
  train:
    depends_on: [prep]
    command: "cat {inputs.prep}/d.txt > {outputs}/m.txt && echo model >> {outputs}/m.txt"
  report:
    depends_on: [train, prep]
    command: "cat {inputs.train}/m.txt {inputs.prep}/d.txt > {outputs}/r.txt"
""")

# Two quick stages, one after the other.
TWO_STAGES = Template("""
entry_points:
  first: {command: "python -c 'print(1)'"}
  slow: {command: "python -c 'print(2)'", depends_on: [first]}
""")

# bad fails (exit 3, "boom line" on stderr) below ok; below depends on bad; slow_side (1 s) and
# after_side form an independent branch, to see what the failure policy lets finish.
FAILING = Template("""
entry_points:
  ok: {command: "echo ok"}
  bad: {command: "python -c 'import sys; print(\\"boom line\\", file=sys.stderr); sys.exit(3)'", depends_on: [ok]}
  below: {command: "echo below", depends_on: [bad]}
  slow_side: {command: "python -c 'import time; time.sleep(1)'", depends_on: [ok]}
  after_side: {command: "echo after", depends_on: [slow_side]}
""")


def killable(marker: Path) -> Template:
    """slow and other sleep until killed; after (below slow) never starts. slow writes its
    sleeper's pid to ``<marker>.child`` and then ``go`` to ``marker``; other writes its
    sleeper's pid to ``<marker>.other``."""
    return Template(f"""
entry_points:
  slow:
    command: "bash -c 'sleep 300 & echo $! > {marker}.child; echo go > {marker}; wait'"
  other:
    command: "bash -c 'sleep 300 & echo $! > {marker}.other; wait'"
  after:
    depends_on: [slow]
    command: "echo never > {{outputs}}/x"
""")


# One stage that prints its alpha and the scheduler's variables, and fails for a negative alpha.
SCHEDULED = Template("""
name: sched
entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
    command: "python report.py {alpha}"
""", {"report.py": """
import os, sys
print("alpha", sys.argv[1], "schedule", os.environ["ORCHESTRA_SCHEDULE"], "for", os.environ["ORCHESTRA_SCHEDULED_FOR"])
if float(sys.argv[1]) < 0:
    sys.exit("alpha must not be negative")
"""})


def conda_main(command: str) -> Template:
    """One ``main`` stage in the project's ``conda_env: conda.yaml``; ``command`` as written in
    YAML (quote it yourself when it needs quotes). The caller supplies conda.yaml."""
    return Template(f"name: c\nconda_env: conda.yaml\nentry_points:\n  main:\n    command: {command}\n")


def python_env_main(command: str) -> Template:
    """One ``main`` stage in the project's ``python_env: python_env.yaml``; ``command`` as written
    in YAML. The caller supplies python_env.yaml."""
    return Template(f"name: p\npython_env: python_env.yaml\nentry_points:\n  main:\n    command: {command}\n")
