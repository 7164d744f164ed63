"""Input checks of the notification layer: single values and whole values, with pointers."""

from __future__ import annotations

import pytest

from mailwright.notify import validate
from mailwright.notify.errors import InvalidInput
from mailwright.notify.model import (
    ALL_CATEGORIES,
    Category,
    ChannelPreference,
    ConsentEntry,
    ConsentSource,
    Evidence,
    Preferences,
    QuietHours,
    Recipient,
)


def pointers(exc: pytest.ExceptionInfo[InvalidInput]) -> list[str]:
    return [error.pointer for error in exc.value.errors]


# -- single values ---------------------------------------------------------------------


@pytest.mark.parametrize("number", ["+4915112345678", "+12", "+123456789012345"])
def test_e164_accepts_canonical_numbers(number: str) -> None:
    """Numbers of + and 2 to 15 digits without a leading zero pass unchanged."""
    assert validate.e164(number, "/phones/0") == number


@pytest.mark.parametrize(
    "number",
    ["4915112345678", "+0151", "+1", "+1234567890123456", "+49 151 1234", "+49-151", "", 4915],
)
def test_e164_refuses_other_shapes_naming_the_pointer(number: object) -> None:
    """Missing +, leading zero, too short or long, separators, non-strings: refused."""
    with pytest.raises(InvalidInput) as exc:
        validate.e164(number, "/phones/3")
    assert pointers(exc) == ["/phones/3"]


@pytest.mark.parametrize("zone", ["Europe/Berlin", "UTC", "America/Argentina/Buenos_Aires"])
def test_time_zone_accepts_iana_names(zone: str) -> None:
    """Names of the zone database pass."""
    assert validate.time_zone(zone, "/time_zone") == zone


@pytest.mark.parametrize(
    "zone",
    ["localtime", "Factory", "/etc/localtime", "../zoneinfo/UTC", "Europe/Nowhere", "CET-1", ""],
)
def test_time_zone_refuses_localtime_paths_and_unknown_names(zone: str) -> None:
    """The server's own zone, file paths, POSIX strings and unknown names are refused."""
    with pytest.raises(InvalidInput) as exc:
        validate.time_zone(zone, "/time_zone")
    assert pointers(exc) == ["/time_zone"]


@pytest.mark.parametrize(
    ("tag", "canonical"),
    [
        ("en", "en"),
        ("pt-br", "pt-BR"),
        ("ZH-hant-tw", "zh-Hant-TW"),
        ("de-CH-1996", "de-CH-1996"),
        ("es-419", "es-419"),
        ("en-US-x-Twain", "en-US-x-twain"),
    ],
)
def test_locale_accepts_bcp47_tags_in_canonical_case(tag: str, canonical: str) -> None:
    """Language lower, script title, region upper case (RFC 5646 §2.1.1)."""
    assert validate.locale(tag, "/locale") == canonical


@pytest.mark.parametrize("tag", ["", "e", "en_US", "englishlanguage", "x-private", "en--US"])
def test_locale_refuses_other_shapes(tag: str) -> None:
    """Underscores, empty subtags, over-long languages and bare private use are refused."""
    with pytest.raises(InvalidInput) as exc:
        validate.locale(tag, "/locale")
    assert pointers(exc) == ["/locale"]


@pytest.mark.parametrize(
    ("address", "normal"),
    [
        ("User.Name+tag@Example.COM", "User.Name+tag@example.com"),
        ("a@bücher.de", "a@xn--bcher-kva.de"),
        ("jörg@example.org", "jörg@example.org"),
        ("x@sub.example.co.uk", "x@sub.example.co.uk"),
    ],
)
def test_email_address_lower_cases_the_domain_only(address: str, normal: str) -> None:
    """The local part keeps its case; the domain is lower-cased and in A-labels."""
    assert validate.email_address(address, "/emails/0") == normal


@pytest.mark.parametrize(
    "address",
    [
        "no-at-sign",
        "a@localhost",
        "a@b",
        "a b@example.com",
        "<a@example.com>",
        "Ann <a@example.com>",
        "a@example.com, b@example.com",
        '"quoted"@example.com',
        "a..b@example.com",
        ".a@example.com",
        "a@-bad.example",
        "a@exa_mple.com",
        "l" * 65 + "@example.com",
        "a@" + ".".join(["d" * 60] * 5) + ".com",
    ],
)
def test_email_address_refuses_anything_but_one_addr_spec(address: str) -> None:
    """Display names, lists, quoting, bad dots, bad domains and over-long parts are refused."""
    with pytest.raises(InvalidInput) as exc:
        validate.email_address(address, "/emails/2")
    assert pointers(exc) == ["/emails/2"]


