"""One gitignore glob as a regular expression that matches exactly what git's wildmatch
(``WM_PATHNAME``) matches.

Students copy patterns from their ``.gitignore`` and expect the upload to agree with
``git status``, so the corner cases follow git's own ``wildmatch.c``, not fnmatch: ``*``
and ``?`` never match ``/``; ``**`` spans directories only as a whole path segment;
``[z-a]`` matches ``z`` (git tests the first character before it sees the range);
``[[:digit:]]`` and the other POSIX classes work; a pattern with an unclosed ``[``, an
unknown ``[:class:]`` or a trailing lone backslash matches nothing at all.  The unit tests
check all of this against ``git check-ignore``.
"""

from __future__ import annotations

import re

#: Git's ASCII-only character classes (``sane_ctype``), as regex class contents.
_CLASSES: dict[str, str] = {
    "alnum": "a-zA-Z0-9", "alpha": "a-zA-Z", "blank": " \\t", "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9", "graph": "!-~", "lower": "a-z", "print": " -~",
    "punct": "!-/:-@\\[-`{-~", "space": " \\t\\n\\r\\x0b\\x0c", "upper": "A-Z", "xdigit": "0-9A-Fa-f",
}


class Malformed(ValueError):
    """git's ``WM_ABORT_ALL``: the pattern can match no path."""


def _unescape(body: str, p: int) -> tuple[str, int]:
    """The character at ``body[p]`` (the next one when that is a backslash) and its index."""
    if body[p] == "\\":
        p += 1
        if p >= len(body):
            raise Malformed
    return body[p], p


def _bracket(body: str, i: int) -> tuple[str, int]:
    """``[...]`` at ``body[i]`` as a regex class and the index after its ``]``.

    A line-by-line port of the bracket loop of git's ``dowild``: the first character is
    taken literally even when it is ``]``; ``-`` makes a range only between two
    characters; after a range or a class the next ``-`` is literal again.
    """
    n = len(body)
    p = i + 1
    if p >= n:
        raise Malformed
    negated = body[p] in "!^"
    if negated:
        p += 1
    items: list[str] = []
    prev = ""
    while True:
        if p >= n:
            raise Malformed
        ch = body[p]
        if ch == "\\":
            ch, p = _unescape(body, p)
            items.append(re.escape(ch))
        elif ch == "-" and prev and p + 1 < n and body[p + 1] != "]":
            high, p = _unescape(body, p + 1)
            if prev <= high:
                items.append(f"{re.escape(prev)}-{re.escape(high)}")
            ch = ""
        elif ch == "[" and p + 1 < n and body[p + 1] == ":":
            start = q = p + 2
            while q < n and body[q] != "]":
                q += 1
            if q >= n:
                raise Malformed
            if q - start - 1 < 0 or body[q - 1] != ":":
                items.append(re.escape("["))     # no ":]": a plain "[" (git rescans from here)
            else:
                cls = _CLASSES.get(body[start:q - 1])
                if cls is None:
                    raise Malformed
                items.append(cls)
                p, ch = q, ""
        else:
            items.append(re.escape(ch))
        prev = ch
        p += 1
        if p >= n:
            raise Malformed
        if body[p] == "]":
            break
    cls_text = "".join(items)
    # "/" is never matched by a class, negated or not (WM_PATHNAME)
    return (f"[^/{cls_text}]" if negated else f"(?!/)[{cls_text}]"), p + 1


def _segment_stars(body: str, i: int, j: int) -> bool:
    """Whether the run of stars ``body[i:j]`` is a whole path segment (git's ``**``)."""
    before = i == 0 or body[i - 1] == "/"
    after = j == len(body) or body[j] == "/" or body.startswith("\\/", j)
    return j - i >= 2 and before and after


def translate(body: str) -> str:
    """gitignore glob (without ``!``, anchoring ``/`` or trailing ``/``) -> regex source
    for ``fullmatch``.  Raises ``Malformed`` for a pattern git would never match."""
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c == "*":
            j = i
            while j < n and body[j] == "*":
                j += 1
            if _segment_stars(body, i, j):
                if j == n:           # "**" alone or trailing "/**": everything below
                    out.append(".*")
                    i = j
                else:                # leading "**/" or middle "/**/": zero or more dirs
                    out.append("(?:.*/)?")
                    i = j + (2 if body[j] == "\\" else 1)
                continue
            out.append("[^/]*")
            i = j
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            regex, i = _bracket(body, i)
            out.append(regex)
        elif c == "\\":
            if i + 1 >= n:
                raise Malformed          # a lone trailing backslash escapes nothing
            out.append(re.escape(body[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def compile_glob(body: str) -> re.Pattern[str] | None:
    """The compiled ``translate(body)``, or None when the pattern can match nothing."""
    try:
        return re.compile(translate(body), re.DOTALL)
    except (Malformed, re.error):
        return None
