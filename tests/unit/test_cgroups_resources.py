"""Pure cgroup rules: resource checks, v1 -> v2 conversions, the device model, stats parsers."""

from __future__ import annotations

import pytest

from dockyard.cgroups import files, resources, stats
from dockyard.cgroups.resources import MKNOD, READ, WRITE, DeviceState
from dockyard.errors import InvalidArgument

# --- conversions ---


@pytest.mark.parametrize("shares, weight", [(2, 1), (262144, 10000), (1024, 39), (512, 20), (100, 4)])
def test_shares_to_weight_uses_runcs_linear_map(shares, weight):
    assert resources.shares_to_weight(shares) == weight


@pytest.mark.parametrize("blkio, io", [(10, 1), (1000, 10000), (500, 4950), (100, 910)])
def test_blkio_weight_to_io_weight(blkio, io):
    assert resources.blkio_weight_to_io_weight(blkio) == io


@pytest.mark.parametrize("swap, limit, want", [
    (0, -1, "max"),          # unlimited memory, swap unset: both unlimited
    (0, 100, None),          # swap unset: leave memory.swap.max alone
    (0, 0, None),
    (-1, 100, "max"),
    (300, 100, "200"),       # OCI swap is memory+swap; v2 wants swap alone
    (100, 100, "0"),         # equal: no swap at all
])
def test_v2_swap_is_swap_minus_limit(swap, limit, want):
    assert resources.v2_swap(swap, limit) == want


@pytest.mark.parametrize("limit, want", [(0, "max"), (-1, "max"), (-5, "max"), (1, "1"), (100, "100")])
def test_pids_limit_zero_and_negative_mean_max(limit, want):
    assert resources.pids_limit(limit) == want


@pytest.mark.parametrize("quota, period, want", [
    (0, 0, None), (50000, 0, "50000"), (-1, 100000, "max 100000"), (0, 100000, "max 100000"),
    (20000, 50000, "20000 50000"), (-1, 0, "max"),
])
def test_cpu_max(quota, period, want):
    assert resources.cpu_max(quota, period) == want


def test_limits_spelling():
    assert resources.v1_limit(-1) == "-1"
    assert resources.v2_limit(-1) == "max"
    assert resources.v2_limit(4096) == "4096"


def test_rdma_line():
    assert resources.rdma_line("mlx4_0", {"hcaHandles": 2, "hcaObjects": 2000}) == \
        "mlx4_0 hca_handle=2 hca_object=2000"
    assert resources.rdma_line("mlx4_0", {"hcaObjects": 5}) == "mlx4_0 hca_object=5"
    assert resources.rdma_line("mlx4_0", {}) is None


# --- checking ---

GOOD = {
    "memory": {"limit": 1 << 30, "reservation": 1 << 29, "swap": 2 << 30, "swappiness": 60,
               "disableOOMKiller": False, "kernel": -1},
    "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1,3", "mems": "0", "burst": 0},
    "pids": {"limit": -1},
    "blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 100}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1 << 20}]},
    "hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 21}],
    "devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3}],
    "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]},
    "rdma": {"mlx4_0": {"hcaHandles": 3}},
    "unified": {"memory.high": "1G", "io.max": "8:0 rbps=1\n8:16 wbps=2"},
    "futureKey": {"anything": True},
}


def test_check_accepts_a_full_valid_object_and_empty_ones():
    resources.check(GOOD)
    resources.check({})
    resources.check(None)
    resources.check({"memory": None, "cpu": {"shares": None}})


