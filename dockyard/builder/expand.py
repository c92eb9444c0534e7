"""Words of a Dockerfile instruction: quotes removed, escapes applied, variables expanded.

The rules are those of BuildKit's `shell.Lex` (which dockerd's legacy builder
uses too): `$VAR`, `${VAR}`, `${VAR:-word}` (unset or empty), `${VAR-word}`
(unset), `${VAR:+word}` (set and non-empty), `${VAR+word}` (set),
`${VAR:?message}` / `${VAR?message}` (an error); single quotes keep
everything literal; inside double quotes the escape character only escapes
`"`, `$`, itself and a newline; `\\$` is a literal dollar.  The escape
character is `\\` unless the Dockerfile's `# escape=` directive changed it.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import InvalidArgument


class _Lexer:
    def __init__(self, word: str, env: Mapping[str, str], escape: str, split: bool):
        self.word = word
        self.env = env
        self.escape = escape
        self.split = split
        self.i = 0

    def peek(self) -> str:
        return self.word[self.i] if self.i < len(self.word) else ""

    def take(self) -> str:
        c = self.peek()
        self.i += 1
        return c

    def words(self, stop: str = "") -> list[str]:
        """Read up to the end (or an unquoted `stop` character); split at blanks when `split`."""
        out: list[str] = []
        current: list[str] = []
        started = False
        while self.i < len(self.word):
            c = self.peek()
            if stop and c in stop:
                break
            if self.split and c in " \t\n":
                self.i += 1
                if started:
                    out.append("".join(current))
                    current, started = [], False
                continue
            started = True
            if c == self.escape:
                self.i += 1
                if self.i >= len(self.word):
                    current.append(c)  # a trailing escape is kept, as BuildKit does
                else:
                    current.append(self.take())
            elif c == "'":
                self.i += 1
                current.append(self._single())
            elif c == '"':
                self.i += 1
                current.append(self._double())
            elif c == "$":
                self.i += 1
                value = self._variable()
                if self.split and value is not None:
                    # an unquoted expansion is split into words too
                    parts = value.split()
                    if value[:1].isspace() and current:
                        out.append("".join(current))
                        current = []
                    for k, part in enumerate(parts):
                        if k:
                            out.append("".join(current))
                            current = []
                        current.append(part)
                    if value[-1:].isspace() and parts:
                        out.append("".join(current))
                        current, started = [], False
                else:
                    current.append(value or "")
            else:
                current.append(self.take())
        if started or (not self.split):
            out.append("".join(current))
        return out

    def _single(self) -> str:
        end = self.word.find("'", self.i)
        if end < 0:
            raise InvalidArgument(f"unexpected end of statement while looking for matching single-quote in {self.word!r}")
        text = self.word[self.i:end]
        self.i = end + 1
        return text

    def _double(self) -> str:
        out = []
        while True:
            if self.i >= len(self.word):
                raise InvalidArgument(f"unexpected end of statement while looking for matching double-quote in {self.word!r}")
            c = self.take()
            if c == '"':
                return "".join(out)
            if c == self.escape and self.i < len(self.word):
                nxt = self.peek()
                if nxt in ('"', "$", self.escape, "\n"):
                    self.i += 1
                    out.append(nxt)
                else:
                    out.append(c)
            elif c == "$":
                out.append(self._variable() or "")
            else:
                out.append(c)

    def _name(self) -> str:
        start = self.i
        while self.i < len(self.word) and (self.word[self.i].isalnum() or self.word[self.i] == "_"):
            self.i += 1
        return self.word[start:self.i]

    def _variable(self) -> str:
        c = self.peek()
        if c == "{":
            self.i += 1
            name = self._name()
            if not name:
                raise InvalidArgument(f"bad substitution in {self.word!r}")
            c = self.take()
            if c == "}":
                return self.env.get(name, "")
            colon = c == ":"
            if colon:
                c = self.take()
            if c not in "-+?" or not c:
                raise InvalidArgument(f"unsupported modifier ({c}) in substitution {self.word!r}")
            inner = _Lexer(self.word, self.env, self.escape, False)
            inner.i = self.i
            word = inner.words(stop="}")[0]
            self.i = inner.i
            if self.take() != "}":
                raise InvalidArgument(f"missing '}}' in {self.word!r}")
            is_set = name in self.env
            value = self.env.get(name, "")
            present = bool(value) if colon else is_set
            if c == "-":
                return value if present else word
            if c == "+":
                return word if present else ""
            if not present:  # "?"
                raise InvalidArgument(f"{name}: {word or 'is not allowed to be unset'}")
            return value
        name = self._name()
        if not name:
            if c and c in "0123456789*#@!?$-":  # special parameters expand to nothing
                self.i += 1
                return ""
            return "$"
        return self.env.get(name, "")


def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """One word (quotes and escapes removed, variables expanded)."""
    return _Lexer(word, env, escape, False).words()[0]


def expand_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Blank-separated words (as for EXPOSE, VOLUME's shell form, USER), each expanded."""
    return _Lexer(text, env, escape, True).words()
