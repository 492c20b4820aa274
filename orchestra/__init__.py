"""orchestra: run the entry points of an MLproject as the stages of a cached, parallel DAG.

Importing this package loads no heavy library (pandas, networkx, requests, rattler): the CLI
starts fast and stage code can ``import orchestra.stage`` cheaply.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
