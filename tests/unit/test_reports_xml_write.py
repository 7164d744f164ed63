"""Tests for mailwright.reports.xml_write: RFC 9990 XML, checked by the schema and parsedmarc."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.dmarc_reports import parse_back, policy, row, schema, validate

from mailwright.reports.model import (
    NAMESPACE,
    OVERRIDE_TYPES,
    AggregateReport,
    DkimAuth,
    OverrideReason,
    PolicyPublished,
    ReportMetadata,
    Row,
    SpfAuth,
)
from mailwright.reports.xml_write import ReportFormatError, to_xml

NS = {"d": NAMESPACE}


def report(
    *rows: Row, published: PolicyPublished | None = None, **metadata: object
) -> AggregateReport:
    fields: dict[str, object] = {
        "org_name": "Example Receiver",
        "email": "dmarc-reports@mx.example.net",
        "report_id": "1772409600.0123abcd.example.com@mx.example.net",
        "begin": 1772409600,
        "end": 1772495999,
        "generator": "mailwright 0.1.0",
    }
    fields.update(metadata)
    return AggregateReport(
        metadata=ReportMetadata(**fields),  # type: ignore[arg-type]
        policy=published or policy(),
        rows=rows or (row(),),
    )


def children(element: ET.Element) -> list[str]:
    return [child.tag.removeprefix(f"{{{NAMESPACE}}}") for child in element]


def test_schema_override_types_match_the_model() -> None:
    """The schema's PolicyOverrideType lists exactly the model's OVERRIDE_TYPES."""
    enumeration = schema().types["PolicyOverrideType"].enumeration

    assert sorted(enumeration) == sorted(OVERRIDE_TYPES)


def test_document_starts_with_a_utf8_declaration_and_the_namespace() -> None:
    """The bytes open with the XML declaration; the root is feedback in the dmarc-2.0 namespace."""
    xml = to_xml(report())

    assert xml.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<feedback xmlns="')
    root = ET.fromstring(xml)
    assert root.tag == f"{{{NAMESPACE}}}feedback"
    assert root.findtext("d:version", namespaces=NS) == "1.0"


def test_elements_come_in_schema_order() -> None:
    """First-level, metadata, policy, record and row elements follow RFC 9990's tables."""
    root = ET.fromstring(
        to_xml(
            report(
                row(reasons=(OverrideReason("local_policy", "allow list"),)),
                published=policy(fo="1", discovery_method="treewalk"),
                extra_contact_info="https://mx.example.net/dmarc",
                errors=("rua: bad URI",),
            )
        )
    )

    assert children(root) == ["version", "report_metadata", "policy_published", "record"]
    assert children(root.find("d:report_metadata", NS)) == [  # type: ignore[arg-type]
        "org_name",
        "email",
        "extra_contact_info",
        "report_id",
        "date_range",
        "error",
        "generator",
    ]
    assert children(root.find("d:policy_published", NS)) == [  # type: ignore[arg-type]
        "domain",
        "discovery_method",
        "p",
        "sp",
        "np",
        "fo",
        "adkim",
        "aspf",
        "testing",
    ]
    record = root.find("d:record", NS)
    assert record is not None
    assert children(record) == ["row", "identifiers", "auth_results"]
    assert children(record.find("d:row", NS)) == ["source_ip", "count", "policy_evaluated"]  # type: ignore[arg-type]
    evaluated = record.find("d:row/d:policy_evaluated", NS)
    assert children(evaluated) == ["disposition", "dkim", "spf", "reason"]  # type: ignore[arg-type]
    assert children(record.find("d:auth_results", NS)) == ["dkim", "spf"]  # type: ignore[arg-type]


