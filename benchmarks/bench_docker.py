"""Cost of a docker_env stage: the floor is the same container started by bash alone
(`docker run --rm --init --network host IMAGE true`), measured in the same run; then a one-stage
`orchestra run` of a docker_env project (image checked, container run and removed), the same
with `--build-image` once the image is built (warm), and the same stage on the host.

Needs a running docker engine and Debian's busybox-static (the image is imported locally).
Usage: python benchmarks/bench_docker.py [REPEATS]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _util import ORCHESTRA, fresh_home, report, timed  # noqa: E402

from tests import dockerkit  # noqa: E402


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    exe = shutil.which("docker")
    if exe is None or subprocess.run([exe, "info"], capture_output=True).returncode != 0:
        sys.exit("no docker engine: start dockerd (.ci/start-docker)")
    tag = f"{dockerkit.unique('orchestra-bench-busybox')}:1"
    dockerkit.import_image(exe, tag)
    root = Path(tempfile.mkdtemp())
    name = dockerkit.unique("orchestra-bench")
    for sub, env in (("docker", f"docker_env: {{image: \"{tag}\"}}\n"), ("host", "")):
        (root / sub).mkdir()
        (root / sub / "MLproject").write_text(f"name: {name}\n{env}entry_points:\n  main: {{command: \"true\"}}\n")
    home = fresh_home()
    floor, host, docker, built = [], [], [], []
    try:
        timed([*ORCHESTRA, "run", str(root / "docker"), "-q", "--build-image"], {"ORCHESTRA_HOME": home})
        for _ in range(repeats):
            floor.append(timed(["bash", "-c", f"{exe} run --rm --init --network host {tag} true"]))
            host.append(timed([*ORCHESTRA, "run", str(root / "host"), "-q", "--no-cache"], {"ORCHESTRA_HOME": home}))
            docker.append(timed([*ORCHESTRA, "run", str(root / "docker"), "-q", "--no-cache"], {"ORCHESTRA_HOME": home}))
            built.append(timed([*ORCHESTRA, "run", str(root / "docker"), "-q", "--no-cache", "--build-image"],
                               {"ORCHESTRA_HOME": home}))
    finally:
        dockerkit.remove_images(exe, [tag, *dockerkit.images_of(exe, name)])
    report("floor: bash + docker run --rm true", floor)
    report("orchestra run, stage on the host", host)
    report("orchestra run, docker_env stage", docker)
    report("orchestra run --build-image (image built)", built)


if __name__ == "__main__":
    main()