@pytest.mark.parametrize("bad, words", [
    ([], "resources must be an object"),
    ({"memory": []}, "resources.memory must be an object"),
    ({"memory": {"limit": "1g"}}, "resources.memory.limit must be an integer"),
    ({"memory": {"limit": True}}, "resources.memory.limit must be an integer"),
    ({"memory": {"limit": -2}}, "resources.memory.limit must be -1"),
    ({"memory": {"swappiness": 101}}, "swappiness must be between 0 and 100"),
    ({"memory": {"swappiness": -1}}, "swappiness must be a non-negative integer"),
    ({"memory": {"swap": 100}}, "swap needs resources.memory.limit"),
    ({"memory": {"limit": 200, "swap": 100}}, "must be at least resources.memory.limit"),
    ({"memory": {"disableOOMKiller": 1}}, "disableOOMKiller must be a boolean"),
    ({"cpu": {"shares": 1}}, "cpu.shares must be between 2 and 262144"),
    ({"cpu": {"shares": 262145}}, "cpu.shares must be between 2 and 262144"),
    ({"cpu": {"quota": -2}}, "cpu.quota must be -1"),
    ({"cpu": {"period": -1}}, "cpu.period must be a non-negative integer"),
    ({"cpu": {"cpus": "0-a"}}, "cpu.cpus must be a list like 0-2,4"),
    ({"cpu": {"mems": 0}}, "cpu.mems must be a string"),
    ({"pids": {"limit": "10"}}, "pids.limit must be an integer"),
    ({"blockIO": {"weight": 5}}, "blockIO.weight must be between 10 and 1000"),
    ({"blockIO": {"weight": 1001}}, "blockIO.weight must be between 10 and 1000"),
    ({"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "weight": 9}]}}, "weightDevice[0].weight"),
    ({"blockIO": {"weightDevice": [{"major": 8}]}}, "weightDevice[0].minor"),
    ({"blockIO": {"throttleWriteIOPSDevice": [{"major": 8, "minor": 0}]}}, "throttleWriteIOPSDevice[0].rate"),
    ({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]}, "pageSize must look like 2MB"),
    ({"hugepageLimits": [{"pageSize": "2MB"}]}, "hugepageLimits[0].limit"),
    ({"hugepageLimits": {"pageSize": "2MB"}}, "hugepageLimits must be a list"),
    ({"devices": [{"access": "rwm"}]}, "devices[0].allow must be a boolean"),
    ({"devices": [{"allow": True, "type": "x"}]}, "devices[0].type must be a, b or c"),
    ({"devices": [{"allow": True, "access": "rwx"}]}, "devices[0].access must be made of r, w and m"),
    ({"devices": [{"allow": True, "major": "1"}]}, "devices[0].major must be a non-negative integer"),
    ({"devices": [{"allow": True, "minor": -3}]}, "devices[0].minor must be a non-negative integer"),
    ({"network": {"priorities": [{"name": "eth0"}]}}, "priorities[0].priority"),
    ({"rdma": {"mlx": {"hcaHandles": -1}}}, "rdma.mlx.hcaHandles"),
    ({"unified": {"../memory.max": "1"}}, "must be a file name"),
    ({"unified": {"memory": "1"}}, "must look like CONTROLLER.PARAMETER"),
    ({"unified": {"memory.max": 5}}, "unified.memory.max must be a string"),
])
def test_check_names_the_bad_field(bad, words):
    with pytest.raises(InvalidArgument) as info:
        resources.check(bad)
    assert words in str(info.value)


@pytest.mark.parametrize("text, ok", [
    ("2MB", True), ("1GB", True), ("64KB", True), ("16384KB", True), ("2M", False), ("0MB", False),
    ("MB", False), ("2mb", False), ("2 MB", False), ("２MB", False), ("", False),
])
def test_is_page_size(text, ok):
    assert resources.is_page_size(text) is ok


@pytest.mark.parametrize("text, ok", [
    ("0", True), ("0-3", True), ("0-1,3", True), (" 0 , 2-3 ", True), ("0-", False), ("-1", False),
    ("0-1-2", False), ("a", False), ("0,,1", False), ("", False),
])
def test_is_cpu_list(text, ok):
    assert resources.is_cpu_list(text) is ok


# --- devices ---

def rules(*entries):
    return resources.device_rules(list(entries))


DENY_ALL = {"allow": False, "access": "rwm"}


def test_device_rules_defaults_and_wildcards():
    (rule,) = rules({"allow": False})
    assert (rule.allow, rule.kind, rule.major, rule.minor, rule.access) == (False, "a", None, None, 7)
    assert rule.line() == "a"
    (rule,) = rules({"allow": True, "type": "c", "major": 136, "minor": -1, "access": "rw"})
    assert rule.line() == "c 136:* rw"
    (rule,) = rules({"allow": True, "type": "b", "major": 8, "minor": 0, "access": ""})
    assert rule.line() == "b 8:0 rwm"


def test_device_rule_of_type_a_with_numbers_becomes_char_and_block():
    got = rules({"allow": True, "type": "a", "major": 1, "minor": 3, "access": "r"})
    assert [r.line() for r in got] == ["c 1:3 r", "b 1:3 r"]


def test_emulate_follows_the_v1_kernel_model():
    state = resources.emulate(rules(
        DENY_ALL,
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "w"},   # merges into rw
        {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
        {"allow": False, "type": "c", "major": 1, "minor": 5, "access": "m"},  # removes m
        {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "r"},
        {"allow": False, "type": "c", "major": 1, "minor": 7, "access": "r"},  # removes it entirely
        {"allow": False, "type": "c", "major": 1, "minor": None, "access": "r"},  # no exact match: no-op
    ))
    assert state == DeviceState(False, {("c", 1, 3): READ | WRITE, ("c", 1, 5): READ | WRITE})
    assert state.allows("c", 1, 3, READ | WRITE)
    assert not state.allows("c", 1, 3, MKNOD)
    assert not state.allows("c", 1, 5, MKNOD)
    assert not state.allows("b", 1, 3, READ)
    assert not state.allows("c", 1, 7, READ)


def test_emulate_reset_clears_exceptions_and_allow_all_denies_partially():
    state = resources.emulate(rules(
        DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 3},
        {"allow": True},  # reset to allow all
        {"allow": False, "type": "b", "major": 8, "minor": None, "access": "w"},
    ))
    assert state == DeviceState(True, {("b", 8, None): WRITE})
    assert state.allows("b", 8, 1, READ)
    assert not state.allows("b", 8, 1, READ | WRITE)   # any denied bit denies
    assert state.allows("c", 8, 1, WRITE)


def test_fresh_group_allows_all():
    assert resources.emulate([]) == DeviceState(True)


