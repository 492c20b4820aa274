"""The application layer: a run's composition root (``session``), the API the CLI calls (``api``).

A process that imports it (the CLI, a program calling ``orchestra.app.api``) creates some sixty
of orchestra's dataclasses: their generated code comes from the class-code cache
(``orchestra.core.classcode``), installed here before any of them is created. Stage code, which
imports ``orchestra.stage`` only, never reads the cache.
"""

from orchestra.core import classcode

classcode.install()