def test_email_address_limits_are_octets_not_characters() -> None:
    """A 64-octet local part passes; 33 two-octet characters (66 octets) do not."""
    assert validate.email_address("l" * 64 + "@example.com", "/e")
    with pytest.raises(InvalidInput):
        validate.email_address("ö" * 33 + "@example.com", "/e")


@pytest.mark.parametrize(("value", "ok"), [("00:00", True), ("23:59", True), ("24:00", False)])
def test_hhmm_takes_times_of_day_on_the_24_hour_clock(value: str, ok: bool) -> None:
    """00:00 to 23:59 pass; 24:00 does not."""
    if ok:
        assert validate.hhmm(value, "/digest_at") == value
    else:
        with pytest.raises(InvalidInput):
            validate.hhmm(value, "/digest_at")


@pytest.mark.parametrize("value", ["9:00", "12:60", "12:5", "1200", " 12:00"])
def test_hhmm_refuses_other_shapes(value: str) -> None:
    """Single-digit hours, bad minutes and missing colons are refused."""
    with pytest.raises(InvalidInput) as exc:
        validate.hhmm(value, "/quiet_hours/start")
    assert pointers(exc) == ["/quiet_hours/start"]


@pytest.mark.parametrize("value", ["news", "job-alerts", "user:42@tenant+x_y.z", "a" * 128])
def test_name_accepts_ids_of_the_allowed_characters(value: str) -> None:
    """Letters, digits and . _ : @ + - up to 128 characters pass."""
    assert validate.name(value, "/name") == value


@pytest.mark.parametrize("value", ["", "a" * 129, "with space", "*", "a/b", "ä", None])
def test_name_refuses_empty_long_and_other_characters(value: object) -> None:
    """Empty, over-long, spaces, the wildcard, slashes, non-ASCII and non-strings are refused."""
    with pytest.raises(InvalidInput) as exc:
        validate.name(value, "/name")
    assert pointers(exc) == ["/name"]


# -- whole values ----------------------------------------------------------------------


def test_recipient_collects_every_field_error_at_once() -> None:
    """One raise names the id, each bad address, a repeat, the zone and the locale."""
    bad = Recipient(
        id="has space",
        emails=("ok@example.com", "broken", "OK@EXAMPLE.com"),
        phones=("+4915112345678", "0151"),
        time_zone="localtime",
        locale="en_GB",
    )
    with pytest.raises(InvalidInput) as exc:
        validate.recipient(bad)
    assert pointers(exc) == [
        "/id",
        "/emails/1",
        "/phones/1",
        "/time_zone",
        "/locale",
    ]
    assert "5 fields are invalid" in exc.value.detail


def test_recipient_flags_an_address_listed_twice_after_normalising() -> None:
    """Two spellings of one address are one address, listed twice."""
    with pytest.raises(InvalidInput) as exc:
        validate.recipient(Recipient("u1", emails=("a@Example.com", "a@example.COM")))
    assert pointers(exc) == ["/emails/1"]


def test_recipient_returns_addresses_and_locale_in_normal_form() -> None:
    """The returned recipient is the one to store: normal forms, everything else kept."""
    checked = validate.recipient(
        Recipient("u1", emails=("A@Bücher.DE",), phones=("+4930123",), locale="de-de")
    )
    assert checked.emails == ("A@xn--bcher-kva.de",)
    assert checked.phones == ("+4930123",)
    assert checked.locale == "de-DE"
    assert checked.time_zone == "UTC"


def good_category(**changes: object) -> Category:
    fields: dict[str, object] = {
        "name": "news",
        "legal_class": "commercial",
        "defaults": {"email": "weekly", "sms": "off"},
    }
    fields.update(changes)
    return Category(**fields)  # type: ignore[arg-type]


def test_category_accepts_a_sound_category_unchanged() -> None:
    """A valid category comes back as it went in."""
    category = good_category(quiet_hours=QuietHours("21:00", "08:00"), frequency_cap=3)
    assert validate.category(category) is category


def test_category_must_send_only_for_transactional() -> None:
    """opt_out false is refused for commercial categories and allowed for transactional."""
    with pytest.raises(InvalidInput) as exc:
        validate.category(good_category(opt_out=False))
    assert pointers(exc) == ["/opt_out"]
    assert validate.category(good_category(legal_class="transactional", opt_out=False))


