"""The build context: unpacking, source paths that must stay inside it, checksums and cache keys."""

import gzip
import io
import os
import tarfile

import pytest

from dockyard.builder.cache import BuildCache, cache_key
from dockyard.builder.context import BuildContext, checksum, clean_source, scoped_path, within_root
from dockyard.errors import InvalidArgument, NotFound


def _tar(entries, compress=False) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, value in entries:
            info = tarfile.TarInfo(name)
            if isinstance(value, tuple):
                info.type, info.linkname = value
                tar.addfile(info)
            elif value is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size = len(value)
                info.mode = 0o640
                tar.addfile(info, io.BytesIO(value))
    data = buf.getvalue()
    return io.BytesIO(gzip.compress(data) if compress else data)


@pytest.mark.parametrize("compress", [False, True])
def test_unpack_plain_and_gzip(tmp_path, compress):
    stream = _tar([("Dockerfile", b"FROM x\n"), ("dir", None), ("dir/a", b"A"),
                   ("link", (tarfile.SYMTYPE, "dir/a")), ("hard", (tarfile.LNKTYPE, "dir/a"))], compress)
    with BuildContext.from_tar(stream, str(tmp_path)) as ctx:
        assert ctx.read_file("Dockerfile") == b"FROM x\n"
        assert ctx.read_file("missing") is None
        assert open(ctx.resolve("link")).read() == "A"
        assert os.stat(ctx.resolve("dir/a")).st_mode & 0o777 == 0o640
        assert ctx.sources("/dir/a") == [os.path.join(ctx.root, "dir/a")]
        assert sorted(os.path.basename(p) for p in ctx.sources("d*")) == ["dir"]
        with pytest.raises(NotFound):
            ctx.sources("nothing")
        root = ctx.root
    assert not os.path.exists(root)


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/../x", "/abs/../../x"])
def test_tar_members_outside_are_refused(tmp_path, name):
    with pytest.raises(InvalidArgument, match="Forbidden path outside the build context"):
        BuildContext.from_tar(_tar([(name, b"x")]), str(tmp_path))
    assert os.listdir(tmp_path) == []


def test_hard_link_outside_is_refused(tmp_path):
    with pytest.raises(InvalidArgument):
        BuildContext.from_tar(_tar([("h", (tarfile.LNKTYPE, "../../etc/passwd"))]), str(tmp_path))


def test_sources_stay_inside(tmp_path):
    root = tmp_path / "ctx"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f").write_text("f")
    os.symlink("/etc/passwd", root / "abs")
    os.symlink("../../../../etc", root / "up")
    os.symlink("d/f", root / "inside")
    os.symlink("../d", root / "d" / "back")
    ctx = BuildContext(str(root))
    assert ctx.resolve("inside") == str(root / "d" / "f")
    assert ctx.resolve("d/back/f") == str(root / "d" / "f")
    assert ctx.resolve("/d/f") == str(root / "d" / "f")  # absolute: from the context's root
    for bad in ("abs", "up/passwd", "../etc/passwd", "d/../../x"):
        with pytest.raises(InvalidArgument, match="Forbidden path outside the build context"):
            ctx.sources(bad)
    assert clean_source("a/./b/") == "/a/b"


def test_destinations_are_clamped_to_the_image_root(tmp_path):
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    os.symlink("/etc", root / "abs")
    os.symlink("../../../..", root / "up")
    assert within_root(str(root), "/abs/passwd") == str(root / "etc" / "passwd")
    assert within_root(str(root), "up/up/x") == str(root / "x")
    assert within_root(str(root), "../../x") == str(root / "x")
    assert scoped_path(str(root), "etc") == str(root / "etc")


def test_checksum_follows_content_and_modes(tmp_path):
    (tmp_path / "a").write_text("one")
    first = checksum([str(tmp_path / "a")])
    assert checksum([str(tmp_path / "a")]) == first
    (tmp_path / "a").write_text("two")
    second = checksum([str(tmp_path / "a")])
    assert second != first
    os.chmod(tmp_path / "a", 0o600)
    assert checksum([str(tmp_path / "a")]) != second


def test_cache_keys_and_store(tmp_path):
    k1 = cache_key("sha256:p", "/bin/sh -c echo", b"{}")
    assert k1 == cache_key("sha256:p", "/bin/sh -c echo", b"{}")
    assert k1 != cache_key("sha256:q", "/bin/sh -c echo", b"{}")
    assert k1 != cache_key("sha256:p", "/bin/sh -c echo2", b"{}")
    assert k1 != cache_key("sha256:p", "/bin/sh -c echo", b"{\"Env\":[]}")
    assert cache_key("a", "bc") != cache_key("ab", "c")
    cache = BuildCache(str(tmp_path / "cache"))
    assert cache.get(k1) is None
    cache.put(k1, "sha256:img")
    assert cache.get(k1) == "sha256:img"


def test_a_tar_without_its_end_blocks_is_read_whole(tmp_path):
    # the docker CLI's -f outside the context appends a member without padding or end-of-archive blocks
    data = _tar([("Dockerfile", b"FROM x\n"), (".dockerignore", b".dockerignore\nDockerfile\n")]).getvalue()
    end = 512 + 512 + 512 + len(b".dockerignore\nDockerfile\n")
    with BuildContext.from_tar(io.BytesIO(data[:end]), str(tmp_path)) as ctx:
        assert ctx.read_file(".dockerignore") == b".dockerignore\nDockerfile\n"
        ctx.drop_build_files("Dockerfile")
        assert sorted(os.listdir(ctx.root)) == []


def test_drop_build_files_only_when_listed(tmp_path):
    root = tmp_path / "ctx"
    root.mkdir()
    (root / "Dockerfile").write_text("FROM x\n")
    (root / ".dockerignore").write_text("*.log\n!Dockerfile\n")
    (root / "a.log").write_text("x")
    BuildContext(str(root)).drop_build_files("Dockerfile")
    assert sorted(os.listdir(root)) == [".dockerignore", "Dockerfile", "a.log"]  # only those two may go
