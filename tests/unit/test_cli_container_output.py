"""Container output: ps rows, stats arithmetic and table, stream framing, detach keys, cp naming.

Expected strings were captured from docker CLI 28.2.2.
"""

from __future__ import annotations

import os
import socket

import pytest

from dockyard.cli import cp, stats
from dockyard.cli.container import _ports_column, container_context, ellipsis, go_quote, truncate_id
from dockyard.cli.format import Formatter
from dockyard.cli.stream import Demultiplexer, Detached, EscapeWatch, StreamError, pump
from dockyard.client.api import Hijacked

NOW = 1_800_000_000.0
SUMMARY = {
    "Id": "148e3ba423e9" + "0" * 52, "Names": ["/fmtx"], "Image": "bb", "ImageID": "sha256:4038acde109e" + "1" * 52,
    "Command": "sleep 100", "Created": int(NOW) - 125, "Ports": [], "Labels": {"b": "2", "a": "1"},
    "State": "running", "Status": "Up 2 minutes", "HostConfig": {"NetworkMode": "none"},
    "NetworkSettings": {"Networks": {"none": {}}}, "Mounts": [],
}


def render(fmt, rows, size=False):
    from dockyard.cli.container import PS_HEADERS, PS_TABLE

    table = PS_TABLE + ("\t{{.Size}}" if size else "")
    return Formatter(fmt or "table " + table, PS_TABLE, PS_HEADERS).render(rows)


def test_ps_default_table():
    row = container_context(SUMMARY, True, NOW)
    assert render("", [row]) == (
        "CONTAINER ID   IMAGE     COMMAND       CREATED         STATUS         PORTS     NAMES\n"
        '148e3ba423e9   bb        "sleep 100"   2 minutes ago   Up 2 minutes             fmtx\n')
    assert render("", []) == "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n"


def test_ps_json_row_matches_docker():
    row = container_context(SUMMARY, True, NOW)
    text = render("{{json .}}", [row])
    assert text.startswith('{"Command":"\\"sleep 100\\"","CreatedAt":"')
    assert '"ID":"148e3ba423e9","Image":"bb","Labels":"a=1,b=2","LocalVolumes":"0","Mounts":"","Names":"fmtx",' \
           '"Networks":"none","Platform":null,"Ports":"","RunningFor":"2 minutes ago","Size":"0B",' \
           '"State":"running","Status":"Up 2 minutes"}\n' in text


def test_ps_label_method_and_its_header():
    row = container_context(SUMMARY, True, NOW)
    assert render('{{.Label "a"}}|{{.Labels}}|{{.Label "none"}}', [row]) == "1|a=1,b=2|\n"
    labelled = container_context(dict(SUMMARY, Labels={"com.x-y_z": "v"}), True, NOW)
    assert render('table {{.Label "com.x-y_z"}}\t{{.ID}}', [labelled]) == (
        "x y z     CONTAINER ID\nv         148e3ba423e9\n")


def test_ps_sizes_and_no_trunc():
    summary = dict(SUMMARY, SizeRw=5, SizeRootFs=1_985_566, Command="sh -c 'a very long command line here'")
    row = container_context(summary, True, NOW)
    assert row.fields["Size"] == "5B (virtual 1.99MB)"
    assert row.fields["Command"] == '"sh -c \'a very long …"'
    full = container_context(summary, False, NOW)
    assert full.fields["ID"] == summary["Id"]
    assert full.fields["Command"] == '"sh -c \'a very long command line here\'"'


def test_ps_image_column():
    assert container_context(dict(SUMMARY, Image="docker.io/library/bb:1"), True, NOW).fields["Image"] == "bb:1"
    assert container_context(dict(SUMMARY, Image="bb@sha256:" + "a" * 64), True, NOW).fields["Image"] == "bb"
    by_id = dict(SUMMARY, Image=SUMMARY["ImageID"])
    assert container_context(by_id, True, NOW).fields["Image"] == "4038acde109e"
    assert container_context(dict(SUMMARY, Image=""), True, NOW).fields["Image"] == "<no image>"