def test_a_full_report_validates_and_parses_back_field_by_field() -> None:
    """Every field we write is valid under the schema and read back unchanged by parsedmarc."""
    rows = (
        row("192.0.2.7", disposition="none"),
        row(
            "2001:db8::25",
            disposition="quarantine",
            dkim="fail",
            spf="fail",
            header_from="news.example.com",
            envelope_from="bounce.example.org",
            reasons=(OverrideReason("mailing_list", "list.example.net"),),
            dkim_results=(
                DkimAuth("list.example.net", "pass", "k1", human_result="good"),
                DkimAuth("news.example.com", "fail", "s2", human_result="body hash"),
            ),
            spf_results=(SpfAuth("bounce.example.org", "softfail", human_result="~all"),),
        ),
    )
    xml = to_xml(report(*rows, published=policy(p="quarantine", sp="none", adkim="s")))

    validate(xml)
    parsed = parse_back(xml)
    assert parsed["report_metadata"]["org_name"] == "Example Receiver"
    assert parsed["report_metadata"]["org_email"] == "dmarc-reports@mx.example.net"
    assert parsed["policy_published"]["domain"] == "example.com"
    assert parsed["policy_published"]["p"] == "quarantine"
    assert parsed["policy_published"]["sp"] == "none"
    assert parsed["policy_published"]["adkim"] == "s"
    first, second = parsed["records"]
    assert first["source"]["ip_address"] == "192.0.2.7"
    assert first["count"] == 1
    assert first["policy_evaluated"]["disposition"] == "none"
    assert second["source"]["ip_address"] == "2001:db8::25"
    assert second["policy_evaluated"] == {
        "disposition": "quarantine",
        "dkim": "fail",
        "spf": "fail",
        "policy_override_reasons": [{"type": "mailing_list", "comment": "list.example.net"}],
    }
    assert second["identifiers"]["header_from"] == "news.example.com"
    assert second["identifiers"]["envelope_from"] == "bounce.example.org"
    assert [(d["domain"], d["selector"], d["result"]) for d in second["auth_results"]["dkim"]] == [
        ("list.example.net", "k1", "pass"),
        ("news.example.com", "s2", "fail"),
    ]
    assert [(s["domain"], s["result"]) for s in second["auth_results"]["spf"]] == [
        ("bounce.example.org", "softfail")
    ]


def test_markup_in_values_is_escaped_by_the_library() -> None:
    """Values holding <, & and quotes come back as text, never as markup."""
    nasty = "x</comment><type>other</type>&amp;\"'"
    xml = to_xml(report(row(reasons=(OverrideReason("other", nasty),))))

    validate(xml)
    root = ET.fromstring(xml)
    assert root.findtext("d:record/d:row/d:policy_evaluated/d:reason/d:comment", None, NS) == nasty


def test_characters_xml_cannot_carry_become_replacement_characters() -> None:
    """NUL and other C0 controls (but tab and line breaks) are written as U+FFFD."""
    xml = to_xml(report(row(reasons=(OverrideReason("other", "a\x00b\x1bc\td"),))))

    validate(xml)
    comment = ET.fromstring(xml).findtext(".//d:comment", None, NS)
    assert comment == "a\ufffdb\ufffdc\td"


def test_missing_tags_are_written_with_their_defaults() -> None:
    """sp defaults to p, np to sp, adkim and aspf to r, testing to n; pct is not written."""
    xml = to_xml(report(published=PolicyPublished(domain="example.com", p="quarantine", pct=50)))

    published = ET.fromstring(xml).find("d:policy_published", NS)
    assert published is not None
    values = {child.tag.split("}")[1]: child.text for child in published}
    assert values == {
        "domain": "example.com",
        "p": "quarantine",
        "sp": "quarantine",
        "np": "quarantine",
        "adkim": "r",
        "aspf": "r",
        "testing": "n",
    }


def test_legacy_pct_zero_is_reported_as_testing() -> None:
    """A record with pct=0 and no t tag asked for test mode: testing is y."""
    xml = to_xml(report(published=PolicyPublished(domain="example.com", p="reject", pct=0)))

    assert ET.fromstring(xml).findtext("d:policy_published/d:testing", None, NS) == "y"


def test_np_defaults_to_sp_when_only_sp_is_published() -> None:
    """A record with p=reject and sp=none reports np=none."""
    xml = to_xml(report(published=policy(p="reject", sp="none")))

    assert ET.fromstring(xml).findtext("d:policy_published/d:np", None, NS) == "none"


