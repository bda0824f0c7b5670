"""fleetctl's command line before typer sees it: global options anywhere, secrets never shown.

fleet let global options come before or after the command, in every form
(``--token T``, ``--token=T``, ``-o json``, ``-ojson``); ``reorder`` moves the
ones written after the command in front of it, skipping the value of each
option that takes one, so that a value is never read as the command.  An
option the command has itself (``journal --output``, passed to journalctl as
fleet did) stays with the command.  ``redact`` takes secret values (the
token, passwords in URLs) out of any text fleetctl prints.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

# Global option -> whether it takes a value.  Long names as typed by users.
GLOBAL_OPTIONS: dict[str, bool] = {
    "--endpoint": True,
    "--driver": True,
    "--etcd-endpoints": True,
    "--etcd-key-prefix": True,
    "--token": True,
    "--ca-file": True,
    "--cert-file": True,
    "--key-file": True,
    "--etcd-username": True,
    "--etcd-password": True,
    "--etcd-server-name": True,
    "--request-timeout": True,
    "--output": True,
    "-o": True,
    "--version": False,
}
# Options of a command that share a global option's name: they belong to the command.
COMMAND_OPTIONS: dict[str, frozenset[str]] = {"journal": frozenset({"--output", "-o"})}
SECRET_OPTIONS = frozenset({"--token", "--etcd-password"})
SECRET_ENV = ("FLEETCTL_TOKEN", "FLEETCTL_ETCD_PASSWORD")
# Options whose URLs may carry ``user:password@``.
URL_OPTIONS = frozenset({"--endpoint", "--etcd-endpoints"})
URL_ENV = ("FLEETCTL_ENDPOINT", "FLEETCTL_ETCD_ENDPOINTS")
_SHORT = {"-o": "--output"}
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def _split(arg: str) -> tuple[str, str | None]:
    """``--opt=value`` / ``-ovalue`` / ``-o=value`` -> (name, value); else (arg, None)."""
    if arg.startswith("--"):
        name, sep, value = arg.partition("=")
        return (name, value) if sep else (arg, None)
    if arg[:2] in _SHORT and len(arg) > 2:
        value = arg[2:]
        return arg[:2], value[1:] if value.startswith("=") else value
    return arg, None


def _normal(name: str, value: str | None) -> list[str]:
    """One option as ``--long=value`` (or the bare name), so click reads it one way."""
    long = _SHORT.get(name, name)
    return [long if value is None else f"{long}={value}"]


def reorder(argv: Sequence[str]) -> list[str]:
    """The arguments with every global option in front of the command."""
    args = list(argv)
    head: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--" or not arg.startswith("-") or arg == "-":
            break
        name, value = _split(arg)
        if name in GLOBAL_OPTIONS:
            head.extend(_normal(name, value))
            if GLOBAL_OPTIONS[name] and value is None and i + 1 < len(args):
                head.append(args[i + 1])
                i += 1
        else:
            head.append(arg)
        i += 1
    if i >= len(args) or args[i] == "--":
        return head + args[i:]
    command = args[i]
    own = COMMAND_OPTIONS.get(command, frozenset())
    moved: list[str] = []
    rest: list[str] = [command]
    j = i + 1
    while j < len(args):
        arg = args[j]
        if arg == "--":
            rest.extend(args[j:])
            break
        name, value = _split(arg)
        if name in GLOBAL_OPTIONS and name not in own:
            moved.extend(_normal(name, value))
            if GLOBAL_OPTIONS[name] and value is None and j + 1 < len(args):
                moved.append(args[j + 1])
                j += 1
        else:
            rest.append(arg)
        j += 1
    return head + moved + rest


def url_secrets(urls: str) -> list[str]:
    """The ``user:password`` parts (and passwords) of the URLs in ``urls``."""
    found = []
    for match in re.finditer(r"://([^/@\s]+)@", urls):
        found.append(match.group(1))
        _, sep, password = match.group(1).partition(":")
        if sep and password:
            found.append(password)
    return found


def secrets(argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """The secret values on this command line and in the environment."""
    found = [env[name] for name in SECRET_ENV if env.get(name)]
    for name in URL_ENV:
        found.extend(url_secrets(env.get(name, "")))
    for index, arg in enumerate(argv):
        name, value = _split(arg)
        if name not in SECRET_OPTIONS and name not in URL_OPTIONS:
            continue
        if value is None and index + 1 < len(argv):
            value = argv[index + 1]
        if not value:
            continue
        found.extend(url_secrets(value) if name in URL_OPTIONS else [value])
    return found


def redact(text: str, hidden: Iterable[str] = ()) -> str:
    """``text`` with each secret value and each URL's ``user:password@`` as ``***``."""
    for value in sorted({v for v in hidden if v}, key=len, reverse=True):
        text = text.replace(value, "***")
    return _USERINFO.sub("***@", text)
