"""DVC and Snakemake on bench_chain's workloads, beside orchestra and the bash floor of the same run.

Each tool runs its natural equivalent of ``bench_chain.py``'s chain (every stage copies its
predecessor's one small file and appends a line, ``sN p=1``) and fan-out:

    Snakemake  a Snakefile of rules with input/output files and ``params: p``, run with
               ``snakemake --cores 2 --quiet`` (a changed param reruns the rule: Snakemake's
               default rerun triggers include params); the fan-out with ``--forceall``.
    DVC        a ``dvc.yaml`` of stages with deps/outs and ``params: [sN.p]`` (read from
               ``params.yaml``), in a ``dvc init --no-scm`` repository, run with ``dvc repro -q``
               (the fan-out with ``-f``). ``dvc repro`` runs one stage at a time: it has no
               parallel jobs, so its fan-out is sequential.

Rows: ``--help``; 20-stage chain cold; 200-stage chain cold, everything up to date (reused),
last stage's parameter changed; 1 -> 16 x ``sleep 0.5`` -> 1 with 2 parallel jobs. Every cold run
starts in a fresh directory (and a fresh ORCHESTRA_HOME).

The tools are installed from PyPI into their own venvs under ``benchmarks/.peers/`` (ignored by
git), on first use or with ``--install``, and reused across runs.

Usage: python benchmarks/bench_peers.py [--repeat N] [--install] [--tools snakemake,dvc]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import ORCHESTRA, bench_env, fresh_home  # noqa: E402
from bench_chain import RUN, chain_floor, chain_project, fanout_project  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".peers"
TOOLS = {"snakemake": ("snakemake", "snakemake"), "dvc": ("dvc", "dvc")}  # name: (pip package, binary)
SLOW_RUN_S = 20.0  # a cold chain slower than this is measured once, not `repeat` times


# -- project generators (pure: they only write files) -------------------------------------------

def snakefile_chain(root: Path, n: int) -> Path:
    """``n`` rules ``sI``, each copying ``s{I-1}/me.txt`` to ``sI/me.txt`` and appending a line;
    the param ``p`` comes from ``--config pI=...`` (default "1")."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["rule all:", f"    input: 's{n - 1}/me.txt'", ""]
    for i in range(n):
        lines += [f"rule s{i}:"]
        if i:
            lines += [f"    input: 's{i - 1}/me.txt'"]
        command = (f"echo 's{i} p={{params.p}}' > {{output}}" if i == 0 else
                   f"cat {{input}} > {{output}} && echo 's{i} p={{params.p}}' >> {{output}}")
        lines += [f"    output: 's{i}/me.txt'", f"    params: p=config.get('p{i}', '1')",
                  f"    shell: \"{command}\"", ""]
    (root / "Snakefile").write_text("\n".join(lines))
    return root


def snakefile_fanout(root: Path, width: int, seconds: float) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    workers = ", ".join(f"'w{i}.txt'" for i in range(width))
    lines = ["rule end:", f"    input: {workers}", "    output: 'end.txt'", "    shell: 'touch {output}'", "",
             "rule start:", "    output: 'start.txt'", "    shell: 'touch {output}'", "",
             "rule worker:", "    input: 'start.txt'", "    output: 'w{i}.txt'",
             f"    shell: 'sleep {seconds} && touch {{output}}'", ""]
    (root / "Snakefile").write_text("\n".join(lines))
    return root


