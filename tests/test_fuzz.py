"""The receive-path fuzzer, briefly (a few thousand inputs per path, ~15 s in
all); bench/fuzz.py runs it as long as asked.  Plus one regression test per
crash it found."""

import asyncio

import pytest

from fuzzing import runner
from fuzzing.registry import PATHS

# Inputs per path in CI, chosen for about 2-4 s each on one core.
CI_COUNTS = {"flood": 3000, "dhcp": 3000, "rs": 1200, "ubus": 2000, "hostapd": 5000}

# Failure kinds that are known, open, and owned elsewhere: the test reports
# them as an expected failure (xfail) instead of failing.  Each entry says
# where it is being fixed; remove it when it is.
KNOWN_OPEN = {}


@pytest.mark.parametrize("name", list(CI_COUNTS))
def test_fuzz_path(name):
    # Two epochs: the DHCP and RS paths run a node without a station source in
    # even epochs and one with a station source in odd ones.
    result = runner.run(PATHS[name], CI_COUNTS[name], seed=0, epoch_len=CI_COUNTS[name] // 2)
    assert result.inputs == CI_COUNTS[name]
    failures = dict(result.failures)
    unknown = {k: n for k, n in failures.items() if k not in KNOWN_OPEN.get(name, {})}
    if unknown:
        examples = {k: [(f.seed, f.epoch, f.index, f.detail[-1500:]) for f in v]
                    for k, v in result.examples.items() if k in unknown}
        pytest.fail(f"{name}: {unknown}\nreproduce with bench/fuzz.py --path {name} "
                    f"--count {CI_COUNTS[name]} --epoch {CI_COUNTS[name] // 2} (seed 0), "
                    f"then --replay the saved file\n"
                    f"{examples}")
    if failures:
        pytest.xfail(f"{name}: known open failures {failures}: "
                     + "; ".join(KNOWN_OPEN[name][k] for k in failures))


def test_fuzz_is_deterministic():
    a = runner.run(PATHS["flood"], 300, seed=5)
    b = runner.run(PATHS["flood"], 300, seed=5)
    assert a.stats == b.stats and a.failures == b.failures


# -- regressions: one per crash the fuzzer found -----------------------------

def test_ubus_invoke_without_objid_is_answered_not_raised():
    """Found by the ubus path: an invoke frame without an objid attribute (to
    no object of ours) made _reply raise KeyError inside _dispatch, logged as
    an internal error with a traceback for every such frame.  It is answered
    NOT_FOUND, like an invoke for an unknown object."""
    from sroamd.ubus_client import UbusClient
    from sroamd.wire.ubus import decode_message, encode_message

    sent = []

    class Writer:
        def write(self, data):
            sent.append(decode_message(bytes(data)))

    client = UbusClient("/nonexistent")
    client._writer = Writer()
    frame = encode_message({"type": "invoke", "seq": 9, "peer": 0x5EED, "method": "x",
                            "data": {}})
    client._dispatch(decode_message(frame))
    assert [(m["type"], m["seq"], m["peer"], m["status"]) for m in sent] == \
        [("status", 9, 0x5EED, 4)]  # NOT_FOUND
    asyncio.set_event_loop(None)


# -- the fuzzer finds what it is for (issue 9's attacks, with a defence off) --

def test_flood_fuzzer_finds_an_unvalidated_boundary():
    """With the flooding boundary's data policy switched off (every Update
    accepted, as before issue 9), the flood path finds routes outside the
    configured prefixes (or the crash of a malformed key) within a few
    thousand inputs."""
    from fuzzing.paths import FloodPath

    class Unguarded(FloodPath):
        def __init__(self, seed, epoch):
            super().__init__(seed, epoch)
            self.node.flooder.data_policy.check = lambda key, value, time, store: (None, time)

    result = runner.run(Unguarded, 3000, seed=0)
    found = set(result.failures)
    assert found & {"route_outside_prefix", "route_malformed", "route_wrong_length"} or \
        any(k.startswith(("crash:", "logged_exception:", "contained:")) for k in found), found


def test_dhcp_fuzzer_finds_a_claim_on_chaddr():
    """With the DHCP message's chaddr trusted over the frame's source (the
    server not told the source, as before issue 9), the DHCP path finds a
    client claimed that never sent a frame."""
    from fuzzing import paths

    class ChaddrTrusted(paths.DhcpPath):
        def __init__(self, seed, epoch):
            super().__init__(seed, 0)  # no station source
            handle = self.cs.dhcp.handle
            self.cs.dhcp.handle = lambda data, server_ip, *args, **kw: handle(data, server_ip)

    result = runner.run(ChaddrTrusted, 1500, seed=0)
    assert "claim_not_frame_source" in result.failures, dict(result.failures)
