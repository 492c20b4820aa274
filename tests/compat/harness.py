"""Run the same cases through the real ``mlflow run`` and through ``orchestra run``, record what
each command saw, and compare.

Every case is a small project whose command runs ``compat_probe.py``: it appends one JSON line
(its argv, working directory, ``$PWD`` and the ``MLFLOW_*`` variables it sees) to the file named
by ``COMPAT_OUT``. mlflow runs all cases in one interpreter of its virtualenv
(``mlflow_driver.py``: the ``mlflow`` executable's click command, without paying mlflow's import
per case) while orchestra runs them as ``python -m orchestra run`` subprocesses; both talk to one
real ``mlflow server`` on 127.0.0.1, so the params each logged are read back from it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("mlflow_driver.py")
PROBE = """\
import json, os, sys
record = {"argv": sys.argv[1:], "cwd": os.getcwd(), "pwd": os.environ.get("PWD"),
          "env": {k: os.environ.get(k) for k in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_TRACKING_URI")},
          "orchestra": {k: os.environ.get(k) for k in ("ORCHESTRA_RUN_ID", "ORCHESTRA_STAGE")}}
with open(os.environ["COMPAT_OUT"], "a") as out:
    out.write(json.dumps(record) + "\\n")
"""
MLFLOW_VARS = ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_TRACKING_URI")


@dataclass(frozen=True)
class Case:
    """One invocation, given to both tools.

