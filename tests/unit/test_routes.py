"""Static routes: parsing route strings and looking domains up in the table."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwright.errors import ConfigError, RouteError
from mailwright.routes import Route, RouteTable, parse_route


@pytest.mark.parametrize(
    ("text", "route"),
    [
        ("smtp://relay.example.test:2525", Route("smtp", "relay.example.test", 2525)),
        ("smtp://Relay.Example.Test", Route("smtp", "relay.example.test", 25)),
        ("smtp://[relay.example.test]", Route("smtp", "relay.example.test", 25)),
        ("smtp://[relay.example.test]:587", Route("smtp", "relay.example.test", 587)),
        ("smtp://192.0.2.1:25", Route("smtp", "192.0.2.1", 25)),
        ("smtp://[2001:DB8::1]:2525", Route("smtp", "2001:db8::1", 2525)),
        ("smtp://[::1]", Route("smtp", "::1", 25)),
        ("SMTP://host.test/", Route("smtp", "host.test", 25)),
        ("lmtp://127.0.0.1:24", Route("lmtp", "127.0.0.1", 24)),
        ("lmtp://mailstore.test", Route("lmtp", "mailstore.test", 24)),
        ("lmtp:unix:/run/dovecot/lmtp", Route("lmtp", path="/run/dovecot/lmtp")),
        ("maildir:/var/mail", Route("maildir", path="/var/mail")),
        ("mx", Route("mx")),
        ("  MX ", Route("mx")),
    ],
)
def test_route_strings_parse_to_routes(text: str, route: Route) -> None:
    """Every documented form parses to its kind, host, port or path."""
    assert parse_route(text) == route


@pytest.mark.parametrize(
    "text",
    [
        "",
        "http://host.test",
        "smtp:host.test",
        "smtp://",
        "smtp://:25",
        "smtp://host.test:0",
        "smtp://host.test:70000",
        "smtp://host.test:smtp",
        "smtp://[2001:db8::1",
        "smtp://[2001:db8::zz]:25",
        "smtp://[::1]x",
        "smtp://bad_host!.test",
        "lmtp:unix:",
        "lmtp:unix:relative/socket",
        "maildir:",
        "maildir:var/mail",
    ],
)
def test_bad_route_is_a_route_error_naming_the_text(text: str) -> None:
    """A malformed route raises RouteError (a ConfigError) that quotes the text."""
    with pytest.raises(RouteError) as caught:
        parse_route(text)

    assert repr(text) in str(caught.value)
    assert isinstance(caught.value, ConfigError)


@given(
    st.one_of(
        st.builds(
            Route,
            kind=st.sampled_from(["smtp", "lmtp"]),
            host=st.sampled_from(["host.test", "192.0.2.1", "2001:db8::1", "a-b.c_d.test"]),
            port=st.integers(1, 65535),
        ),
        st.builds(
            lambda p: Route("maildir", path=p),
            st.from_regex(r"/[a-z0-9/._-]{0,20}", fullmatch=True),
        ),
        st.builds(
            lambda p: Route("lmtp", path=p), st.from_regex(r"/[a-z0-9/._-]{0,20}", fullmatch=True)
        ),
        st.just(Route("mx")),
    )
)
def test_to_text_parses_back_to_the_same_route(route: Route) -> None:
    """parse_route(route.to_text()) gives the route back, for every kind."""
    assert parse_route(route.to_text()) == route


TABLE = RouteTable(
    {
        "example.test": "smtp://relay.test:2525",
        ".example.test": "lmtp://127.0.0.1:24",
        ".deep.example.test": "maildir:/var/mail",
        "Bücher.test": "smtp://idn.test",
        "free.test": "mx",
        "*": "smtp://smarthost.test:587",
    }
)


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("example.test", "smtp://relay.test:2525"),
        ("EXAMPLE.TEST.", "smtp://relay.test:2525"),
        ("a.example.test", "lmtp://127.0.0.1:24"),
        ("a.b.example.test", "lmtp://127.0.0.1:24"),
        ("deep.example.test", "lmtp://127.0.0.1:24"),
        ("x.deep.example.test", "maildir:/var/mail"),
        ("xn--bcher-kva.test", "smtp://idn.test:25"),
        ("bücher.test", "smtp://idn.test:25"),
        ("free.test", "mx"),
        ("other.test", "smtp://smarthost.test:587"),
        ("notexample.test", "smtp://smarthost.test:587"),
    ],
)
def test_lookup_prefers_exact_then_closest_parent_then_default(domain: str, expected: str) -> None:
    """Exact entries win, then the closest '.parent', then '*'."""
    assert TABLE.lookup(domain).to_text() == expected


def test_without_a_default_unknown_domains_go_by_mx() -> None:
    """A table without '*' routes unknown domains to MX delivery."""
    table = RouteTable({"example.test": "smtp://relay.test"})

    assert table.lookup("other.test") == Route("mx")
    assert RouteTable().lookup("example.test").is_mx


def test_parent_entry_does_not_match_the_domain_itself() -> None:
    """'.example.test' covers subdomains only, as in Postfix's transport maps."""
    table = RouteTable({".example.test": "smtp://relay.test"})

    assert table.lookup("example.test").is_mx
    assert table.lookup("sub.example.test").host == "relay.test"


def test_bad_entry_in_table_names_key_and_text() -> None:
    """A wrong route in the table fails at construction with its key and text."""
    with pytest.raises(RouteError) as caught:
        RouteTable({"ok.test": "mx", "bad.test": "smtp://host:99999"})

    assert caught.value.key == "bad.test"
    assert "smtp://host:99999" in str(caught.value)


@pytest.mark.parametrize("key", [".", "..example.test", ""])
def test_bad_table_key_is_refused(key: str) -> None:
    """A key that is no domain, '.domain' or '*' is a RouteError."""
    with pytest.raises(RouteError):
        RouteTable({key: "mx"})


def test_domains_sharing_a_host_route_share_a_queue() -> None:
    """Same route means same destination key; MX routes are keyed per domain."""
    table = RouteTable({"a.test": "smtp://relay.test", "b.test": "smtp://relay.test:25"})

    assert table.destination_key("a.test") == table.destination_key("b.test")
    assert table.destination_key("c.test") == "mx:c.test"
    assert table.destination_key("C.Test.") == table.destination_key("c.test")
    assert table.destination_key("c.test") != table.destination_key("d.test")
