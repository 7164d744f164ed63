"""Rendering templates: escaping, strict variables, the sandbox, checks, footers and digests."""

from __future__ import annotations

from typing import Any

import pytest

from mailwright.notify.errors import InvalidInput
from mailwright.notify.model import Category, Template
from mailwright.notify.render import Links, Renderer, RenderError
from mailwright.notify.store.base import DigestItem

LINKS = Links("https://prefs.example/p/TOKEN", "https://prefs.example/u/TOKEN")
TRANSACTIONAL = Links("https://prefs.example/p/TOKEN", None)
COMMENT = Template(
    name="comment",
    subject="New comment from {{ who }}",
    text="{{ who }} wrote:\n{{ body }}\n",
    html="<html><body><p><b>{{ who }}</b> wrote: {{ body }}</p></body></html>",
    sms="{{ who }}: {{ body }}",
    updated_at=1.0,
)
COMMENTS = Category(
    name="comments",
    legal_class="transactional",
    defaults={"email": "daily"},
    description="Comments on your posts",
)


@pytest.fixture
def renderer() -> Renderer:
    return Renderer()


def item(number: int, template: str = "comment", **data: Any) -> DigestItem:
    return DigestItem(
        notification_id=f"n{number}",
        recipient_id="user-1",
        category="comments",
        channel="email",
        created_at=1000.0 + number,
        template=template,
        due_at=5000.0,
        data={"who": f"person {number}", "body": f"comment {number}", **data},
    )


# -- escaping and the subject ---------------------------------------------------------


def test_html_is_escaped_and_text_is_not(renderer: Renderer) -> None:
    """Markup in data is escaped in the HTML part and left as written in subject and text."""
    data = {"who": "<script>x</script> & co", "body": "1 < 2"}

    email = renderer.email(COMMENT, data, links=LINKS)

    assert "&lt;script&gt;x&lt;/script&gt; &amp; co" in (email.html or "")
    assert "<script>" not in (email.html or "")
    assert email.text.startswith("<script>x</script> & co wrote:\n1 < 2\n")
    assert email.subject == "New comment from <script>x</script> & co"


def test_subject_is_one_line_whatever_the_data(renderer: Renderer) -> None:
    """CR LF in data cannot start a new header field: the subject is folded to one line."""
    email = renderer.email(
        COMMENT, {"who": "Ann\r\nBcc: all@example.com", "body": ""}, links=LINKS
    )

    assert email.subject == "New comment from Ann Bcc: all@example.com"


def test_links_are_available_to_templates(renderer: Renderer) -> None:
    """Templates can place links.preferences_url and links.unsubscribe_url themselves."""
    template = Template(
        "t", subject="s", text="Prefs: {{ links.preferences_url }} / {{ links.unsubscribe_url }}"
    )

    email = renderer.email(template, {}, links=LINKS)

    assert email.text.startswith(
        "Prefs: https://prefs.example/p/TOKEN / https://prefs.example/u/TOKEN"
    )


def test_data_cannot_replace_the_links(renderer: Renderer) -> None:
    """A data key named links does not override the links mailwright gives."""
    template = Template("t", subject="s", text="{{ links.preferences_url }}")

    email = renderer.email(template, {"links": {"preferences_url": "https://evil"}}, links=LINKS)

    assert "evil" not in email.text


# -- footers --------------------------------------------------------------------------


def test_commercial_footer_has_both_links_in_both_parts(renderer: Renderer) -> None:
    """With an unsubscribe link, text and HTML both end with preferences and unsubscribe."""
    email = renderer.email(COMMENT, {"who": "a", "body": "b"}, links=LINKS)

    assert email.text.endswith(
        "\n-- \nManage your notification preferences: https://prefs.example/p/TOKEN\n"
        "Unsubscribe: https://prefs.example/u/TOKEN\n"
    )
    html = email.html or ""
    assert '<a href="https://prefs.example/p/TOKEN">' in html
    assert '<a href="https://prefs.example/u/TOKEN">Unsubscribe</a>' in html
    assert html.index("mailwright-footer") < html.index("</body>")