    Attributes:
        name: also the case's directory.
        mlproject: the MLproject text (None: a project without one).
        args: what follows the URI on both command lines; ``{project}``, ``{outside}``,
            ``{experiment_id}`` and ``{run_id}`` are filled in.
        files: more files of the project (``compat_probe.py`` is always there).
        cwd: ``project`` or ``outside`` (a sibling directory) for both tools.
        uri: the project URI (default: the project's absolute path).
        orchestra_args: flags only orchestra gets (e.g. ``--no-type-check``).
        exit: (mlflow's exit code, orchestra's).
        message: a text orchestra's stderr must contain (its one-line error).
        differences: param names whose logged values differ on purpose (see the README table).
        env: variables both tools get (placeholders filled as in ``args``).
        git_versions: the project is a git repository whose branch ``old`` holds ``mlproject``
            and whose ``main`` says ``new``; orchestra gets an identical copy (``project-copy``),
            so what each tool does to the repository it was given can be checked.
    """

    name: str
    mlproject: str | None
    args: Sequence[str] = ()
    files: Mapping[str, str] = field(default_factory=dict)
    cwd: str = "project"
    uri: str = "{project}"
    orchestra_args: Sequence[str] = ()
    exit: tuple[int, int] = (0, 0)
    message: str = ""
    differences: frozenset[str] = frozenset()
    git_versions: bool = False
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    """What one tool did with one case."""

    exit_code: int
    stderr: str
    records: list[dict[str, Any]]


@dataclass
class World:
    """Where the cases live and what both tools share."""

    root: Path
    server_url: str
    venv: Path
    values: dict[str, str] = field(default_factory=dict)  # experiment_id, experiment_name, run_id

    def case_dir(self, case: Case) -> Path:
        return self.root / case.name

    def fill(self, text: str, case: Case) -> str:
        base = self.case_dir(case)
        for key, value in {"project": base / "project", "outside": base / "outside", **self.values}.items():
            text = text.replace(f"{{{key}}}", str(value))
        return text

    def build(self, case: Case) -> None:
        base = self.case_dir(case)
        project = base / "project"
        project.mkdir(parents=True)
        (base / "outside").mkdir()
        (project / "compat_probe.py").write_text(PROBE)
        if case.mlproject is not None:
            (project / "MLproject").write_text(case.mlproject)
        for rel, text in case.files.items():
            target = base / rel if rel.startswith("outside/") else project / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        if case.git_versions:
            self._git_versions(project, case.mlproject or "")

    @staticmethod
    def _git_versions(project: Path, mlproject: str) -> None:
        def git(*args: str) -> None:
            subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=project, check=True,
                           capture_output=True)

        git("init", "-q", "-b", "old")
        git("add", "-A")
        git("commit", "-qm", "old")
        git("checkout", "-q", "-b", "main")
        (project / "MLproject").write_text(mlproject.replace("old", "new"))
        git("commit", "-qam", "new")
        shutil.copytree(project, project.with_name("project-copy"), symlinks=True)

    def env(self, case: Case, tool: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"MLFLOW_TRACKING_URI": self.server_url, "SHELL": "/bin/bash", "PYTHONPATH": str(REPO_ROOT),
                    "ORCHESTRA_HOME": str(self.case_dir(case) / "orchestra-home"),
                    # the one-worker server also serves mlflow's batch on a loaded machine: a stage
                    # must not lose its MLFLOW_RUN_ID to the 3 s default of the synchronous calls
                    "ORCHESTRA_MLFLOW_TIMEOUT": "60",
                    "COMPAT_OUT": str(self.case_dir(case) / f"out.{tool}.jsonl"),
                    "PATH": f"{self.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"})
        for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "ORCHESTRA_HOOKS_URI",
                     "MLFLOW_HOOKS_URI", "MLFLOW_TMP_DIR"):
            env.pop(name, None)
        env.update({key: self.fill(value, case) for key, value in case.env.items()})
        return env

    def cwd(self, case: Case) -> Path:
        return self.case_dir(case) / case.cwd

    def argv(self, case: Case) -> list[str]:
        return [self.fill(case.uri, case), *(self.fill(a, case) for a in case.args)]

    def records(self, case: Case, tool: str) -> list[dict[str, Any]]:
        path = self.case_dir(case) / f"out.{tool}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    # -- running -------------------------------------------------------------------------
    def start_mlflow(self, cases: Sequence[Case]) -> subprocess.Popen[bytes]:
        batch = [{"name": c.name, "args": ["--env-manager", "local", *self.argv(c)], "cwd": str(self.cwd(c)),
                  "env": {k: v for k, v in self.env(c, "mlflow").items() if os.environ.get(k) != v}} for c in cases]
        (self.root / "cases.json").write_text(json.dumps(batch))
        env = self.env(cases[0], "mlflow")
        env.pop("COMPAT_OUT")
        with open(self.root / "mlflow-driver.log", "wb") as log:
            return subprocess.Popen([str(self.venv / "bin" / "python"), str(DRIVER), str(self.root / "cases.json"),
                                     str(self.root / "results.json")], env=env, cwd=self.root, stdout=log,
                                    stderr=subprocess.STDOUT)

    def mlflow_outcomes(self, proc: subprocess.Popen[bytes], cases: Sequence[Case]) -> dict[str, Outcome]:
        code = proc.wait(600)
        if code != 0:
            raise RuntimeError(f"mlflow driver exited {code}: {(self.root / 'mlflow-driver.log').read_text()[-3000:]}")
        results = {r["name"]: r for r in json.loads((self.root / "results.json").read_text())}
        return {c.name: Outcome(results[c.name]["exit_code"], results[c.name]["stderr"], self.records(c, "mlflow"))
                for c in cases}

    def run_orchestra(self, case: Case) -> Outcome:
        argv = self.argv(case)
        if case.git_versions:
            argv[0] = str(self.case_dir(case) / "project-copy")
        cmd = [sys.executable, "-m", "orchestra", "run", *argv, "--env-manager", "local",
               "--no-cache", "--hooks-drain", "30", *case.orchestra_args]
        proc = subprocess.run(cmd, cwd=self.cwd(case), env=self.env(case, "orchestra"), capture_output=True,
                              text=True, timeout=300)
        return Outcome(proc.returncode, proc.stderr, self.records(case, "orchestra"))

    def run_all(self, cases: Sequence[Case]) -> dict[str, tuple[Outcome, Outcome]]:
        """Both tools over every case: mlflow's batch runs while orchestra's cases do."""
        for case in cases:
            self.build(case)
        driver = self.start_mlflow(cases)
        try:
            with ThreadPoolExecutor(max_workers=2) as pool:
                mine = dict(zip((c.name for c in cases), pool.map(self.run_orchestra, cases)))
            theirs = self.mlflow_outcomes(driver, cases)
        finally:
            if driver.poll() is None:
                driver.kill()
        return {c.name: (theirs[c.name], mine[c.name]) for c in cases}

    # -- the server ----------------------------------------------------------------------
    def api(self, endpoint: str, body: dict[str, Any] | None = None, **params: Any) -> dict[str, Any]:
        url = f"{self.server_url}/api/2.0/mlflow/{endpoint}"
        response = (requests.get(url, params=params, timeout=10) if body is None
                    else requests.post(url, json=body, timeout=10))
        response.raise_for_status()
        return response.json()

    def run_info(self, run_id: str) -> dict[str, Any]:
        return self.api("runs/get", run_id=run_id)["run"]

    def params(self, run_id: str) -> dict[str, str]:
        return {p["key"]: p["value"] for p in self.run_info(run_id).get("data", {}).get("params", [])}

    def server_run(self, record: dict[str, Any]) -> dict[str, Any]:
        """The tracking server's run of a probe record. mlflow's command runs in the server's run
        (its MLFLOW_RUN_ID); an orchestra stage logs to the run's own endpoint (its MLFLOW_RUN_ID
        is local) and the mirror creates its child run on the server, found by its tags."""
        mine = record.get("orchestra") or {}
        if not mine.get("ORCHESTRA_RUN_ID"):
            return self.run_info(record["env"]["MLFLOW_RUN_ID"])
        experiments = [e["experiment_id"] for e in self.api("experiments/search", {"max_results": 1000})["experiments"]]
        found = self.api("runs/search", {
            "experiment_ids": experiments, "max_results": 10,
            "filter": f"tags.`orchestra.run_id` = '{mine['ORCHESTRA_RUN_ID']}' and "
                      f"tags.`orchestra.stage` = '{mine['ORCHESTRA_STAGE']}'"}).get("runs", [])
        assert len(found) == 1, (mine, found)
        return found[0]

    def server_params(self, record: dict[str, Any]) -> dict[str, str]:
        return {p["key"]: p["value"] for p in self.server_run(record).get("data", {}).get("params", [])}

    def tags(self, run_id: str) -> dict[str, str]:
        return {t["key"]: t["value"] for t in self.run_info(run_id).get("data", {}).get("tags", [])}


def seen(record: dict[str, Any]) -> dict[str, Any]:
    """What must be identical under both tools: argv, cwd, $PWD and which MLflow variables are set
    (their values name runs and servers each tool creates or chooses; the named tests check the
    ones that flags set)."""
    env = record["env"]
    return {"argv": record["argv"], "cwd": record["cwd"], "pwd": record["pwd"],
            "set": sorted(k for k in MLFLOW_VARS if env.get(k))}


def quoted(params: Mapping[str, str]) -> dict[str, str]:
    """orchestra logs a param as its given text, mlflow as the shell-quoted string it substituted."""
    return {key: shlex.quote(value) for key, value in params.items()}