def test_ports_column_groups_ranges_like_docker():
    ports = [
        {"PrivatePort": 80, "Type": "tcp"}, {"PrivatePort": 81, "Type": "tcp"}, {"PrivatePort": 53, "Type": "udp"},
        {"IP": "0.0.0.0", "PrivatePort": 8080, "PublicPort": 8080, "Type": "tcp"},
        {"IP": "0.0.0.0", "PrivatePort": 9000, "PublicPort": 9999, "Type": "tcp"},
        {"IP": "::", "PrivatePort": 9000, "PublicPort": 9999, "Type": "tcp"},
    ]
    assert _ports_column(ports) == ("53/udp, 80-81/tcp, 0.0.0.0:8080->8080/tcp, 0.0.0.0:9999->9000/tcp, "
                                    "[::]:9999->9000/tcp")
    assert _ports_column([]) == ""


def test_go_quote_and_ellipsis():
    assert go_quote('say "hi"\n\tend\\') == '"say \\"hi\\"\\n\\tend\\\\"'
    assert go_quote("\x01é") == '"\\x01é"'
    assert ellipsis("12345678901234567890", 20) == "12345678901234567890"
    assert ellipsis("123456789012345678901", 20) == "1234567890123456789…"
    assert truncate_id("sha256:" + "ab" * 32) == "abababababab"


# --- stats -----------------------------------------------------------------------------------------

SAMPLE_V1 = {
    "read": "2026-11-27T20:43:29.102376672Z", "name": "/web", "id": "f91e7b85" + "0" * 56,
    "pids_stats": {"current": 3},
    "blkio_stats": {"io_service_bytes_recursive": [
        {"major": 8, "minor": 0, "op": "Read", "value": 4096}, {"major": 8, "minor": 0, "op": "Write", "value": 8192},
        {"major": 8, "minor": 0, "op": "Sync", "value": 1}, {"major": 8, "minor": 0, "op": "Total", "value": 12288}]},
    "cpu_stats": {"cpu_usage": {"total_usage": 300_000_000, "percpu_usage": [1, 2]},
                  "system_cpu_usage": 4_000_000_000, "online_cpus": 2},
    "precpu_stats": {"cpu_usage": {"total_usage": 100_000_000}, "system_cpu_usage": 2_000_000_000,
                     "online_cpus": 2},
    "memory_stats": {"usage": 10 << 20, "stats": {"total_inactive_file": 2 << 20, "cache": 4 << 20},
                     "limit": 100 << 20},
    "networks": {"eth0": {"rx_bytes": 2722, "tx_bytes": 728}, "eth1": {"rx_bytes": 1000, "tx_bytes": 0}},
}


def test_stats_arithmetic():
    assert stats.cpu_percent(SAMPLE_V1) == pytest.approx(20.0)  # 0.2e9 / 2e9 * 2 CPUs * 100
    assert stats.memory_usage(SAMPLE_V1["memory_stats"]) == 8 << 20
    assert stats.memory_usage({"usage": 10, "stats": {"inactive_file": 4}}) == 6  # cgroup v2
    assert stats.memory_usage({"usage": 10, "stats": {"inactive_file": 40}}) == 10
    assert stats.memory_percent(100.0, 8.0) == 8.0
    assert stats.memory_percent(0, 8.0) == 0.0
    assert stats.block_io(SAMPLE_V1["blkio_stats"]) == (4096, 8192)
    assert stats.network_io(SAMPLE_V1["networks"]) == (3722.0, 728.0)


