"""The completion scripts for bash, zsh and fish, written from ``completion.Cli``.

All three decide the same way: before the verb, the verbs and the top-level options;
after an option that takes a value, what that value may be (its choices, a file, or
nothing to offer); a word starting with ``-``, the verb's options; any other word, what
the verb's positional arguments are (task ids, files, verbs, or choices).  Task ids come
from ``ailabber _complete ids`` at the moment of the Tab.
"""

from __future__ import annotations

from collections.abc import Callable

from ailabber import __version__
from ailabber.cli.completion_spec import FILES, IDS, NOTHING, VERBS, Cli, Option

IDS_CALL = "command ailabber _complete ids 2>/dev/null"


def _header(shell: str, install: str, comment: str = "#") -> str:
    return (f"{comment} {shell} completion for ailabber {__version__}: commands, their options and your task ids.\n"
            f"{comment} Made by `ailabber completion {shell}`; install it with\n"
            f"{comment}   {install}\n")


def _kind(value: str | tuple[str, ...]) -> str:
    """A kind as ``:ids``/``:files``/``:verbs``/``:nothing``, or choices as words (never
    starting with ``:``), for the shell scripts' case statements."""
    return " ".join(value) if isinstance(value, tuple) else f":{value}"


def _sq(text: str) -> str:
    """Single-quoted for bash and zsh."""
    return "'" + text.replace("'", "'\\''") + "'"


def _value_cases(cli: Cli, indent: str, action: Callable[[str], str]) -> str:
    """``"<verb> <option>") <action> ;;`` for every option that takes a value."""
    lines = []
    for v in cli.verbs:
        for o in v.options:
            if o.value is not None:
                pattern = "|".join(f'"{v.name} {s}"' for s in o.strings)
                lines.append(f"{indent}{pattern}) {action(_kind(o.value))} ;;")
    return "\n".join(lines)


def _find_verb(words: str, first: int, end: str) -> str:
    """Shell lines (bash and zsh alike) setting ``verb`` to the first word that is not an option."""
    return (f"    for ((i = {first}; i < {end}; i++)); do\n"
            f"        if [[ ${{{words}[i]}} != -* ]]; then\n"
            f"            verb=${{{words}[i]}}\n"
            f"            break\n"
            f"        fi\n"
            f"    done")


def _by_verb(cases: str, values: str) -> str:
    """Shell lines (bash and zsh alike): what the verb takes, then what the option before
    the cursor takes, each a ``case`` of the lines given."""
    return f'    case $verb in\n{cases}\n    esac\n    case "$verb $prev" in\n{values}\n    esac'


def bash(cli: Cli, install: str) -> str:
    verbs = " ".join(v.name for v in cli.verbs)
    top = " ".join(s for o in cli.options for s in o.strings)
    cases = "\n".join(f"        {v.name}) opts={_sq(' '.join(s for o in v.options for s in o.strings))}; "
                      f"args={_sq(_kind(v.args))} ;;" for v in cli.verbs)
    values = _value_cases(cli, "        ", lambda k: f"_ailabber_reply {_sq(k)} \"$cur\"; return 0")
    return _header("bash", install) + f"""
# $1: what may go here (:ids, :files, :verbs, :nothing, or the words themselves); $2: the word so far.
_ailabber_reply() {{
    case $1 in
        :ids) COMPREPLY=($(compgen -W "$({IDS_CALL})" -- "$2")) ;;
        :files)
            compopt -o filenames 2>/dev/null
            local IFS=$'\\n'
            COMPREPLY=($(compgen -f -- "$2")) ;;
        :verbs) COMPREPLY=($(compgen -W {_sq(verbs)} -- "$2")) ;;
        :nothing) COMPREPLY=() ;;
        *) COMPREPLY=($(compgen -W "$1" -- "$2")) ;;
    esac
}}

_ailabber() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}} verb="" i
{_find_verb("COMP_WORDS", 1, "COMP_CWORD")}
    if [[ -z $verb ]]; then
        if [[ $cur == -* ]]; then _ailabber_reply {_sq(top)} "$cur"; else _ailabber_reply :verbs "$cur"; fi
        return 0
    fi
    local opts="" args=:nothing
{_by_verb(cases, values)}
    if [[ $cur == -* ]]; then
        _ailabber_reply "$opts" "$cur"
    else
        _ailabber_reply "$args" "$cur"
    fi
    return 0
}}

complete -F _ailabber ailabber
"""


