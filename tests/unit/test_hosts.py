"""The Host allowlist: parsing, exact matching, the server's own names, options."""
from __future__ import annotations

import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernelstate.errors import ConfigError
from kernelstate.server.hosts import (
    HostAllowlist,
    listening_hosts,
    machine_hosts,
    split_host,
)
from kernelstate.server.options import ServeOptions


def test_split_host_parses_names_ports_and_ipv6() -> None:
    """Host values become (name, port); malformed ones are None, never an exception."""
    assert split_host("LocalHost:5006") == ("localhost", 5006)
    assert split_host("example.org.") == ("example.org", None)
    assert split_host("[::1]:8888") == ("::1", 8888)
    assert split_host("[::1]") == ("::1", None)
    for bad in ["", ":80", "a b", "evil.example:80:80", "::1", "[::1", "[::1]x", "host:", "host:99999",
                "host:-1", "user@host", "host/path", "[evil.example]:80", "é.example", "host:80 x",
                "a" * 300]:
        assert split_host(bad) is None, bad


def test_entries_match_whole_hosts_on_their_port() -> None:
    """HOST:PORT is that port only; HOST is the scheme's default port; lookalikes never match."""
    allow = HostAllowlist.parse(["localhost:5006", "dash.corp", "[::1]:5006"])
    assert allow.allows("localhost:5006") and allow.allows("LOCALHOST:5006") and allow.allows("[::1]:5006")
    assert allow.allows("dash.corp") and allow.allows("dash.corp:80") and allow.allows("dash.corp", "https")
    assert allow.allows("dash.corp:443", "https")
    for refused in ["localhost", "localhost:5007", "localhost.evil.example:5006", "evil.localhost:5006",
                    "localhost:5006.evil.example", "dash.corp:443", "dash.corp:8080", "xdash.corp", "dash.corpx",
                    "dash.corp.evil.com", "", "127.0.0.1:5006", "[::2]:5006"]:
        assert not allow.allows(refused), refused


def test_wildcards_only_when_written() -> None:
    """``*`` is any host on any port, ``*:PORT`` any host on one port, ``HOST:*`` one host on any port."""
    assert HostAllowlist.parse(["*"]).allows("evil.example:1234")
    assert HostAllowlist.parse(["*:5006"]).allows("evil.example:5006")
    assert not HostAllowlist.parse(["*:5006"]).allows("evil.example:5007")
    any_port = HostAllowlist.parse(["localhost:*"])
    assert any_port.allows("localhost:1") and any_port.allows("localhost") and not any_port.allows("evil.example:1")
    assert not HostAllowlist.parse(["*"]).allows("not a host")
    for bad in ["*.example.org", "*x", "a b", "evil.example/x", "http://x.org/path"]:
        with pytest.raises(ValueError, match="use HOST"):
            HostAllowlist.parse([bad])


def test_origin_style_entries_are_hosts_too() -> None:
    """--allow-websocket-origin entries (HOST[:PORT] or scheme://host) read as host entries."""
    allow = HostAllowlist.parse(["https://dash.corp", "dash.corp:8443"])
    assert allow.allows("dash.corp", "https") and allow.allows("dash.corp:8443")
    assert not allow.allows("dash.corp:8080")


def test_the_servers_own_names() -> None:
    """Loopback: the loopback names on its port; a wildcard address adds this machine's names; a Unix
    socket is the loopback names on any port (what a local proxy sends)."""
    assert listening_hosts("127.0.0.1", 5006) == ["127.0.0.1:5006", "[::1]:5006", "localhost:5006"]
    assert "10.1.2.3:80" in listening_hosts("10.1.2.3", 80)
    assert "[fe80::1]:80" in listening_hosts("fe80::1", 80)
    everywhere = HostAllowlist.parse(listening_hosts("0.0.0.0", 5006))
    assert everywhere.allows(f"{socket.gethostname()}:5006") and everywhere.allows("localhost:5006")
    assert all(everywhere.allows(f"{h}:5006") for h in machine_hosts())
    assert not everywhere.allows("evil.example:5006") and not everywhere.allows(f"{socket.gethostname()}:5007")
    unix = HostAllowlist.parse(listening_hosts("127.0.0.1", 0, unix_socket=True))
    assert unix.allows("localhost") and unix.allows("127.0.0.1:0") and not unix.allows("evil.example")


def test_options_take_allow_host_and_refuse_bad_entries() -> None:
    """ServeOptions(allow_host=...) accepts a string or a list, and names a bad entry."""
    assert ServeOptions.from_kwargs(allow_host="dash.corp").allow_host == ("dash.corp",)
    assert ServeOptions(allow_host=("a.org", "b.org:8080"), use_xheaders=True).use_xheaders
    with pytest.raises(ConfigError, match="'evil/x'"):
        ServeOptions(allow_host=("evil/x",))
    with pytest.raises(ConfigError, match="allow_websocket_origin"):
        ServeOptions(allow_websocket_origin=("*.example.org",))


labels = st.from_regex(r"[a-z0-9][a-z0-9-]{0,7}", fullmatch=True)
names = st.lists(labels, min_size=1, max_size=4).map(".".join)


@settings(max_examples=300, derandomize=True, database=None)
@given(allowed=names, host=names, port=st.sampled_from([None, 80, 443, 5006]),
       entry_port=st.sampled_from([None, 80, 5006]))
def test_a_match_is_the_same_host_on_the_same_port(allowed: str, host: str, port: int | None,
                                                  entry_port: int | None) -> None:
    """allows(host[:port]) under one entry holds only for exactly that host and port."""
    entry = allowed if entry_port is None else f"{allowed}:{entry_port}"
    value = host if port is None else f"{host}:{port}"
    if HostAllowlist.parse([entry]).allows(value):
        assert host == allowed
        assert (port or 80) == (entry_port or 80)