def test_transactional_footer_has_only_the_preference_link(renderer: Renderer) -> None:
    """Without an unsubscribe link the footer offers the preference centre alone."""
    email = renderer.email(COMMENT, {"who": "a", "body": "b"}, links=TRANSACTIONAL)

    assert "Unsubscribe" not in email.text
    assert "Unsubscribe" not in (email.html or "")
    assert "https://prefs.example/p/TOKEN" in email.text
    assert "https://prefs.example/p/TOKEN" in (email.html or "")


def test_footer_is_appended_to_html_without_body(renderer: Renderer) -> None:
    """An HTML fragment gets the footer at its end; its link is escaped as an attribute."""
    template = Template("t", subject="s", text="t", html="<p>hi</p>")
    links = Links('https://prefs.example/p?a=1&b="2"', None)

    html = renderer.email(template, {}, links=links).html or ""

    assert html.startswith("<p>hi</p>\n<hr>")
    assert 'href="https://prefs.example/p?a=1&amp;b=&#34;2&#34;"' in html


def test_text_only_template_renders_no_html(renderer: Renderer) -> None:
    """A template without HTML gives a text-only email."""
    email = renderer.email(Template("t", subject="s", text="hello"), {}, links=LINKS)

    assert email.html is None
    assert email.text.startswith("hello\n\n-- \n")


# -- missing variables and failures ---------------------------------------------------


def test_missing_variable_fails_with_its_name_and_part(renderer: Renderer) -> None:
    """StrictUndefined: a missing variable is a RenderError naming it, the part and line."""
    template = Template("t", subject="s", text="line one\nHello {{ name }}")

    with pytest.raises(RenderError, match="'name' is undefined") as caught:
        renderer.email(template, {}, links=LINKS)

    assert isinstance(caught.value, InvalidInput)
    assert caught.value.errors[0].pointer == "/text"
    assert caught.value.errors[0].detail.startswith("line 2: ")


def test_templates_may_allow_a_missing_variable(renderer: Renderer) -> None:
    """default() and `is defined` still work under StrictUndefined."""
    template = Template(
        "t",
        subject="Hi {{ name | default('there') }}",
        text="{% if name is defined %}{{ name }}{% else %}friend{% endif %}",
    )

    email = renderer.email(template, {}, links=LINKS)

    assert email.subject == "Hi there"
    assert email.text.startswith("friend")


def test_empty_subject_fails(renderer: Renderer) -> None:
    """A subject that renders to nothing is a failure, not a blank Subject field."""
    template = Template("t", subject="{{ s }}", text="x")

    with pytest.raises(RenderError, match="subject renders empty"):
        renderer.email(template, {"s": "  \n "}, links=LINKS)


def test_runtime_errors_become_render_errors(renderer: Renderer) -> None:
    """An exception inside a template (division by zero) is a RenderError with its message."""
    with pytest.raises(RenderError, match="ZeroDivisionError"):
        renderer.sms(Template("t", sms="{{ 1 / n }}"), {"n": 0}, links=LINKS)


def test_missing_parts_fail(renderer: Renderer) -> None:
    """Rendering email from an SMS-only template, or SMS from an email one, fails."""
    with pytest.raises(RenderError, match="no email parts"):
        renderer.email(Template("t", sms="x"), {}, links=LINKS)
    with pytest.raises(RenderError, match="no SMS part") as caught:
        renderer.sms(Template("t", subject="s", text="x"), {}, links=LINKS)

    assert caught.value.errors[0].pointer == "/sms"


# -- the sandbox ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ items.append(4) }}",
        "{{ conf.update({'a': 1}) }}",
    ],
)
def test_sandbox_refuses_escapes_and_mutation(renderer: Renderer, source: str) -> None:
    """Reaching Python internals or mutating data fails as a RenderError, not a leak."""
    template = Template("evil", sms=source)

    with pytest.raises(RenderError, match=r"SecurityError|UndefinedError") as caught:
        renderer.sms(template, {"items": [1, 2, 3], "conf": {}}, links=LINKS)

    assert "<class" not in caught.value.detail
    assert caught.value.errors[0].pointer == "/sms"


