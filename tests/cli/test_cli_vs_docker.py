"""Black-box: the installed `dockyard` and the real docker CLI (28) against the same dockyardd.

Where docker's output is the contract (tables, templates, messages, exit
codes, help), both must print the same bytes, with "docker"/"Docker"
replaced by "dockyard"/"Dockyard" in docker's text. Relative times
("5 seconds ago") can tick between the two runs, so a differing pair is run
again a few times before it counts as a failure.
"""

from __future__ import annotations

import re
import time

import pytest

pytestmark = [pytest.mark.root, pytest.mark.peers]  # the docker CLI (Debian docker.io) is the judge

_WORD = re.compile(r"\bdocker\b(?![.-])")
_TITLE = re.compile(r"\bDocker\b(?![ -]Hub)")


def as_ours(text: str) -> str:
    return _TITLE.sub("Dockyard", _WORD.sub("dockyard", text))


def run_both(engine, args, input=None):
    ours = engine.dockyard(*args, input=input)
    theirs = engine.docker(*args, input=input)
    return ours, theirs


def assert_same(engine, *args, input=None, rename=False, attempts=4):
    """Same stdout, stderr and exit status from both CLIs (docker's text renamed if `rename`)."""
    for attempt in range(attempts):
        ours, theirs = run_both(engine, args, input)
        want_out, want_err = theirs.stdout.decode(), theirs.stderr.decode()
        if rename:
            want_out, want_err = as_ours(want_out), as_ours(want_err)
        got = (ours.returncode, ours.stdout.decode(), ours.stderr.decode())
        want = (theirs.returncode, want_out, want_err)
        if got == want:
            return ours
        if attempt < attempts - 1:
            time.sleep(0.3)
    assert got[0] == want[0], f"exit status for {args}: dockyard {got[0]}, docker {want[0]}\n{got}\n{want}"
    assert got[1] == want[1], f"stdout of {args}"
    assert got[2] == want[2], f"stderr of {args}"
    return ours


@pytest.fixture(scope="module")
def images(engine, busybox_image, busybox_tar):
    """busybox:latest, a second tag, a registry-named tag, and one untagged image."""
    client = engine.client()
    client.image_tag("busybox", "busybox", "second")
    client.image_tag("busybox", "127.0.0.1:5002/apx/img", "v1")
    with open(busybox_tar, "rb") as f:
        dangling = list(client.image_import(f, "-", "", changes=["ENV UNTAGGED=1"]))[0]["status"]
    return {"busybox": busybox_image, "dangling": dangling}


@pytest.mark.parametrize("args", [
    ["images"],
    ["images", "-q"],
    ["images", "-aq", "--no-trunc"],
    ["images", "--digests"],
    ["images", "--no-trunc"],
    ["images", "busybox"],
    ["images", "busybox:second"],
    ["images", "nosuch"],
    ["image", "ls", "--filter", "reference=busy*"],
    ["image", "list", "-f", "dangling=true", "-q"],
    ["images", "--format", "{{.ID}} {{.Repository}}:{{.Tag}} {{.Size}}"],
    ["images", "--format", "json"],
    ["images", "--format", "{{json .}}"],
    ["images", "--format", "table {{.ID}}\\t{{.Repository}}\\t{{.Tag}}"],
    ["images", "--format", "table {{.Repository}}\\t{{.Size}}", "--digests"],
    ["images", "--format", "{{.Repository}}", "-q"],
    ["images", "--format", "{{.CreatedAt}} {{.Containers}} {{.VirtualSize}} {{.SharedSize}} {{.UniqueSize}}"],
])
def test_images_listing(engine, images, args):
    assert_same(engine, *args)


@pytest.mark.parametrize("args", [
    ["images", "--filter", "bogus=1"],
    ["images", "--filter", "dangling=maybe"],
    ["images", "--format", "{{.Nope}}"],
    ["images", "--format", "{{"],
])
def test_images_errors(engine, images, args):
    assert_same(engine, *args)


@pytest.mark.parametrize("args", [
    ["image", "inspect", "busybox"],
    ["image", "inspect", "--format", "json", "busybox"],
    ["image", "inspect", "-f", "{{.Id}} {{.RepoTags}} {{json .Config.Env}} {{.Config.Cmd}} {{.Size}}", "busybox"],
    ["image", "inspect", "-f", "{{index .RepoTags 0}} {{len .RepoTags}} {{upper .Os}}", "busybox"],
    ["image", "inspect", "-f", "{{range .RepoTags}}<{{.}}>{{end}}", "busybox", "127.0.0.1:5002/apx/img:v1"],
    ["image", "inspect", "nosuch"],
    ["image", "inspect", "nosuch", "busybox", "--format", "{{.Id}}"],
    ["image", "inspect", "--format", "{{.Nope}}", "busybox"],
    ["inspect", "busybox"],
    ["inspect", "-f", "{{.Id}}", "busybox"],
    ["inspect", "nosuch"],
    ["inspect", "--type", "image", "nosuch"],
])
def test_inspect(engine, images, args):
    assert_same(engine, *args)


