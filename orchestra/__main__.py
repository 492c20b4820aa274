"""The program: ``python -m orchestra`` and the ``orchestra`` console script (``run_main``).

The collector is paused before anything else is imported (``orchestra.core.collector``): the
command's start makes ~150,000 lasting objects and very few cycles. Code that imports
``orchestra.cli`` itself (tests, programs) keeps its collector as it is.
"""

from orchestra.core import collector

collector.pause()

from orchestra.cli import run_main  # noqa: E402

__all__ = ["run_main"]

if __name__ == "__main__":
    run_main()