@pytest.mark.parametrize("legacy", ["forwarded", "sampled_out"])
def test_override_types_the_schema_lacks_become_other(legacy: str) -> None:
    """RFC 7489 override types are written as other, the original type kept in the comment."""
    xml = to_xml(report(row(reasons=(OverrideReason(legacy, "via relay"),))))

    validate(xml)
    reason = ET.fromstring(xml).find(".//d:reason", NS)
    assert reason is not None
    assert reason.findtext("d:type", None, NS) == "other"
    assert reason.findtext("d:comment", None, NS) == f"{legacy}: via relay"


def test_several_errors_are_joined_into_the_one_error_element() -> None:
    """The schema allows one error element; several errors are joined with semicolons."""
    xml = to_xml(report(errors=("sp: bad value", "rua: not a URI")))

    validate(xml)
    errors = ET.fromstring(xml).findall("d:report_metadata/d:error", NS)
    assert [element.text for element in errors] == ["sp: bad value; rua: not a URI"]


def test_only_the_first_spf_result_and_only_mfrom_scope_are_written() -> None:
    """At most one spf element; a helo scope is left out (RFC 9990 knows only mfrom)."""
    the_row = row(spf_results=(SpfAuth("mx.example.org", "pass", "helo"), SpfAuth("x", "fail")))
    xml = to_xml(report(the_row))

    validate(xml)
    spf = ET.fromstring(xml).findall(".//d:auth_results/d:spf", NS)
    assert len(spf) == 1
    assert children(spf[0]) == ["domain", "result"]
    assert spf[0].findtext("d:domain", None, NS) == "mx.example.org"


def test_a_dkim_result_without_selector_gets_an_empty_selector() -> None:
    """The schema requires a selector: an unknown one is written empty."""
    xml = to_xml(report(row(dkim_results=(DkimAuth("example.com", "permerror"),))))

    validate(xml)
    assert ET.fromstring(xml).findtext(".//d:dkim/d:selector", None, NS) == ""


def test_null_reverse_path_gives_an_empty_envelope_from() -> None:
    """envelope_from "" is written as an empty element; None leaves it out."""
    empty = ET.fromstring(to_xml(report(row(envelope_from=""))))
    absent = ET.fromstring(to_xml(report(row(envelope_from=None, envelope_to=None))))

    assert empty.findtext(".//d:identifiers/d:envelope_from", None, NS) == ""
    assert children(absent.find(".//d:identifiers", NS)) == ["header_from"]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("the_row", "published", "field"),
    [
        (row(disposition="discard"), policy(), "disposition"),
        (row(dkim="none"), policy(), "policy_evaluated/dkim"),
        (row(dkim_results=(DkimAuth("x", "invalid", "s"),)), policy(), "auth_results/dkim"),
        (row(), policy(p="monitor"), "policy_published/p"),
        (row(), policy(adkim="x"), "policy_published/adkim"),
    ],
)
def test_words_outside_the_schema_raise(
    the_row: Row, published: PolicyPublished, field: str
) -> None:
    """A value the schema does not enumerate raises ReportFormatError naming the field."""
    with pytest.raises(ReportFormatError, match=field):
        to_xml(report(the_row, published=published))


def test_a_report_without_rows_raises() -> None:
    """The schema requires at least one record."""
    empty = AggregateReport(report().metadata, policy(), rows=())

    with pytest.raises(ReportFormatError, match="no rows"):
        to_xml(empty)


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(max_size=40),
    count=st.integers(min_value=0, max_value=10**12),
    ip=st.ip_addresses().map(str),
)
def test_any_text_and_count_give_a_valid_document(text: str, count: int, ip: str) -> None:
    """Whatever text the comments, names and results hold, the document stays schema-valid."""
    the_row = row(
        ip,
        reasons=(OverrideReason("other", text),),
        dkim_results=(DkimAuth("example.com", "pass", text, human_result=text),),
    ).with_count(count)

    xml = to_xml(report(the_row, org_name=text or "x"))

    validate(xml)
    assert ET.fromstring(xml).findtext(".//d:row/d:count", None, NS) == str(count)