@pytest.mark.parametrize("args", [
    ["history", "busybox"],
    ["history", "-q", "busybox"],
    ["history", "--no-trunc", "busybox"],
    ["history", "-H=false", "busybox"],
    ["history", "--format", "json", "busybox"],
    ["image", "history", "--format", "{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}", "busybox"],
    ["history", "nosuch"],
])
def test_history(engine, images, args):
    assert_same(engine, *args)


def test_tag_and_rmi_outputs(engine, images):
    for cli in (engine.dockyard, engine.docker):
        assert cli("tag", "busybox", "tagged:x").returncode == 0
    assert_same(engine, "images", "tagged")
    ours = engine.dockyard("rmi", "tagged:x")
    assert (ours.returncode, ours.stdout) == (0, b"Untagged: tagged:x\n")
    theirs = engine.docker("rmi", "tagged:x")
    assert (theirs.returncode, theirs.stdout, theirs.stderr) == (1, b"", b"Error response from daemon: "
                                                                         b"No such image: tagged:x\n")
    assert_same(engine, "rmi", "nosuch")
    assert_same(engine, "rmi", "-f", "nosuch")  # reported, but not a failure with --force
    assert_same(engine, "image", "rm", "nosuch", "alsonot")


def test_tag_refuses_a_bad_name_on_the_client(engine, images):
    ours, theirs = run_both(engine, ["tag", "busybox", "BAD NAME"])
    assert ours.returncode == theirs.returncode == 1
    assert ours.stderr.startswith(b'Error parsing reference: "BAD NAME" is not a valid repository/tag: ')
    assert theirs.stderr.startswith(b'Error parsing reference: "BAD NAME" is not a valid repository/tag: ')
    assert_same(engine, "tag", "nosuch", "x:1")


def test_save_load_round_trip_through_both_clis(engine, images, tmp_path):
    ours_tar, theirs_tar = tmp_path / "ours.tar", tmp_path / "theirs.tar"
    assert engine.dockyard("save", "-o", str(ours_tar), "busybox").returncode == 0
    assert engine.docker("save", "-o", str(theirs_tar), "busybox").returncode == 0
    assert ours_tar.stat().st_size > 1_000_000 and theirs_tar.stat().st_size > 1_000_000
    assert_same(engine, "load", "-i", str(ours_tar))
    assert_same(engine, "load", "-q", "-i", str(theirs_tar))
    assert_same(engine, "load", input=ours_tar.read_bytes())
    streamed = engine.dockyard("save", "busybox:latest")
    assert streamed.returncode == 0 and streamed.stdout[:100] == engine.docker("save", "busybox").stdout[:100]
    assert_same(engine, "save", "nosuch")
    assert_same(engine, "load", "-i", str(tmp_path / "missing.tar"))
    assert not list(tmp_path.glob(".*.tmp")), "a save must not leave temporary files"


def test_import_through_both_clis(engine, images, busybox_tar, tmp_path):
    ours = engine.dockyard("import", "-c", 'CMD ["/bin/sh"]', "-c", "ENV A=1", "-m", "hello",
                           str(busybox_tar), "viacli:ours")
    theirs = engine.docker("import", "-c", 'CMD ["/bin/sh"]', "-c", "ENV A=1", "-m", "hello",
                           str(busybox_tar), "viacli:theirs")
    assert ours.returncode == theirs.returncode == 0, (ours.stderr, theirs.stderr)
    assert re.fullmatch(rb"sha256:[0-9a-f]{64}\n", ours.stdout)
    assert re.fullmatch(rb"sha256:[0-9a-f]{64}\n", theirs.stdout)
    piped = engine.dockyard("import", "-", "viacli:stdin", input=busybox_tar.read_bytes())
    assert piped.returncode == 0 and piped.stdout.startswith(b"sha256:")
    fmt = "{{json .Config.Cmd}} {{json .Config.Env}} {{.Comment}}"
    assert_same(engine, "image", "inspect", "-f", fmt, "viacli:ours", "viacli:theirs")
    assert_same(engine, "import", str(tmp_path / "missing.tar"))
    for name in ("viacli:ours", "viacli:theirs", "viacli:stdin"):
        engine.client().image_remove(name)


def test_prune_outputs(engine, images, busybox_tar):
    assert_same(engine, "image", "prune", "-f", "--filter", "label=nothing=here")
    assert_same(engine, "image", "prune", "--filter", "bogus=1", "-f")
    assert_same(engine, "image", "prune", input=b"n\n")
    assert_same(engine, "image", "prune", "-a", input=b"n\n")
    with open(busybox_tar, "rb") as f:
        victim = list(engine.client().image_import(f, "-", "", changes=["ENV PRUNE=me"]))[0]["status"]
    out = engine.dockyard("image", "prune", "-f")
    assert out.returncode == 0
    text = out.stdout.decode()
    assert text.startswith("Deleted Images:\n") and f"deleted: {victim}\n" in text
    assert re.search(r"\n\nTotal reclaimed space: [0-9.]+[kM]?B\n$", text)
    assert images["dangling"] not in {r["Id"] for r in engine.client().images(all=True)}


