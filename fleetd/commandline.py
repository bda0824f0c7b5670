"""A command line split into arguments the way systemd splits ``ExecStart=`` (pure).

Arguments are separated by blanks.  Double or single quotes group an argument
that holds blanks and may start anywhere in it (``a"b c"d`` is ``ab cd``);
they are removed.  A backslash starts a C escape, inside quotes or not:
``\\a \\b \\f \\n \\r \\t \\v \\\\ \\" \\' \\s`` (a space), ``\\xNN``,
``\\NNN`` (octal), ``\\uNNNN``, ``\\UNNNNNNNN``, ``\\;``; a backslash before a
blank keeps the blank in the argument.  Anything else after a backslash, an
unterminated quote, or a trailing backslash is an error (InvalidInput), as is
a lone ``;`` (systemd's separator of several commands: only one is allowed
here).  There is no shell: no variables, globs, pipes or redirections.
"""

from __future__ import annotations

from fleetd.errors import InvalidInput

_BLANKS = " \t\n\r"
_SIMPLE = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
    "s": " ",
    " ": " ",
    "\t": "\t",
    ";": ";",
}
_HEX = {"x": 2, "u": 4, "U": 8}


def _escape(line: str, i: int) -> tuple[str, int]:
    """The character escaped by the backslash at ``line[i]`` and the index after it."""
    if i + 1 >= len(line):
        raise InvalidInput(f"{line!r} ends with a lone backslash")
    code = line[i + 1]
    if code in _SIMPLE:
        return _SIMPLE[code], i + 2
    if code in _HEX:
        digits = line[i + 2 : i + 2 + _HEX[code]]
        if len(digits) == _HEX[code] and all(c in "0123456789abcdefABCDEF" for c in digits):
            value = int(digits, 16)
            if value and value <= 0x10FFFF:
                return chr(value), i + 2 + len(digits)
        raise InvalidInput(f"bad escape \\{code}{digits} in {line!r}")
    if code in "01234567":
        digits = line[i + 1 : i + 4]
        if len(digits) == 3 and all(c in "01234567" for c in digits) and int(digits, 8):
            return chr(int(digits, 8)), i + 4
        raise InvalidInput(f"bad octal escape \\{digits} in {line!r}")
    raise InvalidInput(f"unknown escape \\{code} in {line!r}")


def split_command(line: str) -> list[str]:
    """The arguments of ``line``; raises InvalidInput naming what is wrong."""
    args: list[str] = []
    current: list[str] = []
    in_word = False
    quote = ""
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\":
            escaped, i = _escape(line, i)
            current.append(escaped)
            in_word = True
            continue
        if quote:
            if ch == quote:
                quote = ""
            else:
                current.append(ch)
        elif ch in "\"'":
            quote = ch
            in_word = True
        elif ch == ";" and not in_word and line[i + 1 : i + 2] in ("", *_BLANKS):
            raise InvalidInput(f"{line!r}: one command only (a lone ';' separates commands)")
        elif ch in _BLANKS:
            if in_word:
                args.append("".join(current))
                current, in_word = [], False
        else:
            current.append(ch)
            in_word = True
        i += 1
    if quote:
        raise InvalidInput(f"unterminated {quote} quote in {line!r}")
    if in_word:
        args.append("".join(current))
    return args
