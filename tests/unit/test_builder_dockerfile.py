"""Parsing a Dockerfile into stages of instructions; what is refused before any step runs."""

import pytest

from dockyard.builder.dockerfile import parse
from dockyard.errors import InvalidArgument


def test_stages_meta_args_and_targets():
    df = parse("ARG V=1\nFROM busybox:$V AS Base\nRUN true\nFROM base\nCOPY --from=base /a /b\n"
               "FROM scratch AS final\nCMD [\"x\"]\n")
    assert [i.original for i in df.meta_args] == ["ARG V=1"]
    assert [(s.index, s.name, s.base) for s in df.stages] == [(0, "base", "busybox:$V"), (1, "", "base"),
                                                              (2, "final", "scratch")]
    assert df.stage_index("BASE") == 0 and df.stage_index("1") == 1 and df.stage_index("nope") is None
    assert len(df.until("base")) == 1 and len(df.until(None)) == 3
    copy = df.stages[1].instructions[1]
    assert copy.cmd == "COPY" and copy.flag("from") == "base" and copy.args == ("/a", "/b")
    cmd = df.stages[2].instructions[1]
    assert cmd.json and cmd.args == ("x",)
    with pytest.raises(InvalidArgument, match="failed to reach build target nope"):
        df.until("nope")


def test_onbuild_and_continuations():
    df = parse("FROM x\nONBUILD RUN echo hi\nRUN echo a \\\n  b\n")
    onbuild = df.stages[0].instructions[1]
    assert onbuild.sub.cmd == "RUN" and onbuild.sub.args == ("echo hi",)
    assert df.stages[0].instructions[2].original.startswith("RUN echo a")


@pytest.mark.parametrize("text, message", [
    ("FROM x\nFOO bar\n", "line 2: unknown instruction: FOO"),
    ("RUN x\n", "no build stage"),
    ("FROM x\nCOPY a\n", "COPY requires at least two arguments"),
    ("FROM x\nCOPY --nope=1 a b\n", "Unknown flag: nope"),
    ("FROM x AS a\nFROM y AS a\n", "duplicate name a"),
    ("FROM x y\n", "FROM requires either one or three arguments"),
    ("FROM x\nONBUILD FROM y\n", "isn't allowed as an ONBUILD trigger"),
    ("FROM x\nSHELL /bin/sh\n", "SHELL requires the arguments to be in JSON form"),
    ("# just a comment\n", "file with no instructions"),
])
def test_refused(text, message):
    with pytest.raises(InvalidArgument, match=message):
        parse(text)


def test_escape_directive():
    assert parse("# escape=`\nFROM x\n").escape == "`"
    with pytest.raises(InvalidArgument):
        parse("# escape=x\nFROM x\n")
