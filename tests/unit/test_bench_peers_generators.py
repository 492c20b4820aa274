"""The project generators of benchmarks/bench_peers.py write the files each tool expects.

Structure only: the tools themselves (Snakemake, DVC) are installed by the benchmark into its own
venvs and are not needed here.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_peers.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_peers_under_test", BENCH)
    module = importlib.util.module_from_spec(spec)
    saved = list(sys.path)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved
    return module


def test_dvc_chain_stages_chain_their_files_and_read_their_params(tmp_path: Path) -> None:
    bench = _bench()
    root = bench.dvc_chain(tmp_path / "d", 3)
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    assert list(stages) == ["s0", "s1", "s2"]
    assert "deps" not in stages["s0"] and stages["s2"]["deps"] == ["s1.txt"]
    assert stages["s2"]["outs"] == ["s2.txt"] and stages["s2"]["params"] == ["s2.p"]
    assert stages["s2"]["cmd"] == "cat s1.txt > s2.txt && echo 's2 p=${s2.p}' >> s2.txt"
    bench.dvc_params(root, 3, {2: "7"})
    params = yaml.safe_load((root / "params.yaml").read_text())
    assert params == {"s0": {"p": "1"}, "s1": {"p": "1"}, "s2": {"p": "7"}}


def test_dvc_fanout_has_one_stage_per_worker_between_start_and_end(tmp_path: Path) -> None:
    stages = yaml.safe_load((_bench().dvc_fanout(tmp_path / "f", 4, 0.5) / "dvc.yaml").read_text())["stages"]
    assert len(stages) == 6
    assert stages["w3"] == {"cmd": "sleep 0.5 && touch w3.txt", "deps": ["start.txt"], "outs": ["w3.txt"]}
    assert stages["end"]["deps"] == [f"w{i}.txt" for i in range(4)]


def test_snakefile_chain_has_a_rule_per_stage_and_targets_the_last(tmp_path: Path) -> None:
    text = (_bench().snakefile_chain(tmp_path / "s", 3) / "Snakefile").read_text()
    assert text.startswith("rule all:\n    input: 's2/me.txt'\n")
    assert text.count("\nrule s") == 3
    assert "    input: 's1/me.txt'\n    output: 's2/me.txt'\n    params: p=config.get('p2', '1')\n" in text
    assert "shell: \"cat {input} > {output} && echo 's2 p={params.p}' >> {output}\"" in text


def test_snakefile_fanout_targets_end_through_every_worker(tmp_path: Path) -> None:
    text = (_bench().snakefile_fanout(tmp_path / "f", 3, 0.5) / "Snakefile").read_text()
    assert text.startswith("rule end:\n    input: 'w0.txt', 'w1.txt', 'w2.txt'\n")
    assert "output: 'w{i}.txt'\n    shell: 'sleep 0.5 && touch {output}'" in text
