"""orchestra: run the entry points of an MLproject as the stages of a cached, parallel DAG.

Importing this package loads no heavy library (pandas, networkx, requests, rattler): the CLI
starts fast and stage code can ``import orchestra.stage`` cheaply.
"""

from orchestra.core import classcode as _classcode

__version__ = "0.1.0"

_classcode.install()  # the code of orchestra's dataclasses is compiled once, like their modules' bytecode

__all__ = ["__version__"]
