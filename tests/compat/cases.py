"""The cases both tools run. Names starting ``mlflow_`` port an expectation of mlflow's own tests
(``tests/projects/test_projects.py``, ``test_entry_point.py``, ``tests/resources/example_project``)
that applies to local runs."""

from __future__ import annotations

from tests.compat.harness import PROBE, Case

# mlflow's tests/resources/example_project, with the commands pointed at the probe.
EXAMPLE = """
entry_points:
  main:
    command: "python compat_probe.py 'Main entry point'"
  greeter:
    parameters:
      greeting: {type: string, default: "hi"}
      name: string
    command: "python compat_probe.py {greeting} {name}"
  line_count:
    parameters:
      path: path
    command: "python compat_probe.py {path}"
  download_uri:
    parameters:
      uri: uri
    command: "python compat_probe.py {uri}"
  sleep:
    parameters:
      duration: int
    command: "python compat_probe.py {duration}"
  test_artifact_path:
    parameters:
      model: {type: path}
    command: "python compat_probe.py success"
"""

# mlflow's test_entry_point.py::test_params, as an MLproject.
TYPED = """
entry_points:
  main:
    parameters:
      alpha: float
      l1_ratio: {type: float, default: 0.1}
      l2_ratio: {type: float, default: 0.0003}
      random_str: {type: string, default: hello}
      args: {type: action, default: --early-stopping}
    command: "python compat_probe.py {alpha} {l1_ratio} {l2_ratio} {random_str} {args}"
"""

LENIENT = """
name: 2024
entry_points:
  main:
    parameters:
      epochs: {type: epochs, default: 3}
      n: {type: integer, default: 2}
      flag: {type: boolean, default: yes}
      ratio: {type: double, default: 1.50}
      items: {default: [1, 2]}
      opts: {default: {a: 1}}
      day: {default: 2024-01-02}
      yes_word: {default: yes}
      small: {type: float, default: 1.0e-3}
      hexa: {type: int, default: 0x10}
    params: epochs
    command: "python compat_probe.py {epochs} {n} {flag} {ratio} {items} {opts} {day} {yes_word} {small} {hexa}"
  draft:
    parameters: {a: int}
  typo:
    command: "python compat_probe.py {nope}"
"""

SHELL = """
entry_points:
  main:
    command: |
      shopt -s extglob
      pushd sub > /dev/null
      time python ../compat_probe.py !(skip*).txt
  sourced:
    command: "source env.sh && python compat_probe.py $GREETING"
  pushd_only:
    command: "pushd /tmp"
  failing:
    command: "exit 3"
"""
SHELL_FILES = {"sub/a.txt": "", "sub/b.txt": "", "sub/skip-me.txt": "", "env.sh": "export GREETING=hello\n"}

DEFAULT_PATH = """
entry_points:
  main:
    parameters:
      data: {type: path, default: data.txt}
    command: "python compat_probe.py {data}"
"""

NO_MLPROJECT_FILES = {"run.sh": 'python compat_probe.py "$@"\n'}