def dvc_chain(root: Path, n: int) -> Path:
    """``dvc.yaml`` with ``n`` stages ``sI`` (deps ``s{I-1}.txt``, outs ``sI.txt``, params ``sI.p``)
    and their ``params.yaml``."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["stages:"]
    for i in range(n):
        command = (f"echo 's{i} p=${{s{i}.p}}' > s{i}.txt" if i == 0 else
                   f"cat s{i - 1}.txt > s{i}.txt && echo 's{i} p=${{s{i}.p}}' >> s{i}.txt")
        lines += [f"  s{i}:", f"    cmd: \"{command}\""]
        if i:
            lines += [f"    deps: [s{i - 1}.txt]"]
        lines += [f"    params: [s{i}.p]", f"    outs: [s{i}.txt]"]
    (root / "dvc.yaml").write_text("\n".join(lines) + "\n")
    dvc_params(root, n, {})
    return root


def dvc_params(root: Path, n: int, changed: dict[int, str]) -> None:
    (root / "params.yaml").write_text("".join(f"s{i}:\n  p: \"{changed.get(i, '1')}\"\n" for i in range(n)))


def dvc_fanout(root: Path, width: int, seconds: float) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    lines = ["stages:", "  start:", "    cmd: touch start.txt", "    outs: [start.txt]"]
    for i in range(width):
        lines += [f"  w{i}:", f"    cmd: sleep {seconds} && touch w{i}.txt", "    deps: [start.txt]",
                  f"    outs: [w{i}.txt]"]
    lines += ["  end:", "    cmd: touch end.txt", f"    deps: [{', '.join(f'w{i}.txt' for i in range(width))}]",
              "    outs: [end.txt]"]
    (root / "dvc.yaml").write_text("\n".join(lines) + "\n")
    return root


# -- installing and running the tools ------------------------------------------------------------

def tool_bin(name: str) -> Path:
    return CACHE / name / "bin" / TOOLS[name][1]


def ensure_tool(name: str, install: bool) -> Path | None:
    """The tool's binary, installing it into its own venv when missing; None (and a message) if
    it cannot be installed."""
    binary = tool_bin(name)
    if binary.exists() and not install:
        return binary
    venv = CACHE / name
    print(f"installing {TOOLS[name][0]} from PyPI into {venv} (once; reused by later runs)…", flush=True)
    try:
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, text=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", TOOLS[name][0]], check=True,
                       capture_output=True, text=True)
        subprocess.run([str(binary), "--version"], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        tail = (getattr(exc, "stderr", "") or str(exc)).strip().splitlines()[-1:]
        print(f"bench_peers: could not install {name} into {venv}: {' '.join(tail) or exc}; "
              f"its rows are skipped (retry with --install, or `{venv}/bin/pip install {TOOLS[name][0]}`)")
        return None
    return binary


def run_timed(argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=bench_env(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    elapsed = time.perf_counter() - start
    if done.returncode:
        tail = done.stdout.decode(errors="replace")[-2000:]
        raise SystemExit(f"bench_peers: {' '.join(argv)} failed in {cwd} (exit {done.returncode}):\n{tail}")
    return elapsed


QUIET_ENV = {"DVC_NO_ANALYTICS": "1", "DVC_NO_UPDATE_CHECK": "1"}


def ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def row(label: str, tool: str, floor: list[float] | None, samples: list[float], note: str = "") -> None:
    floor_text = f"{ms(floor):9.1f} ms" if floor else "        —   "
    ratio = f"{ms(samples) / ms(floor):6.2f}x" if floor else "       "
    print(f"{label:40} floor {floor_text}   {tool:9} {ms(samples):9.1f} ms {ratio}  "
          f"(min {min(samples) * 1000:.1f}, max {max(samples) * 1000:.1f}, n={len(samples)}){note}", flush=True)


# -- the workloads ----------------------------------------------------------------------------

def chain_orchestra(n: int, repeat: int) -> dict[str, list[float]]:
    project = chain_project(Path(tempfile.mkdtemp()) / f"orch{n}", n)
    out: dict[str, list[float]] = {"cold": [], "warm": [], "changed": []}
    target = ["-e", f"s{n - 1}"]
    for _ in range(repeat):
        env = {"ORCHESTRA_HOME": fresh_home()}
        out["cold"].append(run_timed([*RUN, str(project), *target], env=env))
        if n == 200:
            out["warm"].append(run_timed([*RUN, str(project), *target], env=env))
            out["changed"].append(run_timed([*RUN, str(project), *target, "-P", f"s{n - 1}.p=2"], env=env))
    return out


def chain_snakemake(binary: Path, n: int, repeat: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"cold": [], "warm": [], "changed": []}
    base = [str(binary), "--cores", "2", "--quiet"]
    for _ in range(repeat):
        root = snakefile_chain(Path(tempfile.mkdtemp()) / f"smk{n}", n)
        out["cold"].append(run_timed(base, cwd=root))
        if n == 200:
            out["warm"].append(run_timed(base, cwd=root))
            out["changed"].append(run_timed([*base, "--config", f"p{n - 1}=2"], cwd=root))
            assert (root / f"s{n - 1}/me.txt").read_text().endswith(f"s{n - 1} p=2\n"), "param change not rerun"
        if len(out["cold"]) == 1 and out["cold"][0] > SLOW_RUN_S:
            break
    return out


def chain_dvc(binary: Path, n: int, repeat: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"cold": [], "warm": [], "changed": []}
    for _ in range(repeat):
        root = dvc_chain(Path(tempfile.mkdtemp()) / f"dvc{n}", n)
        subprocess.run([str(binary), "init", "--no-scm", "-q"], cwd=root, check=True, env=bench_env(QUIET_ENV))
        repro = [str(binary), "repro", "-q"]
        out["cold"].append(run_timed(repro, cwd=root, env=QUIET_ENV))
        if n == 200:
            out["warm"].append(run_timed(repro, cwd=root, env=QUIET_ENV))
            dvc_params(root, n, {n - 1: "2"})
            out["changed"].append(run_timed(repro, cwd=root, env=QUIET_ENV))
            assert (root / f"s{n - 1}.txt").read_text().endswith(f"s{n - 1} p=2\n"), "param change not rerun"
        if len(out["cold"]) == 1 and out["cold"][0] > SLOW_RUN_S:
            # A cold repro this slow is measured once; the up-to-date and changed-param runs are
            # repeated in the same repository, with a new value each time (no run-cache hit).
            for value in range(3, repeat + 2 if n == 200 else 0):
                out["warm"].append(run_timed(repro, cwd=root, env=QUIET_ENV))
                dvc_params(root, n, {n - 1: str(value)})
                out["changed"].append(run_timed(repro, cwd=root, env=QUIET_ENV))
            break
    return out


def bench_chains(n: int, repeat: int, binaries: dict[str, Path]) -> None:
    root = Path(tempfile.mkdtemp())
    floor_script = chain_floor(root, n)
    floor = [run_timed(["bash", str(floor_script)]) for _ in range(repeat)]
    results = {"orchestra": chain_orchestra(n, repeat)}
    if "snakemake" in binaries:
        results["snakemake"] = chain_snakemake(binaries["snakemake"], n, repeat)
    if "dvc" in binaries:
        results["dvc"] = chain_dvc(binaries["dvc"], n, repeat)
    labels = {"cold": f"{n}-stage chain, cold", "warm": f"{n}-stage chain, all up to date/reused",
              "changed": f"{n}-stage chain, last param changed"}
    for key, label in labels.items():
        for tool, samples in results.items():
            if samples[key]:
                row(label, tool, floor, samples[key])


def bench_fanout(repeat: int, binaries: dict[str, Path]) -> None:
    project = fanout_project(Path(tempfile.mkdtemp()) / "fanout", 16, 0.5)
    floor = [run_timed(["bash", str(project / "floor.sh")]) for _ in range(repeat)]
    label = "1 -> 16 x sleep 0.5 -> 1, 2 jobs"
    env = {"ORCHESTRA_HOME": fresh_home()}
    run_timed([*RUN, str(project)], env=env)  # as bench_chain: validated once, then --no-cache
    row(label, "orchestra", floor, [run_timed([*RUN, str(project), "--no-cache"], env=env) for _ in range(repeat)])
    if "snakemake" in binaries:
        root = snakefile_fanout(Path(tempfile.mkdtemp()) / "smkfan", 16, 0.5)
        base = [str(binaries["snakemake"]), "--cores", "2", "--quiet"]
        run_timed(base, cwd=root)
        row(label, "snakemake", floor, [run_timed([*base, "--forceall"], cwd=root) for _ in range(repeat)])
    if "dvc" in binaries:
        root = dvc_fanout(Path(tempfile.mkdtemp()) / "dvcfan", 16, 0.5)
        subprocess.run([str(binaries["dvc"]), "init", "--no-scm", "-q"], cwd=root, check=True,
                       env=bench_env(QUIET_ENV))
        repro = [str(binaries["dvc"]), "repro", "-q"]
        run_timed(repro, cwd=root, env=QUIET_ENV)
        row(label, "dvc", floor, [run_timed([*repro, "-f"], cwd=root, env=QUIET_ENV) for _ in range(repeat)],
            "  (dvc repro has no parallel jobs: one stage at a time)")


def bench_help(repeat: int, binaries: dict[str, Path]) -> None:
    commands = {"orchestra": [*ORCHESTRA, "--help"]}
    commands.update({tool: [str(binary), "--help"] for tool, binary in binaries.items()})
    for tool, argv in commands.items():
        row("--help", tool, None, [run_timed(argv, env=QUIET_ENV) for _ in range(repeat * 2)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--install", action="store_true", help="(re)install the tools into their venvs first")
    parser.add_argument("--tools", default="snakemake,dvc", help="comma-separated subset of snakemake,dvc")
    parser.add_argument("--rows", default="help,c20,c200,fanout", help="comma-separated subset of help,c20,c200,fanout")
    args = parser.parse_args()
    wanted = [t for t in args.tools.split(",") if t]
    if set(wanted) - set(TOOLS):
        parser.error(f"unknown tools {sorted(set(wanted) - set(TOOLS))}: choose among {', '.join(TOOLS)}")
    binaries = {t: b for t in wanted if (b := ensure_tool(t, args.install)) is not None}
    versions = {t: subprocess.run([str(b), "--version"], capture_output=True, text=True,
                                  env=bench_env(QUIET_ENV)).stdout.strip() for t, b in binaries.items()}
    rows = args.rows.split(",")
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}, {os.cpu_count()} cores, "
          f"medians of {args.repeat}; " + ", ".join(f"{t} {v}" for t, v in versions.items()))
    start = time.perf_counter()
    if "help" in rows:
        bench_help(args.repeat, binaries)
    if "c20" in rows:
        bench_chains(20, args.repeat, binaries)
    if "c200" in rows:
        bench_chains(200, args.repeat, binaries)
    if "fanout" in rows:
        bench_fanout(args.repeat, binaries)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}; took {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
