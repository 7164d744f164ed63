"""Tests for mailwright.config: the TOML file, its defaults, and errors that name file:line:key."""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailwright.config import (
    Config,
    HostPort,
    load_config,
    parse_duration,
    parse_host_port,
    parse_size,
)
from mailwright.config._convert import Context, convert_table
from mailwright.config._locate import format_key, key_at_line, line_of, locate_keys
from mailwright.config._values import InvalidValue
from mailwright.errors import ConfigError

# The sample from the issue, verbatim: operators' scripts depend on this shape.
SAMPLE = """\
[server]
hostname = "mx.example.test"
spool = "var/spool"
[dns]
nameservers = ["127.0.0.1:5353"]    # default: the system's resolvers
[[listener]]
role = "inbound"
address = "127.0.0.1:2525"
[[listener]]
role = "submission"
address = "127.0.0.1:2587"
[domains]
relay = ["example.test"]            # accepted on the inbound listener and relayed
[routes]
"example.test" = "smtp://127.0.0.1:2626"   # next hop instead of MX; also lmtp:// and maildir:
"""


def load_text(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "mailwright.toml"
    path.write_text(text)
    return load_config(path)


def error_of(tmp_path: Path, text: str) -> ConfigError:
    path = tmp_path / "mailwright.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value


class TestSampleAndDefaults:
    def test_issue_sample_loads_verbatim(self, tmp_path: Path) -> None:
        """The sample configuration of the issue loads with every value in place."""
        config = load_text(tmp_path, SAMPLE)

        assert config.server.hostname == "mx.example.test"
        assert config.server.spool == tmp_path / "var/spool"
        assert config.dns.nameservers == (HostPort("127.0.0.1", 5353),)
        assert [(item.role, item.address) for item in config.listener] == [
            ("inbound", HostPort("127.0.0.1", 2525)),
            ("submission", HostPort("127.0.0.1", 2587)),
        ]
        assert config.domains.relay == ("example.test",)
        assert config.routes == {"example.test": "smtp://127.0.0.1:2626"}
        assert config.source == tmp_path / "mailwright.toml"

    def test_no_file_gives_embedded_defaults(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without a file: the FQDN, loopback listeners on 2525 and 2587, paths under ./var."""
        monkeypatch.chdir(tmp_path)

        config = load_config(None)

        assert config.source is None
        assert config.server.hostname == socket.getfqdn()
        assert [(item.role, str(item.address)) for item in config.listener] == [
            ("inbound", "127.0.0.1:2525"),
            ("submission", "127.0.0.1:2587"),
        ]
        assert config.server.spool == tmp_path / "var/spool"
        assert config.server.events_log == tmp_path / "var/log/events.jsonl"
        assert config.server.users_file == tmp_path / "var/users"
        assert config.server.control_socket == tmp_path / "var/spool/control.sock"
        assert config.server.fsync is True
        assert config.dns.nameservers == ()
        assert config.delivery.helo_name == config.server.hostname

    def test_empty_file_resolves_default_paths_against_its_folder(self, tmp_path: Path) -> None:
        """Default relative paths are relative to the configuration file's folder."""
        folder = tmp_path / "etc"
        folder.mkdir()
        (folder / "mailwright.toml").write_text("")

        config = load_config(folder / "mailwright.toml")

        assert config.server.spool == folder / "var/spool"
        assert config.server.users_file == folder / "var/users"

    def test_documented_defaults(self) -> None:
        """Defaults are those docs/configuration.md promises."""
        config = load_config(None)

        assert config.server.min_free_space == 100 * 2**20
        assert config.dns.timeout == 5.0
        assert config.limits.max_message_size == 25 * 2**20
        assert config.limits.bare_line_endings == "reject"
        assert config.queue.retry_intervals == (300, 600, 1800, 3600, 7200, 14400)
        assert config.queue.lifetime == 5 * 86400
        assert config.queue.delay_warning == 4 * 3600
        assert config.delivery.tls == "opportunistic"
        assert config.delivery.source_address is None
        assert config.listener[0].tls is False


EVERY_KEY = """\
[server]
hostname = "mx.example.test"
spool = "/srv/spool"
events_log = "log/events.jsonl"
users_file = "users"
fsync = false
min_free_space = "1G"
delivery_process = false
receivers = 2

[dns]
nameservers = ["127.0.0.1", "[::1]:5353"]
timeout = "3s"

[limits]
max_connections = 500
max_connections_per_ip = 7
command_timeout = "2m"
data_timeout = "10m"
max_message_size = "10M"
max_recipients = 200
max_errors = 5
bare_line_endings = "normalize"
max_command_line = "4K"
max_data_line = 2000

[[listener]]
role = "inbound"
address = "0.0.0.0:25"
max_connections = 900

[[listener]]
role = "submission"
address = "[::1]:587"
tls_cert = "cert.pem"
tls_key = "key.pem"
max_message_size = 1048576
command_timeout = 30

[domains]
relay = ["Example.TEST."]
local = ["local.test"]

[routes]
"local.test" = "maildir:mail"
".sub.test" = "lmtp://127.0.0.1"
"*" = "smtp://[::1]:2626"

[queue]
retry_intervals = ["1m", "5m", 3600]
lifetime = "2d"
delay_warning = false
max_connections_per_destination = 4
max_messages_per_connection = 50
bounce_original_limit = "10K"

[delivery]
helo_name = "out.example.test"
tls = "required"
connect_timeout = "45s"
source_address = "192.0.2.7"
port = 2525
"""


class TestEveryKey:
    @pytest.fixture
    def config(self, tmp_path: Path) -> Config:
        (tmp_path / "cert.pem").write_text("cert")
        (tmp_path / "key.pem").write_text("key")
        return load_text(tmp_path, EVERY_KEY)

    def test_server_and_dns_keys(self, config: Config, tmp_path: Path) -> None:
        """[server] and [dns] keys are read, with relative paths under the file's folder."""
        assert config.server.spool == Path("/srv/spool")
        assert config.server.events_log == tmp_path / "log/events.jsonl"
        assert config.server.users_file == tmp_path / "users"
        assert config.server.fsync is False
        assert config.server.min_free_space == 2**30
        assert config.server.delivery_process is False
        assert config.server.receivers == 2
        assert config.dns.nameservers == (HostPort("127.0.0.1", 53), HostPort("::1", 5353))
        assert config.dns.timeout == 3.0

    def test_limits_apply_to_listeners_that_do_not_override_them(self, config: Config) -> None:
        """A listener takes each limit from [limits] unless it sets its own."""
        inbound, submission = config.listener

        assert inbound.max_connections == 900
        assert inbound.max_connections_per_ip == 7
        assert inbound.command_timeout == 120.0
        assert inbound.data_timeout == 600.0
        assert inbound.max_message_size == 10 * 2**20
        assert inbound.max_recipients == 200
        assert inbound.max_errors == 5
        assert inbound.bare_line_endings == "normalize"
        assert (inbound.max_command_line, inbound.max_data_line) == (4096, 2000)
        assert submission.max_connections == 500
        assert submission.max_message_size == 2**20
        assert submission.command_timeout == 30.0

    def test_listener_tls_keys(self, config: Config, tmp_path: Path) -> None:
        """tls_cert and tls_key enable STARTTLS and resolve against the file's folder."""
        inbound, submission = config.listener

        assert inbound.tls is False
        assert submission.tls is True
        assert submission.tls_cert == tmp_path / "cert.pem"
        assert submission.tls_key == tmp_path / "key.pem"
        assert submission.address == HostPort("::1", 587)

    def test_domains_and_routes(self, config: Config, tmp_path: Path) -> None:
        """Domains are normalised; a relative maildir route is made absolute."""
        assert config.domains.relay == ("example.test",)
        assert config.domains.local == ("local.test",)
        assert config.domains.accepts("LOCAL.test.")
        assert not config.domains.accepts("elsewhere.test")
        assert config.routes["local.test"] == f"maildir:{tmp_path / 'mail'}"
        assert config.route_table().lookup("a.sub.test").kind == "lmtp"

    def test_queue_and_delivery_keys(self, config: Config) -> None:
        """[queue] and [delivery] keys are read; delay_warning = false turns warnings off."""
        assert config.queue.retry_intervals == (60.0, 300.0, 3600.0)
        assert config.queue.lifetime == 2 * 86400.0
        assert config.queue.delay_warning is None
        assert config.queue.max_connections_per_destination == 4
        assert config.queue.max_messages_per_connection == 50
        assert config.queue.bounce_original_limit == 10240
        assert config.delivery.helo_name == "out.example.test"
        assert config.delivery.tls == "required"
        assert config.delivery.connect_timeout == 45.0
        assert config.delivery.source_address == "192.0.2.7"
        assert config.delivery.port == 2525


class TestValues:
    @pytest.mark.parametrize(
        ("text", "seconds"),
        [(30, 30.0), (1.5, 1.5), ("30", 30.0), ("30s", 30.0), ("5m", 300.0), ("4h", 14400.0),
         ("5d", 432000.0), ("1w", 604800.0), ("1.5h", 5400.0), (" 2 M ", 120.0)],
    )  # fmt: skip
    def test_durations(self, text: object, seconds: float) -> None:
        """Durations are seconds, or a number with s, m, h, d or w."""
        assert parse_duration(text) == seconds

    @pytest.mark.parametrize("text", ["5x", "-1", -1, "", "m", True, [1], "1h30m", float("nan")])
    def test_bad_durations(self, text: object) -> None:
        """Anything else is an InvalidValue naming the value."""
        with pytest.raises(InvalidValue, match="duration"):
            parse_duration(text)

    @pytest.mark.parametrize(
        ("text", "size"),
        [(1000, 1000), ("1000", 1000), ("10K", 10240), ("25M", 25 * 2**20), ("1G", 2**30),
         ("25MB", 25 * 2**20), ("25MiB", 25 * 2**20), ("1.5k", 1536)],
    )  # fmt: skip
    def test_sizes(self, text: object, size: int) -> None:
        """Sizes are bytes, or a number with binary K, M, G or T."""
        assert parse_size(text) == size

    @pytest.mark.parametrize("text", ["ten", 1.5, -1, "10X", True, ""])
    def test_bad_sizes(self, text: object) -> None:
        """Anything else is an InvalidValue."""
        with pytest.raises(InvalidValue, match="size"):
            parse_size(text)

    @pytest.mark.parametrize(
        ("text", "expected"),
        [("127.0.0.1:25", HostPort("127.0.0.1", 25)), ("[::1]:2525", HostPort("::1", 2525)),
         ("mx.example.test:587", HostPort("mx.example.test", 587))],
    )  # fmt: skip
    def test_host_port(self, text: str, expected: HostPort) -> None:
        """HOST:PORT and [IPv6]:PORT parse; str() writes them back."""
        assert parse_host_port(text) == expected
        assert str(expected) == text

    @pytest.mark.parametrize(
        "text",
        ["127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "[127.0.0.1]:25", "[::1]25", "::1",
         "bad_host:25", ":25", "127.0.0.1:x"],
    )  # fmt: skip
    def test_bad_host_port(self, text: str) -> None:
        """A missing or out-of-range port, stray brackets or a bad host are refused."""
        with pytest.raises(InvalidValue):
            parse_host_port(text)


def _lines(text: str) -> dict[str, int]:
    return {format_key(path): line for path, line in locate_keys(text).items()}


class TestLocator:
    def test_tables_keys_and_arrays_of_tables(self) -> None:
        """Each [[table]] is numbered, and keys map to their own lines."""
        lines = _lines(SAMPLE)

        assert lines["server"] == 1
        assert lines["server.spool"] == 3
        assert lines["listener[0]"] == 6
        assert lines["listener[1].address"] == 11
        assert lines['routes."example.test"'] == 15

    def test_multi_line_values_and_comments_keep_the_count(self) -> None:
        """Multi-line arrays and strings, and brackets in comments, do not shift lines."""
        text = (
            '[server]  # [not.a.table]\n'
            'hostname = """\nmulti\n[fake]\n"""\n'
            "spool = 'a#b'\n"
            '[dns]\n'
            'nameservers = [\n  "127.0.0.1",  # ]\n  "[::1]:53",\n]\n'
            'timeout = "1s"\n'
        )  # fmt: skip
        lines = _lines(text)

        assert lines["server.hostname"] == 2
        assert lines["server.spool"] == 6
        assert "fake" not in lines
        assert lines["dns.nameservers"] == 8
        assert lines["dns.timeout"] == 12

    def test_nested_arrays_of_tables_and_dotted_keys(self) -> None:
        """[[a.b]] counts per parent element; dotted and quoted keys are split."""
        text = (
            "[[dkim.sign]]\ndomain = 'a'\n"
            "[[dkim.sign]]\nkey.path = 'k'\n"
            '[routes]\n"a.test" = "mx"\n'
        )
        lines = _lines(text)

        assert lines["dkim.sign[0].domain"] == 2
        assert lines["dkim.sign[1].key.path"] == 4
        assert lines['routes."a.test"'] == 6

    def test_unknown_paths_fall_back_to_the_enclosing_table(self) -> None:
        """A key the file does not hold is placed on its table's header line."""
        locations = locate_keys(SAMPLE)

        assert line_of(locations, ("listener", 1, "tls_key")) == 9
        assert line_of(locations, ("nothing",)) is None
        assert key_at_line(SAMPLE, 12) == ("domains",)

    def test_garbage_never_raises(self) -> None:
        """The scanner skips what it does not understand instead of failing."""
        text = "= = =\n[\n\"unterminated\n[[x]]\n'''\nopen"

        assert _lines(text)["x[0]"] == 4


class TestErrors:
    """Every error names the file, the line and the key."""

    def test_bad_listener_address_reads_file_line_key(self, tmp_path: Path) -> None:
        """The issue's example: mailwright.toml:LINE: listener[1].address: ..."""
        error = error_of(tmp_path, SAMPLE.replace('"127.0.0.1:2587"', '"127.0.0.1"'))

        assert str(error).startswith(f"{tmp_path}/mailwright.toml:11: listener[1].address: ")
        assert "no port" in str(error)
        assert (error.line, error.key) == (11, "listener[1].address")

    def test_line_limit_below_the_rfc_minimum(self, tmp_path: Path) -> None:
        """A command line limit under RFC 5321's 512 octets is refused on its line."""
        error = error_of(tmp_path, SAMPLE + "\n[limits]\nmax_command_line = 100\n")

        assert (error.line, error.key) == (18, "limits.max_command_line")
        assert "at least 512" in error.detail

    def test_unknown_section(self, tmp_path: Path) -> None:
        """An unknown top-level table is an error on its header line."""
        error = error_of(tmp_path, SAMPLE + "\n[bogus]\nx = 1\n")

        assert (error.line, error.key) == (17, "bogus")
        assert "unknown section" in error.detail

    def test_unknown_key(self, tmp_path: Path) -> None:
        """An unknown key is an error on its line, listing the known ones."""
        error = error_of(tmp_path, SAMPLE.replace("[dns]\n", "[dns]\nnameserver = []\n"))

        assert (error.line, error.key) == (5, "dns.nameserver")
        assert "known: nameservers, timeout" in error.detail

    def test_wrong_type(self, tmp_path: Path) -> None:
        """A value of the wrong TOML type names what was expected."""
        error = error_of(tmp_path, SAMPLE.replace("spool = ", "fsync = 1\nspool = "))

        assert (error.line, error.key) == (3, "server.fsync")
        assert "expected true or false, got 1" in error.detail

    def test_bad_duration_after_a_multi_line_array(self, tmp_path: Path) -> None:
        """The line stays right after values that span lines."""
        text = SAMPLE + '[queue]\nretry_intervals = [\n  "1m",\n  "5m",\n]\nlifetime = "5 days"\n'

        error = error_of(tmp_path, text)

        assert (error.line, error.key) == (21, "queue.lifetime")
        assert "'5 days'" in error.detail

    def test_bad_item_in_a_list(self, tmp_path: Path) -> None:
        """A bad list item is named with its index."""
        error = error_of(tmp_path, SAMPLE.replace('["127.0.0.1:5353"]', '["127.0.0.1", "x y"]'))

        assert (error.line, error.key) == (5, "dns.nameservers[1]")

    def test_unknown_role(self, tmp_path: Path) -> None:
        """A listener role other than inbound or submission is refused."""
        error = error_of(tmp_path, SAMPLE.replace('role = "submission"', 'role = "outbound"'))

        assert (error.line, error.key) == (10, "listener[1].role")
        assert "'inbound', 'submission'" in error.detail

    def test_missing_listener_key(self, tmp_path: Path) -> None:
        """A listener without an address is placed on its [[listener]] line."""
        error = error_of(tmp_path, SAMPLE.replace('address = "127.0.0.1:2587"\n', ""))

        assert (error.line, error.key) == (9, "listener[1]")
        assert "missing key 'address'" in error.detail

    def test_bad_route(self, tmp_path: Path) -> None:
        """A route string mailwright.routes cannot parse is named with its domain."""
        error = error_of(tmp_path, SAMPLE.replace("smtp://127.0.0.1:2626", "ftp://x"))

        assert (error.line, error.key) == (15, 'routes."example.test"')
        assert "ftp://x" in error.detail

    def test_duplicate_listener_address(self, tmp_path: Path) -> None:
        """Two listeners on one address: the second is at fault."""
        error = error_of(tmp_path, SAMPLE.replace("2587", "2525"))

        assert (error.line, error.key) == (11, "listener[1].address")
        assert "overlaps listener[0]" in error.detail

    def test_wildcard_listener_overlaps_a_specific_one(self, tmp_path: Path) -> None:
        """0.0.0.0:2525 cannot be bound next to 127.0.0.1:2525."""
        error = error_of(tmp_path, SAMPLE.replace("127.0.0.1:2587", "0.0.0.0:2525"))

        assert error.key == "listener[1].address"

    def test_tls_cert_without_key(self, tmp_path: Path) -> None:
        """STARTTLS needs both files; the one given is pointed at."""
        (tmp_path / "cert.pem").write_text("x")
        text = SAMPLE.replace('role = "inbound"\n', 'role = "inbound"\ntls_cert = "cert.pem"\n')

        error = error_of(tmp_path, text)

        assert (error.line, error.key) == (8, "listener[0].tls_cert")
        assert "tls_key is not" in error.detail

    def test_missing_tls_file(self, tmp_path: Path) -> None:
        """A certificate path that is not a file is reported at load, not at first STARTTLS."""
        text = SAMPLE.replace(
            'role = "inbound"\n', 'role = "inbound"\ntls_cert = "c.pem"\ntls_key = "k.pem"\n'
        )

        error = error_of(tmp_path, text)

        assert (error.line, error.key) == (8, "listener[0].tls_cert")

    def test_domain_in_relay_and_local(self, tmp_path: Path) -> None:
        """A domain cannot be both relayed and delivered locally."""
        text = SAMPLE.replace("[domains]\n", '[domains]\nlocal = ["EXAMPLE.test"]\n')

        error = error_of(tmp_path, text)

        assert (error.line, error.key) == (13, "domains.local")
        assert "both a relay and a local domain" in error.detail

    def test_domain_listed_twice(self, tmp_path: Path) -> None:
        """A domain listed twice in one list is a mistake worth reporting."""
        error = error_of(tmp_path, SAMPLE.replace('["example.test"]', '["a.test", "A.test"]'))

        assert (error.line, error.key) == (13, "domains.relay")
        assert "'a.test' is listed twice" in error.detail

    def test_delay_warning_after_lifetime(self, tmp_path: Path) -> None:
        """A short lifetime under the default delay warning is blamed on the lifetime line."""
        error = error_of(tmp_path, SAMPLE + '[queue]\nlifetime = "1h"\n')

        assert (error.line, error.key) == (17, "queue.lifetime")
        assert error.detail.startswith("the delay warning")

    def test_delay_warning_after_lifetime_both_written(self, tmp_path: Path) -> None:
        """With both keys in the file, the delay warning is the one at fault."""
        text = SAMPLE + '[queue]\nlifetime = "1h"\ndelay_warning = "2h"\n'

        error = error_of(tmp_path, text)

        assert (error.line, error.key) == (18, "queue.delay_warning")

    def test_table_declared_twice_is_reported_at_its_second_header(self, tmp_path: Path) -> None:
        """A repeated [domains] is a syntax error placed on the repeat, naming the table."""
        error = error_of(tmp_path, SAMPLE + '\n[domains]\nlocal = ["b.test"]\n')

        assert (error.line, error.key) == (17, "domains")
        assert "twice" in error.detail

    def test_syntax_error_keeps_tomllib_line(self, tmp_path: Path) -> None:
        """A TOML syntax error reports tomllib's line and the key on it."""
        error = error_of(tmp_path, SAMPLE.replace('relay = ["example.test"]', "relay = [example]"))

        assert error.line == 13
        assert error.key == "domains.relay"
        assert str(error).startswith(
            f"{tmp_path}/mailwright.toml:13: domains.relay: invalid TOML:"
        )

    def test_missing_file(self, tmp_path: Path) -> None:
        """A file that cannot be read is a ConfigError naming it."""
        with pytest.raises(ConfigError, match=r"nope\.toml: cannot read the file"):
            load_config(tmp_path / "nope.toml")

    def test_invalid_utf8(self, tmp_path: Path) -> None:
        """Bytes that are not UTF-8 are reported with their line."""
        path = tmp_path / "mailwright.toml"
        path.write_bytes(b"[server]\nhostname = '\xff'\n")

        with pytest.raises(ConfigError) as caught:
            load_config(path)

        assert caught.value.line == 2


@dataclass(frozen=True)
class _SignKey:
    domain: str
    selector: str = "mail"


@dataclass(frozen=True)
class _Dkim:
    sign: tuple[_SignKey, ...] = ()


@dataclass(frozen=True)
class _WithDkim:
    dkim: _Dkim = _Dkim()


class TestExtending:
    def test_a_new_section_is_one_dataclass(self, tmp_path: Path) -> None:
        """A later section such as [[dkim.sign]] needs only its dataclass to be read."""
        text = (
            "[[dkim.sign]]\ndomain = 'a.test'\n[[dkim.sign]]\ndomain = 'b.test'\nselctor = 's'\n"
        )
        import tomllib

        context = Context(tmp_path, "f.toml", locate_keys(text))
        data = tomllib.loads(text)

        with pytest.raises(
            ConfigError, match=r"^f\.toml:5: dkim\.sign\[1\]\.selctor: unknown key"
        ):
            convert_table(_WithDkim, data, context)
        good = convert_table(
            _WithDkim, tomllib.loads(text.replace("selctor", "selector")), context
        )
        assert good.dkim.sign == (_SignKey("a.test"), _SignKey("b.test", "s"))


def _write_key(path: Path, kind: str, bits: int = 2048) -> Path:
    """A private key file of ``kind`` (rsa of ``bits``, or ed25519), PKCS#8 PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    key = (
        rsa.generate_private_key(public_exponent=65537, key_size=bits)
        if kind == "rsa"
        else ed25519.Ed25519PrivateKey.generate()
    )
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


class TestDkim:
    """``[dkim]``: keys are checked when the file is loaded."""

    def test_two_entries_for_a_domain_load(self, tmp_path: Path) -> None:
        """An RSA and an Ed25519 entry load; the default internal hosts are loopback."""
        _write_key(tmp_path / "rsa.key", "rsa")
        _write_key(tmp_path / "ed.key", "ed25519")
        text = SAMPLE + (
            '[[dkim.sign]]\ndomain = "Example.test"\nselector = "s2026"\nkey = "rsa.key"\n'
            '[[dkim.sign]]\ndomain = "example.test"\nselector = "e2026"\nkey = "ed.key"\n'
            'algorithm = "ed25519"\nexpire = "7d"\n'
        )

        config = load_text(tmp_path, text)

        rsa_entry, ed_entry = config.dkim.sign
        assert (rsa_entry.domain, rsa_entry.selector, rsa_entry.algorithm) == (
            "example.test",
            "s2026",
            "rsa",
        )
        assert rsa_entry.key == tmp_path / "rsa.key"
        assert (ed_entry.algorithm, ed_entry.expire) == ("ed25519", 7 * 86400.0)
        assert config.dkim.internal_hosts == ("127.0.0.0/8", "::1/128")

    def test_a_missing_key_file_names_its_entry(self, tmp_path: Path) -> None:
        """A key that cannot be read is dkim.sign[0].key on its line."""
        text = SAMPLE + '[[dkim.sign]]\ndomain = "example.test"\nselector = "s"\nkey = "no.key"\n'

        error = error_of(tmp_path, text)

        assert (error.line, error.key) == (19, "dkim.sign[0].key")
        assert "cannot read the key" in error.detail

    def test_a_key_of_the_wrong_type_names_the_algorithm(self, tmp_path: Path) -> None:
        """An Ed25519 key under algorithm = "rsa" is refused on the algorithm key."""
        _write_key(tmp_path / "ed.key", "ed25519")
        text = SAMPLE + '[[dkim.sign]]\ndomain = "example.test"\nselector = "s"\nkey = "ed.key"\n'

        error = error_of(tmp_path, text)

        assert error.key == "dkim.sign[0].algorithm"
        assert "ed25519 key, not rsa" in error.detail

    def test_a_short_rsa_key_is_refused(self, tmp_path: Path) -> None:
        """RSA under 1024 bits is refused at load time (RFC 8301 §3.2)."""
        # cryptography will not make such a key; OpenSSL's command line still does.
        made = subprocess.run(
            ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:768"],
            capture_output=True,
            check=True,
        )
        (tmp_path / "short.key").write_bytes(made.stdout)
        text = SAMPLE + (
            '[[dkim.sign]]\ndomain = "example.test"\nselector = "s"\nkey = "short.key"\n'
        )

        error = error_of(tmp_path, text)

        assert error.key == "dkim.sign[0].key"
        assert "1024" in error.detail

    def test_a_bad_internal_network_is_named(self, tmp_path: Path) -> None:
        """internal_hosts entries must be networks."""
        error = error_of(tmp_path, SAMPLE + '[dkim]\ninternal_hosts = ["10.0.0.0/33"]\n')

        assert error.key == "dkim.internal_hosts[0]"