@pytest.mark.parametrize("source", ["{{ 'x' * 10**9 }}", "{{ [1] * n }}", "{{ 2 ** 100000 }}"])
def test_sandbox_refuses_huge_repetition_and_powers(renderer: Renderer, source: str) -> None:
    """Repeating a string to a gigabyte or computing a huge power fails fast."""
    with pytest.raises(RenderError, match="SecurityError"):
        renderer.sms(Template("t", sms=source), {"n": 10**8}, links=LINKS)


def test_sandbox_allows_ordinary_arithmetic(renderer: Renderer) -> None:
    """Small repetitions and powers still work."""
    text = renderer.sms(Template("t", sms="{{ '-' * 3 }}{{ 2 ** 10 }}"), {}, links=LINKS)

    assert text == "---1024"


# -- checking -------------------------------------------------------------------------


def test_check_accepts_a_good_template(renderer: Renderer) -> None:
    """A template that compiles and has subject and text passes."""
    renderer.check(COMMENT)
    renderer.check(Template("sms-only", sms="hi"))


def test_check_points_at_each_broken_part_with_its_line(renderer: Renderer) -> None:
    """Syntax errors are reported per part as /html, /sms with the template line."""
    template = Template(
        "broken", subject="ok", text="ok", html="<p>\n\n{% if x %}</p>", sms="{{ oops"
    )

    with pytest.raises(InvalidInput) as caught:
        renderer.check(template)

    errors = {error.pointer: error.detail for error in caught.value.errors}
    assert set(errors) == {"/html", "/sms"}
    assert errors["/html"].startswith("line 3: ")
    assert errors["/sms"].startswith("line 1: ")


def test_check_requires_the_email_parts_together(renderer: Renderer) -> None:
    """HTML or a subject without text, or text without a subject, is refused."""
    with pytest.raises(InvalidInput) as no_text:
        renderer.check(Template("t", subject="s", html="<p>x</p>"))
    with pytest.raises(InvalidInput) as no_subject:
        renderer.check(Template("t", text="x"))

    assert [error.pointer for error in no_text.value.errors] == ["/text"]
    assert [error.pointer for error in no_subject.value.errors] == ["/subject"]


def test_sendable_tells_channels_apart() -> None:
    """An email needs subject and text; an SMS needs the sms part."""
    assert Renderer.sendable(COMMENT, "email")
    assert not Renderer.sendable(Template("t", sms="x"), "email")
    assert Renderer.sendable(Template("t", sms="x"), "sms")


# -- the compiled cache ---------------------------------------------------------------