def test_stats_cpu_falls_back_to_percpu_and_ignores_no_progress():
    sample = {"cpu_stats": {"cpu_usage": {"total_usage": 200, "percpu_usage": [1, 2, 3, 4]},
                            "system_cpu_usage": 2000},
              "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000}}
    assert stats.cpu_percent(sample) == pytest.approx(40.0)
    sample["cpu_stats"]["system_cpu_usage"] = 1000
    assert stats.cpu_percent(sample) == 0.0


def test_stats_table():
    entry = stats.Entry("web")
    entry.update(SAMPLE_V1)
    fmt = Formatter("table", stats.STATS_TABLE, stats.STATS_HEADERS)
    assert fmt.render([entry.context(True)]) == (
        "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O         BLOCK I/O        PIDS\n"
        "f91e7b850000   web       20.00%    8MiB / 100MiB       8.00%     3.72kB / 728B   4.1kB / 8.19kB   3\n")
    entry.fail("timeout waiting for stats", reset=True)
    row = entry.context(True).fields
    assert (row["CPUPerc"], row["MemUsage"], row["MemPerc"], row["NetIO"], row["BlockIO"], row["PIDs"]) == (
        "--", "-- / --", "--", "--", "--", "--")
    assert row["Name"] == "web"
    assert stats.Entry("x").context(True).fields["Name"] == "--"


# --- hijacked streams ------------------------------------------------------------------------------


def frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


def test_demultiplexer_splits_frames_across_reads():
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    demux = Demultiplexer(out_w, err_w)
    data = frame(1, b"out1\n") + frame(2, b"err1\n") + frame(1, b"tail")
    for i in range(0, len(data), 3):
        demux.feed(data[i:i + 3])
    os.close(out_w)
    os.close(err_w)
    assert os.read(out_r, 100) == b"out1\ntail"
    assert os.read(err_r, 100) == b"err1\n"
    with pytest.raises(StreamError, match="Unrecognized input header: 9"):
        Demultiplexer(1, 2).feed(frame(9, b"x"))
    with pytest.raises(StreamError, match="boom"):
        Demultiplexer(1, 2).feed(frame(3, b"boom"))


def test_escape_watch():
    watch = EscapeWatch(b"\x10\x11")
    assert watch.filter(b"ab") == b"ab"
    assert watch.filter(b"\x10") == b""
    assert watch.filter(b"x") == b"\x10x"  # a broken sequence is sent on
    assert watch.filter(b"\x10\x10") == b"\x10"
    with pytest.raises(Detached):
        watch.filter(b"\x11")
    with pytest.raises(Detached):
        EscapeWatch(b"\x10\x11").filter(b"abc\x10\x11rest")


def test_pump_forwards_stdin_with_half_close_and_demultiplexes():
    ours, engine = socket.socketpair()
    stdin_r, stdin_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    os.write(stdin_w, b"hello\n")
    os.close(stdin_w)
    engine.sendall(frame(1, b"early-"))
    import threading

    received = bytearray()

    def engine_side():
        while True:
            data = engine.recv(100)
            if not data:  # our half-close: stdin is over
                break
            received.extend(data)
        engine.sendall(frame(1, b"got " + bytes(received)) + frame(2, b"bye\n"))
        engine.close()

    thread = threading.Thread(target=engine_side)
    thread.start()
    pump(Hijacked(ours, frame(1, b"")), tty=False, stdin_fd=stdin_r, out_fd=out_w, err_fd=err_w)
    thread.join(5)
    ours.close()
    for fd in (stdin_r, out_w, err_w):
        os.close(fd)
    assert received == b"hello\n"
    assert os.read(out_r, 100) == b"early-got hello\n"
    assert os.read(err_r, 100) == b"bye\n"


def test_pump_without_stdin_shuts_the_write_side_at_once():
    ours, engine = socket.socketpair()
    engine.sendall(b"raw tty bytes\r\n")
    out_r, out_w = os.pipe()
    import threading

    def engine_side():
        assert engine.recv(10) == b""  # the client's write side is shut
        engine.close()

    thread = threading.Thread(target=engine_side)
    thread.start()
    pump(Hijacked(ours, b""), tty=True, stdin_fd=None, out_fd=out_w)
    thread.join(5)
    os.close(out_w)
    assert os.read(out_r, 100) == b"raw tty bytes\r\n"


# --- cp naming -------------------------------------------------------------------------------------


def test_cp_argument_split():
    assert cp.split_cp_arg("web:/tmp/x") == ("web", "/tmp/x")
    assert cp.split_cp_arg("/abs:path") == ("", "/abs:path")
    assert cp.split_cp_arg("./rel:path") == ("", "./rel:path")
    assert cp.split_cp_arg("file.txt") == ("", "file.txt")


def test_cp_path_helpers():
    assert cp.split_dir_entry("/a/b/") == ("/a", "b")
    assert cp.split_dir_entry("/a/b/.") == ("/a/b", ".")
    assert cp.split_dir_entry("b") == (".", "b")
    assert cp.preserve_trailing("/abs/dir", "dir/.") == "/abs/dir/."
    assert cp.preserve_trailing("/abs/dir", "dir/") == "/abs/dir/"
    assert cp.rebase_name("/x/link", "/x/target") == ("/x/target", "link")


@pytest.mark.parametrize(("src", "dst", "result"), [
    # file -> missing name: renamed inside the parent
    (cp.CopyInfo("/s/f.txt"), cp.CopyInfo("/d/new.txt"), ("/d", ("f.txt", "new.txt"))),
    # file -> existing directory: lands there under its own name
    (cp.CopyInfo("/s/f.txt"), cp.CopyInfo("/d", True, True), ("/d", None)),
    # file -> existing file: replaces it
    (cp.CopyInfo("/s/f.txt"), cp.CopyInfo("/d/old", True, False), ("/d", ("f.txt", "old"))),
    # directory -> missing name: created with that name
    (cp.CopyInfo("/s/dir", True, True), cp.CopyInfo("/d/new"), ("/d", ("dir", "new"))),
    # directory contents -> existing directory
    (cp.CopyInfo("/s/dir/.", True, True), cp.CopyInfo("/d", True, True), ("/d", None)),
])
def test_cp_naming_rules(src, dst, result):
    assert cp.prepare_names(src, dst) == result


def test_cp_naming_errors():
    from dockyard.cli.main import CliError

    with pytest.raises(CliError, match="^cannot copy directory$"):
        cp.prepare_names(cp.CopyInfo("/s/dir", True, True), cp.CopyInfo("/d/file", True, False))
    with pytest.raises(CliError, match="^no such directory$"):
        cp.prepare_names(cp.CopyInfo("/s/f", True, False), cp.CopyInfo("/d/newdir/"))


def test_cp_entry_renaming():
    assert cp.rename_entry("dir/a/b", ("dir", "new")) == "new/a/b"
    assert cp.rename_entry("dir", ("dir", "new")) == "new"
    assert cp.rename_entry("dirx/a", ("dir", "new")) == "dirx/a"
    assert cp.rename_entry("./a.txt", (".", "new")) == "new/a.txt"
    assert cp.rename_entry("./", (".", "new")) == "new"
    assert cp.rename_entry("f.txt", None) == "f.txt"


def test_untar_refuses_escapes_and_keeps_our_ownership(tmp_path):
    import io
    import tarfile

    from dockyard.cli.main import CliError

    def archive(*members):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.uid = info.gid = 4321
                info.mode = 0o4755
                tar.addfile(info, io.BytesIO(data))
        buf.seek(0)
        return buf

    dest = tmp_path / "dest"
    dest.mkdir()
    cp.untar(archive(("f.txt", b"data")), str(dest), ("f.txt", "renamed"))
    st = (dest / "renamed").stat()
    assert (dest / "renamed").read_bytes() == b"data"
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
    assert st.st_mode & 0o7777 == 0o4755  # docker keeps modes as archived
    with pytest.raises(CliError, match="refusing to copy"):
        cp.untar(archive(("../escape", b"x")), str(dest), None)
    assert not (tmp_path / "escape").exists()
    (dest / "adir").mkdir()
    with pytest.raises(CliError, match="cannot overwrite directory"):
        cp.untar(archive(("adir", b"x")), str(dest), None)


def test_pump_reports_a_reset_stream_as_docker_does():
    ours, engine = socket.socketpair()
    stdin_r, stdin_w = os.pipe()
    os.write(stdin_w, b"x" * 1000)
    os.close(stdin_w)
    import threading

    def engine_side():
        import time

        time.sleep(0.2)  # our stdin sits unread in the engine's queue: closing now resets the stream
        engine.close()

    thread = threading.Thread(target=engine_side)
    thread.start()
    with pytest.raises(StreamError, match="^read unix @->: read: connection reset by peer$"):
        pump(Hijacked(ours, b""), tty=False, stdin_fd=stdin_r)
    thread.join(5)
    ours.close()
    os.close(stdin_r)
