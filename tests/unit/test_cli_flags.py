"""Flag parsing and usage errors, worded and numbered as docker's (captured from CLI 28)."""

from __future__ import annotations

import pytest

from dockyard.cli.flags import HelpRequested, UsageError
from dockyard.cli.image import LS, RM, TAG
from dockyard.cli.system import EVENTS, VERSION_CMD, parse_timestamp


def test_combined_shorthands_values_and_interspersed_arguments():
    opts, args = LS.parse(["-aq", "bb", "--filter", "dangling=true", "-freference=x*", "--format={{.ID}}"])
    assert opts["all"] and opts["quiet"]
    assert opts["filter"] == ["dangling=true", "reference=x*"]
    assert opts["format"] == "{{.ID}}"
    assert args == ["bb"]
    opts, args = LS.parse(["--all=false", "--", "-notaflag"])
    assert opts["all"] is False and args == ["-notaflag"]


def test_unknown_flag_is_exit_125_with_docker_wording():
    LS.path = ("images",)
    with pytest.raises(UsageError) as exc:
        LS.parse(["--bogus"])
    assert exc.value.exit_code == 125
    assert exc.value.render() == ("unknown flag: --bogus\n\nUsage:  dockyard images [OPTIONS] [REPOSITORY[:TAG]]\n\n"
                                  "Run 'dockyard images --help' for more information\n")
    RM.path = ("rmi",)
    with pytest.raises(UsageError) as exc:
        RM.parse(["-q", "x"])
    assert exc.value.message == "unknown shorthand flag: 'q' in -q"
    with pytest.raises(UsageError, match="flag needs an argument: --format"):
        LS.parse(["--format"])
    with pytest.raises(UsageError, match='invalid argument "x" for "-a, --all" flag'):
        LS.parse(["--all=x"])


def test_argument_counts_are_exit_1_with_docker_wording():
    RM.path = ("rmi",)
    with pytest.raises(UsageError) as exc:
        RM.parse([])
    assert exc.value.exit_code == 1
    assert exc.value.render() == ("dockyard: 'dockyard rmi' requires at least 1 argument\n\n"
                                  "Usage:  dockyard rmi [OPTIONS] IMAGE [IMAGE...]\n\n"
                                  "See 'dockyard rmi --help' for more information\n")
    TAG.path = ("tag",)
    with pytest.raises(UsageError, match="'dockyard tag' requires 2 arguments"):
        TAG.parse(["a"])
    LS.path = ("images",)
    with pytest.raises(UsageError, match="requires at most 1 argument"):
        LS.parse(["a", "b"])
    VERSION_CMD.path = ("version",)
    with pytest.raises(UsageError, match="'dockyard version' accepts no arguments"):
        VERSION_CMD.parse(["x"])


def test_help_layout_matches_pflag():
    LS.path = ("image", "ls")
    with pytest.raises(HelpRequested):
        LS.parse(["-a", "--help"])
    text = LS.help()
    assert text.startswith("Usage:  dockyard image ls [OPTIONS] [REPOSITORY[:TAG]]\n\nList images\n\nAliases:\n"
                           "  dockyard image ls, dockyard image list, dockyard images\n\nOptions:\n"
                           "  -a, --all             Show all images (default hides intermediate images)\n"
                           "      --digests         Show digests\n"
                           "  -f, --filter filter   Filter output based on conditions provided\n"
                           "      --format string   Format output using a custom template:\n"
                           "                        'table':            Print output in table format\n")
    assert text.endswith("  -q, --quiet           Only show image IDs\n")


def test_event_timestamps():
    now = 1_000_000.0
    # relative times go out as whole seconds, as the docker CLI sends them (since=1795818707)
    assert parse_timestamp("10s", now) == "999990"
    assert parse_timestamp("1h30m", now) == str(int(now - 5400))
    assert parse_timestamp("1795812276", now) == "1795812276"
    assert parse_timestamp("1795812276.5", now) == "1795812276.5"
    assert parse_timestamp("1970-01-02T00:00:00Z", now) == "86400.000000000"
    from dockyard.cli.main import CliError

    with pytest.raises(CliError, match='failed to parse value as time or duration: "bogus"'):
        parse_timestamp("bogus", now)
    EVENTS.path = ("events",)
    opts, _ = EVENTS.parse(["--since", "1h", "-f", "type=image"])
    assert opts["since"] == "1h" and opts["filter"] == ["type=image"]
