"""What a stage deep in a long chain is given of its upstream stages (real runs through the CLI).

Up to ``MAX_INPUT_VARIABLES`` upstream stages, a stage gets ``ORCHESTRA_INPUT_<X>`` for each of
them; past it, for its depends_on and the stages its command names, and the others are found
through ``ORCHESTRA_INPUTS_FILE`` by ``orchestra.stage.input_path`` (every variable slows each
``bash`` start, and a chain of 2,000 stages became quadratic).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestra.execution.task import MAX_INPUT_VARIABLES

pytestmark = pytest.mark.integration

READER = """
import json, os, pathlib, sys
from orchestra import stage
out = pathlib.Path(os.environ["ORCHESTRA_OUTPUT_DIR"])
seen = {
    "vars": sorted(k for k in os.environ if k.startswith("ORCHESTRA_INPUT_")),
    "file": "ORCHESTRA_INPUTS_FILE" in os.environ,
    "s0": stage.input_path("s0", "me.txt").read_text(),
    "named": pathlib.Path(sys.argv[1], "me.txt").read_text(),
}
try:
    stage.input_path("loose")
except KeyError:
    seen["loose"] = "not upstream"
(out / "seen.json").write_text(json.dumps(seen))
"""


def chain(n: int) -> str:
    lines = ["entry_points:", "  loose:", "    command: \"echo loose > {outputs}/me.txt\"",
             "  s0:", "    command: \"echo s0 > {outputs}/me.txt\""]
    for i in range(1, n):
        lines += [f"  s{i}:", f"    command: \"echo s{i} > {{outputs}}/me.txt\"", f"    depends_on: [s{i - 1}]"]
    lines += ["  last:", f"    depends_on: [s{n - 1}]", "    command: \"python reader.py {inputs.s1} && echo done > {outputs}/me.txt\""]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("n", [MAX_INPUT_VARIABLES, MAX_INPUT_VARIABLES + 6])
def test_a_deep_stage_reaches_every_upstream_stage(cli, make_project, n):
    root = make_project(chain(n), {"reader.py": READER})
    result = cli("run", str(root), "-e", "last", "-e", "loose", "--json")
    assert result.code == 0, result.err
    record = json.loads(result.out)
    last = next(s for s in record["stages"] if s["name"] == "last")
    seen = json.loads((Path(last["outputs_dir"]) / "seen.json").read_text())
    assert seen["s0"] == "s0\n" and seen["named"] == "s1\n"  # a far ancestor, and one the command names
    assert seen["loose"] == "not upstream"  # in the run, but not upstream of `last`
    if n <= MAX_INPUT_VARIABLES:  # every upstream stage has its variable, as always
        assert len(seen["vars"]) == n and not seen["file"]
    else:  # its depends_on and the stage its command names; the rest through the file
        assert seen["vars"] == ["ORCHESTRA_INPUT_S1", f"ORCHESTRA_INPUT_S{n - 1}"] and seen["file"]
