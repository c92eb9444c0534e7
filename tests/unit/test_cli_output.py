"""CLI output helpers against outputs captured from the real docker CLI 28."""

from __future__ import annotations

import pytest

from dockyard.cli.format import Formatter, human_duration, human_size, parse_rfc3339, tabwrite
from dockyard.cli.image import image_rows, short_id
from dockyard.cli.template import Context, Template, TemplateError


@pytest.mark.parametrize(("size", "precision", "text"), [
    (1985566, 3, "1.99MB"), (1985566, 4, "1.986MB"), (0, 3, "0B"), (999, 3, "999B"), (1000, 3, "1kB"),
    (123456, 3, "123kB"), (999_900, 3, "1e+03kB"), (5_200_000, 3, "5.2MB"), (2 * 10**9, 3, "2GB"),
])
def test_human_size_matches_go_units(size, precision, text):
    assert human_size(size, precision) == text


@pytest.mark.parametrize(("seconds", "text"), [
    (0.4, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
    (119, "About a minute"), (120, "2 minutes"), (59 * 60, "59 minutes"), (3600, "About an hour"),
    (2 * 3600, "2 hours"), (47 * 3600, "47 hours"), (48 * 3600, "2 days"), (13 * 86400, "13 days"),
    (14 * 86400, "2 weeks"), (59 * 86400, "8 weeks"), (60 * 86400, "2 months"), (800 * 86400, "2 years"),
])
def test_human_duration_matches_go_units(seconds, text):
    assert human_duration(seconds) == text


def test_tabwriter_matches_docker_images_tables():
    header = "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE"
    assert tabwrite([header]) == "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n"
    assert tabwrite([header, "bb\tlatest\t6a1b8910611b\t4 minutes ago\t1.99MB"]) == (
        "REPOSITORY   TAG       IMAGE ID       CREATED         SIZE\n"
        "bb           latest    6a1b8910611b   4 minutes ago   1.99MB\n")


def test_tabwriter_matches_docker_version_layout():
    out = tabwrite(["Client:", " Version:\t28.2.2", " API version:\t1.41", "", "Server:", "  Version:\t20.10"],
                   20, 1)
    assert out == ("Client:\n Version:           28.2.2\n API version:       1.41\n\nServer:\n"
                   "  Version:          20.10\n")


def test_image_rows_expand_tags_and_digests_like_docker():
    image = {"Id": "sha256:" + "a" * 64, "RepoTags": ["bb:latest", "bb:1", "127.0.0.1:5000/x/y:v1"],
             "RepoDigests": ["127.0.0.1:5000/x/y@sha256:" + "d" * 64, "z@sha256:" + "e" * 64]}
    assert image_rows(image, False) == [("bb", "latest", "<none>"), ("bb", "1", "<none>"),
                                        ("127.0.0.1:5000/x/y", "v1", "<none>"), ("z", "<none>", "")]
    assert image_rows(image, True)[2:] == [("127.0.0.1:5000/x/y", "v1", "sha256:" + "d" * 64),
                                           ("z", "<none>", "sha256:" + "e" * 64)]
    assert image_rows({"Id": "x", "RepoTags": ["<none>:<none>"], "RepoDigests": ["<none>@<none>"]}, False) == \
        [("<none>", "<none>", "<none>")]
    assert short_id("sha256:" + "ab" * 32) == "abababababab"


def test_formatter_table_json_and_raw():
    row = Context({"ID": "6a1b8910611b", "Repository": "bb", "Digest": "<none>"})
    headers = {"ID": "IMAGE ID", "Repository": "REPOSITORY", "Digest": "DIGEST"}
    table = Formatter("table {{.ID}}\\t{{.Repository}}", "", headers).render([row])
    assert table == "IMAGE ID       REPOSITORY\n6a1b8910611b   bb\n"
    assert Formatter("json", "", headers).render([row]) == \
        '{"Digest":"\\u003cnone\\u003e","ID":"6a1b8910611b","Repository":"bb"}\n'
    assert Formatter("{{.Repository}}:{{.ID}}", "", headers).render([row, row]) == \
        "bb:6a1b8910611b\nbb:6a1b8910611b\n"
    assert Formatter("", "{{.ID}}", headers, "{{.ID}}", quiet=True).render([row]) == "6a1b8910611b\n"


DATA = {"Id": "sha256:abc", "RepoTags": ["bb:latest", "x:1"], "Os": "linux", "Size": 1985566,
        "Config": {"Cmd": None, "Env": ["A=1"], "Labels": {"b": "2", "a": "1"}}}


@pytest.mark.parametrize(("source", "text"), [
    ("{{.Id}} {{.RepoTags}} {{.Config.Cmd}} {{json .Config.Env}} {{.Size}}",
     "sha256:abc [bb:latest x:1] <no value> [\"A=1\"] 1985566"),
    ("{{index .RepoTags 0}} {{len .RepoTags}} {{upper .Os}} {{range .RepoTags}}<{{.}}>{{end}}",
     "bb:latest 2 LINUX <bb:latest><x:1>"),
    ('{{.Os | printf "%q"}}', '"linux"'),
    ('{{if eq .Os "linux"}}L{{else if eq .Os "x"}}X{{else}}O{{end}}', "L"),
    ('{{if eq .Os "x"}}L{{else if eq .Os "linux"}}X{{else}}O{{end}}', "X"),
    ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}", "a=1;b=2;"),
    ("{{- .Os -}}   {{.Os}}", "linuxlinux"),
    ("{{with .Config}}{{.Env}}{{end}}", "[A=1]"),
    ("{{.Config.Labels}}", "map[a:1 b:2]"),
    ('{{join .RepoTags ","}}', "bb:latest,x:1"),
    ('{{or .Config.Cmd "none"}}', "none"),
    ("{{/* comment */}}x", "x"),
    ("{{range .Config.Cmd}}x{{else}}empty{{end}}", "empty"),
])
def test_templates(source, text):
    assert Template(source).execute(DATA) == text


@pytest.mark.parametrize(("source", "error"), [
    ("{{.Nope}}", 'template: :1:2: executing "" at <.Nope>: map has no entry for key "Nope"'),
    ("{{.Config.Nope.Deeper}}", 'template: :1:9: executing "" at <.Config.Nope.Deeper>: '
                                'map has no entry for key "Nope"'),
    ("{{", "template: :1: unclosed action"),
    ("{{nosuchfunc .Os}}", 'function "nosuchfunc" not defined'),
    ("{{if .Os}}x", "unexpected EOF"),
])
def test_template_errors(source, error):
    with pytest.raises(TemplateError) as exc:
        Template(source).execute(DATA)
    assert error in str(exc.value)


def test_unknown_field_of_a_context_is_an_error_like_a_go_struct():
    ctx = Context({"ID": "x"})
    ctx.type_name = "*formatter.imageContext"
    with pytest.raises(TemplateError, match=r"can't evaluate field Nope in type \*formatter.imageContext"):
        Template("{{.Nope}}").execute(ctx)


def test_parse_rfc3339():
    assert parse_rfc3339("1970-01-01T00:00:10Z") == 10
    assert parse_rfc3339("1970-01-01T01:00:10+01:00") == 10
    assert parse_rfc3339("1970-01-01T00:00:10.5Z") == 10.5
    assert parse_rfc3339("0001-01-01T00:00:00Z") == 0