def test_parse_devices_list():
    assert resources.parse_devices_list("a *:* rwm\n") == DeviceState(True)
    state = resources.parse_devices_list("c 1:3 rwm\nc 136:* rw\nb *:* m\n")
    assert state == DeviceState(False, {("c", 1, 3): 7, ("c", 136, None): READ | WRITE, ("b", None, None): MKNOD})
    assert resources.parse_devices_list("") == DeviceState(False)


def test_v1_writes_from_fresh_group_start_with_deny_all():
    target = rules(DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                   {"allow": True, "type": "c", "major": 5, "minor": None, "access": "rw"})
    writes = resources.v1_device_writes(target, DeviceState(True))
    assert writes == [("devices.deny", "a"), ("devices.allow", "c 1:3 rwm"), ("devices.allow", "c 5:* rw")]


def test_v1_writes_between_deny_policies_are_the_difference_additions_first():
    current = resources.parse_devices_list("c 1:3 rwm\nc 1:5 rwm\n")
    target = rules(DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
                   {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "r"})
    assert resources.v1_device_writes(target, current) == [
        ("devices.allow", "c 1:9 r"), ("devices.deny", "c 1:3 m"), ("devices.deny", "c 1:5 rwm")]
    # the same policy again writes nothing: an update never blinks
    same = rules(DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                 {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"})
    assert resources.v1_device_writes(same, current) == []


def test_v1_writes_to_allow_all_reset_then_deny_exceptions():
    target = rules({"allow": True}, {"allow": False, "type": "b", "major": 8, "minor": 0, "access": "w"})
    current = resources.parse_devices_list("c 1:3 rwm\n")
    assert resources.v1_device_writes(target, current) == [("devices.allow", "a"), ("devices.deny", "b 8:0 w")]


def test_v1_writes_without_a_reset_are_written_in_order():
    target = rules({"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
                   {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"})
    current = resources.parse_devices_list("c 1:3 rwm\n")
    assert resources.v1_device_writes(target, current) == [
        ("devices.allow", "c 10:200 rwm"), ("devices.deny", "c 1:3 w")]
    assert resources.v1_device_writes([], current) == []


# --- paths ---

@pytest.mark.parametrize("path, want", [
    ("/dockyard/abc", "/dockyard/abc"), ("dockyard/abc", "/dockyard/abc"), ("//a///b/", "/a/b"),
    ("/a/./b", "/a/b"), ("/libpod_parent/libpod-1", "/libpod_parent/libpod-1"),
])
def test_group_path_normalises(path, want):
    assert files.group_path(path) == want


@pytest.mark.parametrize("path, words", [
    ("", "a cgroup path is required"), (None, "a cgroup path is required"), ("/", "names the hierarchy root"),
    ("/a/../../etc", "must not contain '..'"), ("/a\0b", "NUL"),
])
def test_group_path_refuses(path, words):
    with pytest.raises(InvalidArgument) as info:
        files.group_path(path)
    assert words in str(info.value)


# --- stats parsers ---

def test_flat_and_nested_keyed():
    assert stats.flat_keyed("cache 5\nrss 7\nbogus x\n\n") == {"cache": 5, "rss": 7}
    assert stats.nested_keyed("8:0 rbytes=10 wbytes=20 rios=1\n") == {"8:0": {"rbytes": 10, "wbytes": 20, "rios": 1}}


def test_blkio_v1_entries_drop_totals_and_keep_two_field_lines():
    text = "8:0 Read 4096\n8:0 Write 512\n8:0 Total 4608\nTotal 4608\n8:16 99\n"
    assert stats.blkio_v1(text) == [
        {"major": 8, "minor": 0, "op": "Read", "value": 4096},
        {"major": 8, "minor": 0, "op": "Write", "value": 512},
        {"major": 8, "minor": 0, "op": "Total", "value": 4608},
        {"major": 8, "minor": 16, "op": "", "value": 99},
    ]


def test_io_stat_v2_entries():
    got = stats.io_stat_v2("254:0 rbytes=100 wbytes=200 rios=3 wios=4 dbytes=0 dios=0\n")
    assert got == [{"major": 254, "minor": 0, "op": "read", "value": 100},
                   {"major": 254, "minor": 0, "op": "write", "value": 200}]
    assert stats.io_stat_v2("254:0 rbytes=1 wbytes=2 rios=3 wios=4\n", "rios", "wios")[1]["value"] == 4


def test_system_cpu_usage_and_host_memory():
    proc_stat = "cpu  100 2 30 400 5 6 7 8 0 0\ncpu0 50 1 15 200 2 3 3 4 0 0\n"
    assert stats.system_cpu_usage(proc_stat, 100) == (100 + 2 + 30 + 400 + 5 + 6 + 7) * 10_000_000
    assert stats.host_memory("MemTotal:       24731904 kB\nMemFree: 1 kB\n") == 24731904 * 1024


def test_clamp_limit_reports_no_limit_as_host_memory():
    assert stats.clamp_limit(None, 1000) == 1000
    assert stats.clamp_limit(9223372036854771712, 1000) == 1000
    assert stats.clamp_limit(500, 1000) == 500
