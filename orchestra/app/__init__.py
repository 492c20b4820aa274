"""The application layer: a run's composition root (``session``), the API the CLI calls (``api``).

A process that imports it (the CLI, a program calling ``orchestra.app.api``) creates some sixty
of orchestra's dataclasses: their generated code comes from the class-code cache
(``orchestra.core.classcode``), installed here before any of them is created; and it imports
some eighty of orchestra's modules, whose code comes from the module-code cache
(``orchestra.core.modulecode``; the CLI has installed it already, for its command); the regular
expressions it compiles come from the pattern-code cache (``orchestra.core.patterncode``). Stage
code, which imports ``orchestra.stage`` only, reads none of them.
"""

from orchestra.core import classcode, modulecode, patterncode

classcode.install()
patterncode.install("api")
modulecode.install("api")