def test_compiled_parts_are_cached_by_name_version_and_part(
    renderer: Renderer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rendering the same template version again does not compile it again."""
    compiled: list[str] = []
    original = renderer._plain.from_string

    def counting(source: str) -> Any:
        compiled.append(source)
        return original(source)

    monkeypatch.setattr(renderer._plain, "from_string", counting)
    template = Template("t", sms="hi {{ n }}", updated_at=1.0)

    for number in range(5):
        assert renderer.sms(template, {"n": number}, links=LINKS) == f"hi {number}"

    assert compiled == ["hi {{ n }}"]


def test_changed_source_is_never_served_from_the_cache(renderer: Renderer) -> None:
    """A new version, or the same version with other source, renders the new source."""
    renderer.sms(Template("t", sms="old", updated_at=1.0), {}, links=LINKS)

    newer = renderer.sms(Template("t", sms="new", updated_at=2.0), {}, links=LINKS)
    same_version = renderer.sms(Template("t", sms="other", updated_at=1.0), {}, links=LINKS)

    assert (newer, same_version) == ("new", "other")


# -- SMS ------------------------------------------------------------------------------


def test_sms_is_stripped_and_unescaped(renderer: Renderer) -> None:
    """SMS text is not HTML-escaped and loses outer white space."""
    text = renderer.sms(COMMENT, {"who": "Ann & Bob", "body": "<3 "}, links=LINKS)

    assert text == "Ann & Bob: <3"


# -- digests --------------------------------------------------------------------------


def test_digest_email_shows_count_newest_items_and_the_rest(renderer: Renderer) -> None:
    """The digest states the true count, shows its items newest first, and says K more."""
    items = [item(1), item(3), item(2)]

    email = renderer.digest_email(
        COMMENTS, items, 10, {"comment": COMMENT}, links=TRANSACTIONAL, auto=False, locale="en"
    )

    assert email.subject == "10 new notifications in Comments on your posts"
    text = email.text
    assert text.index("person 3 wrote") < text.index("person 2 wrote") < text.index("person 1")
    assert "New comment from person 3" in text
    assert "and 7 more." in text
    assert "daily digest automatically" not in text
    html = email.html or ""
    assert html.index("<b>person 3</b>") < html.index("<b>person 1</b>")
    assert "and 7 more." in html
    assert "https://prefs.example/p/TOKEN" in text
    assert "https://prefs.example/p/TOKEN" in html
    assert email.problems == ()


def test_digest_email_escapes_item_data_and_uses_text_without_html(renderer: Renderer) -> None:
    """An item whose template has no HTML is shown as escaped text in the HTML part."""
    plain = Template("plain", subject="Note", text="{{ body }}")

    email = renderer.digest_email(
        COMMENTS,
        [item(1, template="plain", body="<img src=x onerror=alert(1)>")],
        1,
        {"plain": plain},
        links=LINKS,
        auto=False,
        locale="en",
    )

    assert email.subject == "1 new notification in Comments on your posts"
    assert "&lt;img src=x onerror=alert(1)&gt;" in (email.html or "")
    assert "<img" not in (email.html or "")
    assert "more." not in email.text
    assert "Unsubscribe: https://prefs.example/u/TOKEN" in email.text


def test_automatic_digest_says_so_with_a_revert_link(renderer: Renderer) -> None:
    """An automatic digest explains the switch and links back to instant in both parts."""
    links = Links("https://prefs.example/p/T", None, revert_url="https://prefs.example/r/T")

    email = renderer.digest_email(
        COMMENTS, [item(1)], 41, {"comment": COMMENT}, links=links, auto=True, locale="de"
    )

    assert "switched them to a daily digest automatically" in email.text
    assert "https://prefs.example/r/T" in email.text
    html = email.html or ""
    assert '<a href="https://prefs.example/r/T">' in html
    assert '<html lang="de">' in html


def test_a_broken_item_does_not_hold_back_the_digest(renderer: Renderer) -> None:
    """Items whose template is gone or whose data fails show a placeholder and are listed."""
    needs = Template("needs", subject="s", text="{{ missing }}")
    items = [item(1), item(2, template="gone"), item(3, template="needs")]

    email = renderer.digest_email(
        COMMENTS,
        items,
        3,
        {"comment": COMMENT, "needs": needs},
        links=LINKS,
        auto=False,
        locale="en",
    )

    assert email.text.count("This notification could not be shown.") == 2
    assert "person 1 wrote" in email.text
    assert [problem.split(":")[0] for problem in email.problems] == ["n3", "n2"]
    assert "'missing' is undefined" in email.problems[0]


def test_sms_only_template_items_appear_in_email_digests(renderer: Renderer) -> None:
    """An item from an SMS-only template is shown through its SMS text."""
    sms_only = Template("alert", sms="Job alert: {{ body }}")

    email = renderer.digest_email(
        COMMENTS,
        [item(1, template="alert")],
        1,
        {"alert": sms_only},
        links=LINKS,
        auto=False,
        locale="en",
    )

    assert "Job alert: comment 1" in email.text
    assert email.problems == ()


def test_digest_sms_is_a_short_summary_with_links(renderer: Renderer) -> None:
    """The SMS digest gives the count, the category, the newest item in brief and the links."""
    links = Links("https://p.example/p", None, revert_url="https://p.example/r")
    items = [item(1), item(2, body="x" * 200)]

    manual = renderer.digest_sms(
        COMMENTS, items, 12, {"comment": COMMENT}, links=links, auto=False, locale="en"
    )
    automatic = renderer.digest_sms(
        COMMENTS, items[:1], 1, {}, links=links, auto=True, locale="en"
    )

    assert manual.startswith('12 new notifications in Comments on your posts. Latest: "person 2')
    assert '..."' in manual
    assert manual.endswith(". See all: https://p.example/p")
    assert automatic.startswith("1 new notification in Comments on your posts. See all:")
    assert "instant again: https://p.example/r" in automatic
