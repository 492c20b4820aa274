"""``orchestra completion bash|zsh|fish``: a completion script generated from the argparse parser.

The script holds the verbs, flags and what each flag or positional takes (a run id, an entry
point, a file, one of some choices); run ids and entry point names come at TAB time from the
hidden ``orchestra __complete runs|entry-points [URI]``, which reads the store and the MLproject
without writing anything.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

ROOT = "orchestra"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("completion", help="print a shell completion script (bash, zsh or fish)",
                            description="Print a completion script. bash: eval \"$(orchestra completion bash)\" "
                                        "in ~/.bashrc; zsh: the same with zsh in ~/.zshrc; fish: "
                                        "orchestra completion fish > ~/.config/fish/completions/orchestra.fish")
    parser.add_argument("shell", choices=("bash", "zsh", "fish"))
    parser.set_defaults(handler=_print_script)


@dataclass
class Verb:
    """One parser of the tree: its sub-verbs, flags, and what each value and positional is."""

    subs: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)  # flag or "@N" (Nth positional) -> kind
    short: dict[str, str] = field(default_factory=dict)  # flag -> its help (fish shows it)


def _kind(action: argparse.Action) -> str:
    if action.choices and not isinstance(action, argparse._SubParsersAction):
        return "choice:" + " ".join(map(str, action.choices))
    metavar = str(action.metavar or action.dest.upper())
    if metavar in ("STAGE", "A,B") and action.option_strings:
        return "stage"
    if metavar.startswith("URI"):
        return "uri"
    if metavar.startswith("RUN"):
        return "run"
    if "FILE" in metavar or "DIR" in metavar:
        return "file"
    return "none"


def verbs(parser: argparse.ArgumentParser) -> dict[str, Verb]:
    """Every (sub)parser by its path (``orchestra``, ``orchestra runs``, ``orchestra runs show``)."""
    table: dict[str, Verb] = {}

    def walk(node: argparse.ArgumentParser, path: str) -> None:
        verb = table.setdefault(path, Verb())
        position = 0
        for action in node._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    verb.subs.append(name)
                    walk(child, f"{path} {name}")
            elif action.option_strings:
                verb.flags += action.option_strings
                if action.help and action.help != argparse.SUPPRESS:
                    verb.short.update(dict.fromkeys(action.option_strings, str(action.help) % vars(action)
                                                    if "%(" in str(action.help) else str(action.help)))
                if action.nargs != 0:
                    verb.kinds.update(dict.fromkeys(action.option_strings, _kind(action)))
            else:
                position += 1
                verb.kinds[f"@{position}"] = _kind(action)

    walk(parser, ROOT)
    return table


def _print_script(args: argparse.Namespace) -> int:
    table = verbs(args.build_parser())
    script = fish_script(table) if args.shell == "fish" else bash_script(table, zsh=args.shell == "zsh")
    sys.stdout.write(script)
    return 0


def _assoc(name: str, items: dict[str, str]) -> str:
    # One assignment a line, keys joined with ':' (no quoting): the same text works in bash and zsh.
    return "".join(f"{name}[{key.replace(' ', ':')}]={shlex.quote(value)}\n" for key, value in items.items())


def bash_script(table: dict[str, Verb], *, zsh: bool = False) -> str:
    """The bash script (zsh runs the same function through bashcompinit)."""
    subs = {path: " ".join(verb.subs) for path, verb in table.items() if verb.subs}
    flags = {path: " ".join(verb.flags) for path, verb in table.items()}
    kinds = {f"{path} {key}": kind for path, verb in table.items() for key, kind in verb.kinds.items()}
    head = ("#compdef orchestra\nautoload -U +X bashcompinit && bashcompinit\n" if zsh
            else "# orchestra completion for bash: eval \"$(orchestra completion bash)\" in ~/.bashrc\n")
    return (head + "typeset -gA _orchestra_subs _orchestra_flags _orchestra_kinds\n"
            + _assoc("_orchestra_subs", subs) + _assoc("_orchestra_flags", flags)
            + _assoc("_orchestra_kinds", kinds) + _BASH_FUNCTION)


_BASH_FUNCTION = r'''
_orchestra() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="" at=orchestra word kind="" uri="" npos=0 i
    ((COMP_CWORD > 0)) && prev="${COMP_WORDS[COMP_CWORD-1]}"
    COMPREPLY=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${COMP_WORDS[i]}"
        if [[ "$word" == -* ]]; then
            [[ -n "${_orchestra_kinds[$at:$word]}" ]] && ((i++))  # the flag's value
            continue
        fi
        if [[ " ${_orchestra_subs[$at]} " == *" $word "* ]]; then
            at="$at:$word"; npos=0
        else
            ((npos++))
            [[ "${_orchestra_kinds[$at:@$npos]}" == uri ]] && uri="$word"
        fi
    done
    if [[ "$prev" == -* && -n "${_orchestra_kinds[$at:$prev]}" ]]; then
        kind="${_orchestra_kinds[$at:$prev]}"
    elif [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "${_orchestra_flags[$at]}" -- "$cur"))
        return 0
    elif [[ -n "${_orchestra_subs[$at]}" && $npos == 0 ]]; then
        COMPREPLY=($(compgen -W "${_orchestra_subs[$at]}" -- "$cur"))
        return 0
    else
        kind="${_orchestra_kinds[$at:@$((npos + 1))]}"
    fi
    case "$kind" in
        run) COMPREPLY=($(compgen -W "$(command "${COMP_WORDS[0]}" __complete runs 2>/dev/null)" -- "$cur")) ;;
        stage)
            local done="" names
            [[ "$cur" == *,* ]] && done="${cur%,*},"
            names="$(command "${COMP_WORDS[0]}" __complete entry-points "${uri:-.}" 2>/dev/null)"
            COMPREPLY=($(compgen -P "$done" -W "$names" -- "${cur##*,}")) ;;
        choice:*) COMPREPLY=($(compgen -W "${kind#choice:}" -- "$cur")) ;;
        uri|file)
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -f -- "$cur")) ;;
    esac
    return 0
}
complete -F _orchestra orchestra
'''


def fish_script(table: dict[str, Verb]) -> str:
    """The fish script: verbs, flags (with their help), and the same dynamic values."""
    lines = ["# orchestra completion for fish: orchestra completion fish > ~/.config/fish/completions/orchestra.fish",
             "complete -c orchestra -f"]
    dynamic = {"run": "(orchestra __complete runs)", "stage": "(orchestra __complete entry-points .)"}
    for path, verb in table.items():
        words = path.split()[1:]
        seen = "; and ".join(f"__fish_seen_subcommand_from {w}" for w in words)
        if verb.subs:
            nested = (f"{seen}; and not __fish_seen_subcommand_from {' '.join(verb.subs)}" if words
                      else "__fish_use_subcommand")
            lines.append(f"complete -c orchestra -n {shlex.quote(nested)} -a {shlex.quote(' '.join(verb.subs))}")
        condition = f" -n {shlex.quote(seen)}" if words else ""
        for flag in verb.flags:
            option = f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}"
            kind = verb.kinds.get(flag, "")
            values = (f" -x -a {shlex.quote(kind.removeprefix('choice:'))}" if kind.startswith("choice:")
                      else f" -x -a {shlex.quote(dynamic[kind])}" if kind in dynamic
                      else " -r -F" if kind in ("uri", "file") else " -r" if kind else "")
            described = f" -d {shlex.quote(verb.short[flag][:60])}" if flag in verb.short else ""
            lines.append(f"complete -c orchestra{condition} {option}{values}{described}")
        positional = verb.kinds.get("@1", "")
        if words and positional in dynamic:
            lines.append(f"complete -c orchestra{condition} -a {shlex.quote(dynamic[positional])}")
        elif words and positional == "uri":
            lines.append(f"complete -c orchestra{condition} -F")
    return "\n".join(lines) + "\n"


def complete(argv: Sequence[str]) -> int:
    """``orchestra __complete runs | entry-points [URI]``: one value a line, nothing on stderr."""
    from orchestra.app import completion

    what = argv[0] if argv else ""
    if what == "runs":
        values = completion.run_ids()
    elif what == "entry-points":
        values = completion.entry_points(argv[1] if len(argv) > 1 else None)
    else:
        return 2
    sys.stdout.write("".join(f"{value}\n" for value in values))
    return 0