def test_category_collects_every_rule_broken() -> None:
    """Defaults outside the cadences, unknown channels, bad times and caps, all at once."""
    bad = good_category(
        legal_class="marketing",
        cadences=("instant", "off", "instant"),
        defaults={"email": "weekly", "fax": "instant"},
        channel_order=("email", "pigeon"),
        urgent_order=("sms", "sms"),
        delivery="some",
        quiet_hours=QuietHours("9pm", "08:00"),
        digest_at="25:00",
        frequency_cap=0,
        auto_digest_after=True,
    )
    with pytest.raises(InvalidInput) as exc:
        validate.category(bad)
    assert pointers(exc) == [
        "/legal_class",
        "/cadences/2",
        "/defaults/email",
        "/defaults/fax",
        "/channel_order/1",
        "/urgent_order/1",
        "/delivery",
        "/quiet_hours/start",
        "/digest_at",
        "/frequency_cap",
        "/auto_digest_after",
    ]


def test_category_needs_at_least_one_default_channel() -> None:
    """A category with no channel can never be sent."""
    with pytest.raises(InvalidInput) as exc:
        validate.category(good_category(defaults={}))
    assert pointers(exc) == ["/defaults"]


def prefs(*choices: ChannelPreference, **fields: object) -> Preferences:
    return Preferences(
        recipient_id="u1",
        channels={(c.category, c.channel): c for c in choices},
        **fields,  # type: ignore[arg-type]
    )


def test_preferences_checks_each_choice_with_pointers_per_category_and_channel() -> None:
    """Unknown cadence, bad digest time, weekday out of range, non-finite pause."""
    bad = prefs(
        ChannelPreference("news", "email", "weekly", digest_at="8am", weekday=7),
        ChannelPreference("jobs", "sms", "hourly"),  # type: ignore[arg-type]
        paused_until=float("nan"),
    )
    with pytest.raises(InvalidInput) as exc:
        validate.preferences(bad)
    assert pointers(exc) == [
        "/paused_until",
        "/channels/news/email/digest_at",
        "/channels/news/email/weekday",
        "/channels/jobs/sms/cadence",
    ]


def test_preferences_against_categories_enforces_their_rules() -> None:
    """Unknown category, unused channel, disallowed cadence and must-send off are refused."""
    categories = {
        "news": good_category(cadences=("off", "weekly")),
        "security": Category(
            "security",
            "transactional",
            {"email": "instant"},
            cadences=("instant", "off"),
            opt_out=False,
        ),
    }
    bad = prefs(
        ChannelPreference("news", "email", "daily"),
        ChannelPreference("news", "sms", "off"),
        ChannelPreference("security", "email", "off"),
        ChannelPreference("security", "sms", "instant"),
        ChannelPreference("gone", "email", "off"),
    )
    with pytest.raises(InvalidInput) as exc:
        validate.preferences(bad, categories)
    assert pointers(exc) == [
        "/channels/news/email/cadence",
        "/channels/security/email/cadence",
        "/channels/security/sms",
        "/channels/gone",
    ]
    good = prefs(ChannelPreference("news", "email", "weekly", digest_at="07:30", weekday=0))
    assert validate.preferences(good, categories) is good


def entry(address: str, **fields: object) -> ConsentEntry:
    values: dict[str, object] = {
        "address": address,
        "category": "news",
        "action": "grant",
        "at": 1.0,
        "source": ConsentSource("form", "signup"),
    }
    values.update(fields)
    return ConsentEntry(**values)  # type: ignore[arg-type]


def test_consent_entries_normalise_addresses_and_name_each_bad_field() -> None:
    """Addresses come back in normal form; bad ones, bad IPs and bad kinds are named."""
    assert validate.consent_entries([entry("A@Example.COM"), entry("+4930123")]) == [
        entry("A@example.com"),
        entry("+4930123"),
    ]

    with pytest.raises(InvalidInput) as exc:
        validate.consent_entries(
            [
                entry("a@example.com", category=ALL_CATEGORIES),
                entry("+0123", evidence=Evidence(ip="300.1.1.1")),
                entry("b@example.com", category="bad name", source=ConsentSource("fax")),  # type: ignore[arg-type]
            ]
        )
    assert pointers(exc) == [
        "/entries/1/address",
        "/entries/1/evidence/ip",
        "/entries/2/category",
        "/entries/2/source/kind",
    ]


def test_escape_follows_rfc_6901() -> None:
    """~ becomes ~0 and / becomes ~1, in that order."""
    assert validate.escape("a/b~c") == "a~1b~0c"
