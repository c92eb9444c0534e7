"""Variable expansion and quoting of Dockerfile words (BuildKit's shell.Lex rules)."""

import pytest

from dockyard.builder.expand import expand, expand_words
from dockyard.errors import InvalidArgument

ENV = {"A": "a", "EMPTY": "", "SP": "x y"}


@pytest.mark.parametrize("word, want", [
    ("$A", "a"), ("${A}", "a"), ("pre${A}post", "preapost"), ("$A-$A", "a-a"),
    ("$MISSING", ""), ("${MISSING:-dflt}", "dflt"), ("${EMPTY:-dflt}", "dflt"), ("${EMPTY-dflt}", ""),
    ("${MISSING-dflt}", "dflt"), ("${A:-dflt}", "a"), ("${A:+alt}", "alt"), ("${EMPTY:+alt}", ""),
    ("${EMPTY+alt}", "alt"), ("${MISSING+alt}", ""), ("${MISSING:-${A}x}", "ax"),
    ("'$A'", "$A"), ('"$A"', "a"), ('"\\$A"', "$A"), ("\\$A", "$A"), ('"a\\b"', "a\\b"), ("a\\ b", "a b"),
    ('"it\'s"', "it's"), ("$", "$"), ("a$", "a$"), ("${A}${A}", "aa"), ('"${SP}"', "x y"),
])
def test_expand(word, want):
    assert expand(word, ENV) == want


def test_backtick_escape():
    assert expand("`$A", ENV, escape="`") == "$A"
    assert expand("C:\\dir", ENV, escape="`") == "C:\\dir"


def test_words_split_unquoted_only():
    assert expand_words("80 $A '$A b' \"x y\"", ENV) == ["80", "a", "$A b", "x y"]
    assert expand_words("  ", ENV) == []


@pytest.mark.parametrize("word", ["${A", "'open", '"open', "${MISSING:?must be set}"])
def test_errors(word):
    with pytest.raises(InvalidArgument):
        expand(word, ENV)


def test_required_message():
    with pytest.raises(InvalidArgument, match="MISSING: must be set"):
        expand("${MISSING:?must be set}", ENV)
    assert expand("${A:?x}", ENV) == "a"
