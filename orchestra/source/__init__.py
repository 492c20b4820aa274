"""Where a project comes from: local directories, git repositories, and the code digest.

``fetch(uri, version)`` (fetch.py) dispatches to local.py (a directory or work tree, run in
place) or git.py (mirror cache + per-run checkout); project.py holds the ProjectDir value and
the URI helpers; digest.py the one code digest both use.
"""

from orchestra.source.fetch import fetch
from orchestra.source.project import ProjectDir, strip_credentials

__all__ = ["ProjectDir", "fetch", "strip_credentials"]