CASES = [
    # -- mlflow's own expectations -----------------------------------------------------------
    Case("mlflow_main_entry_point", EXAMPLE),
    Case("mlflow_greeter_extra_params", EXAMPLE, ["-e", "greeter", "-P", "name=friend", "-P", "excitement=10"]),
    Case("mlflow_greeter_shell_escaping", EXAMPLE, ["-e", "greeter", "-P", "name=friend; echo 'hi'"]),
    Case("mlflow_missing_required_param", EXAMPLE, ["-e", "greeter"], exit=(1, 2),
         message="no value given for required parameter(s) 'name'"),
    Case("mlflow_entry_point_not_found", EXAMPLE, ["-e", "nope"], exit=(1, 2), message="unknown entry point 'nope'"),
    Case("mlflow_params_typed_and_extras", TYPED, ["-P", "alpha=0.004", "-P", "gamma=0.89", "-P", "ALPHA=0.89"]),
    Case("mlflow_params_negative", TYPED, ["-P", "alpha=-0.99", "-P", "random_str=hi"]),
    Case("mlflow_path_param_relative_to_cwd", EXAMPLE, ["-e", "line_count", "-P", "path=data.txt"],
         files={"outside/data.txt": "1\n"}, cwd="outside", differences=frozenset({"path"})),
    Case("mlflow_path_param_file_uri", EXAMPLE, ["-e", "line_count", "-P", "path=file://{project}/MLproject"],
         differences=frozenset({"path"})),
    Case("mlflow_path_param_missing", EXAMPLE, ["-e", "line_count", "-P", "path={outside}/some/nonexistent/file"],
         exit=(1, 2), message="no such file or directory"),
    Case("mlflow_uri_param_file_uri", EXAMPLE, ["-e", "download_uri", "-P", "uri=file://{outside}"]),
    Case("mlflow_uri_param_local_path_refused", EXAMPLE, ["-e", "download_uri", "-P", "uri={outside}"],
         exit=(1, 2), message="is not a URI"),
    Case("mlflow_artifact_path_local", EXAMPLE, ["-e", "test_artifact_path", "-P", "model={project}/MLproject"],
         differences=frozenset({"model"})),
    Case("mlflow_implicit_py_entry_point", None, ["-e", "compat_probe.py", "-P", "a=1", "-P", "b=x y"]),
    Case("mlflow_implicit_sh_entry_point", None, ["-e", "run.sh", "-P", "a=1"], files=NO_MLPROJECT_FILES),
    Case("mlflow_no_mlproject_no_entry_point", None, [], exit=(1, 2), message="unknown entry point 'main'"),
    Case("mlflow_subdirectory_uri", EXAMPLE, [], uri="{project}#sub", files={"sub/MLproject": EXAMPLE, "sub/compat_probe.py": PROBE}),
    Case("mlflow_bad_subdirectory", EXAMPLE, [], uri="{project}#nope", exit=(1, 2)),
    Case("mlflow_bad_uri", EXAMPLE, [], uri="{outside}/not-a-project", exit=(1, 2)),
    Case("difference_version_of_a_local_git_tree", "entry_points:\n  main:\n    command: python compat_probe.py old\n",
         ["--version", "old"], git_versions=True),
    Case("mlflow_invalid_version_local_git_repo", "entry_points:\n  main:\n    command: python compat_probe.py old\n",
         ["--version", "nope"], git_versions=True, exit=(1, 2)),
    Case("mlflow_repeated_param", EXAMPLE, ["-e", "greeter", "-P", "name=a", "-P", "name=b"], exit=(2, 2),
         message="-P name given more than once"),
    Case("mlflow_param_without_value", EXAMPLE, ["-e", "greeter", "-P", "name"], exit=(2, 2),
         message="expected KEY=VALUE"),
    Case("mlflow_storage_dir", EXAMPLE, ["--storage-dir", "{outside}"]),
    # -- differences kept on purpose (README: "Differences from mlflow run") ----------------------
    Case("difference_path_default_resolves_against_project", DEFAULT_PATH, cwd="outside", exit=(1, 0),
         files={"data.txt": "1\n"}),
    # -- MLproject files mlflow accepts -----------------------------------------------------
    Case("lenient_mlproject_renders_like_mlflow", LENIENT),
    Case("lenient_entry_without_command_selected", LENIENT, ["-e", "draft", "-P", "a=1"], exit=(1, 2),
         message="MLproject: entry_points.draft: no command"),
    Case("lenient_undeclared_placeholder_selected", LENIENT, ["-e", "typo"], exit=(1, 2),
         message="MLproject: entry_points.typo.command: placeholder {nope} is not a declared parameter"),
    Case("refused_by_both_parameters_as_a_word", "entry_points:\n  main:\n    parameters: epochs\n"
         "    command: python compat_probe.py\n", exit=(1, 2), message="entry_points.main.parameters"),
    Case("refused_by_both_entry_point_not_a_mapping", "entry_points:\n  main: python compat_probe.py\n",
         exit=(1, 2), message="entry_points.main"),
    Case("lenient_parameter_named_outputs", "entry_points:\n  main:\n    parameters:\n"
         "      outputs: {type: string, default: results}\n    command: python compat_probe.py {outputs}\n",
         ["-P", "outputs=elsewhere"]),
    Case("given_values_pass_as_given_text", TYPED, ["-P", "alpha=0.50", "-P", "l1_ratio=1E-3", "-P", "l2_ratio=.5"]),
    # -- commands run through bash -c -----------------------------------------------------------
    Case("bash_extglob_pushd_time", SHELL, files=SHELL_FILES),
    Case("bash_source", SHELL, ["-e", "sourced"], files=SHELL_FILES),
    Case("bash_builtin_alone", SHELL, ["-e", "pushd_only"], files=SHELL_FILES),
    Case("command_failure", SHELL, ["-e", "failing"], files=SHELL_FILES, exit=(1, 1)),
    # -- mlflow run's flags ----------------------------------------------------------------------
    Case("flag_param_list_long_form", EXAMPLE, ["-e", "greeter", "--param-list", "name=long"]),
    Case("flag_experiment_id", EXAMPLE, ["--experiment-id", "{experiment_id}"]),
    Case("flag_experiment_id_from_environment", EXAMPLE, env={"MLFLOW_EXPERIMENT_ID": "{experiment_id}"}),
    Case("flag_experiment_name_from_environment", EXAMPLE, env={"MLFLOW_EXPERIMENT_NAME": "{experiment_name}"}),
    Case("flag_backend_local_and_config", EXAMPLE, ["-b", "local", "-c", '{"SYNCHRONOUS": true}']),
    Case("flag_backend_config_file", EXAMPLE, ["-c", "{project}/backend.json"], files={"backend.json": "{}"}),
    Case("flag_backend_kubernetes_without_config", EXAMPLE, ["-b", "kubernetes"], exit=(2, 2),
         message="-b/--backend kubernetes: not a backend orchestra runs"),
    Case("flag_run_id", EXAMPLE, ["--run-id", "{run_id}"]),
    Case("difference_run_id_unknown_to_the_server", EXAMPLE, ["--run-id", "0" * 32], exit=(1, 0)),
    Case("flag_type_check_refuses", EXAMPLE, ["-e", "sleep", "-P", "duration=1.5"], exit=(0, 2),
         message="'1.5' is not an int"),
    Case("flag_no_type_check", EXAMPLE, ["-e", "sleep", "-P", "duration=1.5"], orchestra_args=["--no-type-check"]),
]

BY_NAME = {case.name: case for case in CASES}