def zsh(cli: Cli, install: str) -> str:
    described = "\n".join(f"    {_sq(v.name + ':' + v.help)}" for v in cli.verbs)
    top = " ".join(s for o in cli.options for s in o.strings)
    cases = "\n".join(f"        {v.name}) opts=({' '.join(s for o in v.options for s in o.strings)}); "
                      f"args={_sq(_kind(v.args))} ;;" for v in cli.verbs)
    values = _value_cases(cli, "        ", lambda k: f"kind={_sq(k)}")
    return "#compdef ailabber\n" + _header("zsh", install) + f"""
_ailabber_verbs=(
{described}
)

# $1: the position of the word being completed among the rest (zsh's CURRENT), then the
# words of the command line.  Sets reply to what may go there, or REPLY to a kind the
# caller completes itself: verbs (described in _ailabber_verbs) or files.
_ailabber_candidates() {{
    local n=$1
    shift
    local cur=${{argv[n]}} prev=${{argv[n-1]}} verb="" i
{_find_verb("argv", 2, "n")}
    reply=()
    REPLY=""
    if [[ -z $verb ]]; then
        if [[ $cur == -* ]]; then reply=({top}); else REPLY=verbs; fi
        return 0
    fi
    local -a opts
    local args=:nothing kind=""
{_by_verb(cases, values)}
    if [[ -z $kind ]]; then
        if [[ $cur == -* ]]; then
            reply=($opts)
            return 0
        fi
        kind=$args
    fi
    case $kind in
        :ids) reply=(${{(f)"$({IDS_CALL})"}}); reply=(${{reply:#}}) ;;
        :files) REPLY=files ;;
        :verbs) REPLY=verbs ;;
        :nothing) ;;
        *) reply=(${{=kind}}) ;;
    esac
}}

_ailabber() {{
    local -a reply
    local REPLY
    _ailabber_candidates $CURRENT "${{words[@]}}"
    case $REPLY in
        verbs) _describe -t commands 'ailabber command' _ailabber_verbs ;;
        files) _files ;;
        *) (( ${{#reply}} )) && compadd -a reply ;;
    esac
}}

if [[ ${{zsh_eval_context[-1]}} == loadautofunc ]]; then
    _ailabber "$@"
elif (( $+functions[compdef] )); then
    compdef _ailabber ailabber
else
    print -u2 "ailabber completion: load zsh's completion first (autoload -Uz compinit && compinit)"
fi
"""


def _fish_sq(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_option(condition: str, o: Option) -> str:
    parts = ["complete -c ailabber -n", _fish_sq(condition)]
    for s in o.strings:
        parts.append(f"-l {s[2:]}" if s.startswith("--") else f"-s {s[1:]}")
    if o.value is not None:
        if o.value == FILES:
            parts.append("-r -F")
        elif isinstance(o.value, tuple):
            parts.append("-x -a " + _fish_sq(" ".join(o.value)))
        else:
            parts.append("-x")
    if o.help:
        parts.append("-d " + _fish_sq(o.help))
    return " ".join(parts)


def fish(cli: Cli, install: str) -> str:
    lines = [_header("fish", install), "complete -c ailabber -e", "complete -c ailabber -f"]
    lines += [_fish_option("__fish_use_subcommand", o) for o in cli.options]
    lines += [f"complete -c ailabber -n __fish_use_subcommand -a {v.name} -d {_fish_sq(v.help)}" for v in cli.verbs]
    verbs = " ".join(v.name for v in cli.verbs)
    by_args: dict[str, list[str]] = {}
    for v in cli.verbs:
        seen = f"__fish_seen_subcommand_from {v.name}"
        lines += [_fish_option(seen, o) for o in v.options]
        if v.args != NOTHING:
            by_args.setdefault(_kind(v.args), []).append(v.name)
    for kind, names in by_args.items():
        seen = _fish_sq("__fish_seen_subcommand_from " + " ".join(names))
        what = {f":{IDS}": f"-a {_fish_sq('(' + IDS_CALL + ')')}", f":{FILES}": "-F",
                f":{VERBS}": f"-a {_fish_sq(verbs)}"}.get(kind, f"-a {_fish_sq(kind)}")
        lines.append(f"complete -c ailabber -n {seen} {what}")
    return "\n".join(lines) + "\n"


SCRIPTS: dict[str, Callable[[Cli, str], str]] = {"bash": bash, "zsh": zsh, "fish": fish}