@pytest.mark.parametrize("args", [
    ["system", "df"],
    ["system", "df", "-v"],
    ["system", "df", "--format", "json"],
    ["system", "df", "--format", "{{.Type}}: {{.TotalCount}} {{.Size}} {{.Reclaimable}}"],
    ["info", "--format", "{{.Images}} {{.Driver}} {{json .Plugins.Volume}} {{.OSType}}"],
    ["version", "--format", "{{.Server.Version}} {{.Server.Os}} {{.Server.APIVersion}} {{.Client.APIVersion}}"],
])
def test_system_commands(engine, images, args):
    assert_same(engine, *args)


def test_info_server_section_matches(engine, images):
    ours, theirs = run_both(engine, ["info"])
    assert ours.returncode == theirs.returncode == 0
    server = lambda text: text.decode().split("Server:\n", 1)[1]  # noqa: E731
    ours_lines = server(ours.stdout).splitlines()
    theirs_lines = server(theirs.stdout).splitlines()
    # docker prints a few lines about components we do not have (containerd, init); ours leaves them
    # out. docker lists runtimes in Go's random map order; ours sorts them.
    # The engine runs with --debug, whose counters change from one call to the next.
    changing = ("Runtimes", "File Descriptors", "Goroutines", "Threads", "System Time", "EventsListeners")
    skipped = ("Init Binary", "containerd version", "runc version", "init version", "Docker Root Dir", *changing)
    assert [line for line in theirs_lines if not line.strip().startswith(skipped)] == \
        [line for line in ours_lines if not line.strip().startswith(("Dockyard Root Dir", *changing))]


def test_events_with_bounds_filters_and_formats(engine, images):
    since = f"{time.time():.3f}"
    engine.client().image_tag("busybox", "evcli", "1")
    engine.client().image_remove("evcli:1")
    until = f"{time.time() + 0.5:.3f}"
    for args in (["events", "--since", since, "--until", until],
                 ["events", "--since", since, "--until", until, "--filter", "event=untag"],
                 ["events", "--since", since, "--until", until, "--format", "{{.Type}} {{.Action}} {{.ID}} "
                  "{{.Status}} {{.Actor.Attributes.name}} {{.TimeNano}}"],
                 ["events", "--since", since, "--until", until, "--format", "json"],
                 ["events", "--since", since, "--until", until, "--format", "{{json .}}"],
                 ["events", "--since", since, "--until", until, "--format", "{{json .Actor}} {{.Actor.ID}}"],
                 ["system", "events", "--since", since, "--until", until, "-f", "type=container"],
                 ["events", "--since", "bogus"]):
        out = assert_same(engine, *args)
    lines = engine.dockyard("events", "--since", since, "--until", until).stdout.decode().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        f"image tag {images['busybox']} (name=evcli:1)", f"image untag {images['busybox']} (name=evcli:1)"]
    del out


@pytest.mark.parametrize("args", [
    ["images", "--bogus"],
    ["images", "a", "b"],
    ["rmi"],
    ["rmi", "-q", "x"],
    ["tag", "a"],
    ["save"],
    ["load", "extra"],
    ["import"],
    ["history"],
    ["version", "extra"],
    ["info", "x"],
    ["image", "ls", "--filter", "nonsense"],
    ["image", "inspect"],
    ["images", "--format"],
    ["foo"],
    ["image", "foo"],
    ["--bogus"],
])
def test_usage_errors(engine, args):
    ours, theirs = run_both(engine, args)
    want = as_ours(theirs.stderr.decode())
    # docker 28 mangles one footer ("SRun 'docker images --help'"); the intended text is "Run".
    want = want.replace("\n\nSRun '", "\n\nRun '")
    assert (ours.returncode, ours.stdout.decode(), ours.stderr.decode()) == (theirs.returncode, "", want)


@pytest.mark.parametrize("args", [
    ["images", "--help"], ["image", "ls", "--help"], ["image", "inspect", "--help"], ["rmi", "--help"],
    ["image", "rm", "--help"], ["tag", "--help"], ["history", "--help"], ["image", "prune", "--help"],
    ["import", "--help"], ["save", "--help"], ["load", "--help"], ["image", "load", "--help"],
    ["events", "--help"], ["system", "df", "--help"], ["info", "--help"], ["version", "--help"],
])
def test_help(engine, args):
    assert_same(engine, *args, rename=True)


def test_management_command_listing(engine):
    ours = engine.dockyard("image")
    assert ours.returncode == 0 and ours.stdout == b""
    listed = [line.split()[0] for line in ours.stderr.decode().split("Commands:\n")[1].split("\n\n")[0].splitlines()]
    assert listed == ["build", "history", "import", "inspect", "load", "ls", "prune", "pull", "push", "rm", "save",
                      "tag"]
    assert engine.dockyard("image", "--help").stdout.startswith(b"Usage:  dockyard image COMMAND\n")
