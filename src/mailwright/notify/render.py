"""Rendering notification templates: email parts, SMS text and digests, in a Jinja2 sandbox.

Templates are written by whoever holds an API key, and the data comes from
the sender's application, so both are treated as untrusted:

* Both environments are :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment`:
  no attribute starting with an underscore, no mutating methods on lists and
  dicts, ``range`` bounded. ``*`` and ``**`` are checked too, so that
  ``{{ 'x' * 10**9 }}`` fails instead of taking a gigabyte.
* HTML is autoescaped; subject, text and SMS are not (they are not markup,
  and escaping would show ``&amp;`` to the reader). The subject is folded to
  one line, so data holding CR LF cannot add a header field.

Missing variables: :class:`~jinja2.StrictUndefined`. The alternatives were
weighed: the default ``Undefined`` and ``ChainableUndefined`` render a
missing value as nothing, so a mail goes out saying "Hello ," or "Your order
has shipped to ." and nobody learns why. With ``StrictUndefined`` the
notification fails with a reason naming the variable (a :class:`RenderError`
the channel records in the delivery state), which the sender sees in ``GET
/v1/notifications/{id}``. Templates that mean to allow a missing value say so
with ``{% if x is defined %}`` or ``{{ x | default("") }}``.

Every email gets a footer in both parts with the preference-centre link,
and for commercial mail (when an unsubscribe link is given) the unsubscribe
link as well. Compiled templates are cached by template name, ``updated_at``
and part; a cached entry is used only while its source is unchanged.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import jinja2
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import escape

from mailwright.notify.errors import FieldError, InvalidInput
from mailwright.notify.model import Category, Channel, Template
from mailwright.notify.store.base import DigestItem

Part = Literal["subject", "text", "html", "sms"]
PARTS: tuple[Part, ...] = ("subject", "text", "html", "sms")

#: The most characters one rendered part may have.
MAX_OUTPUT = 1_000_000

#: The most characters of the newest item an SMS digest quotes.
SMS_PREVIEW = 60

#: The most compiled templates kept.
CACHE_SIZE = 1024

_BODY = re.compile(r"<body\b[^>]*>(.*)</body\s*>", re.IGNORECASE | re.DOTALL)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


class RenderError(InvalidInput):
    """A template could not be rendered with the data given; ``errors`` names the part."""

    type_slug = "render-failed"
    title = "Template could not be rendered"


@dataclass(frozen=True, slots=True)
class Links:
    """The links a message offers, as templates see them (``{{ links.preferences_url }}``).

    ``unsubscribe_url`` is the one-click page, given for commercial mail;
    ``revert_url`` switches an automatic digest back to instant.
    """

    preferences_url: str
    unsubscribe_url: str | None
    revert_url: str | None = None


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """A rendered email: a one-line subject, the text part, and the HTML part if any.

    ``problems`` lists, for digests, the items that could not be rendered and
    were replaced by a placeholder (the digest still goes out with its count).
    """

    subject: str
    text: str
    html: str | None
    problems: tuple[str, ...] = ()


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with repetition and powers bounded."""

    # TODO: rendering has no CPU time limit, and filters that pad or
    # repeat (center, indent, wordwrap with huge widths) are not bounded; a
    # hostile API-key holder could stall a worker. Rendering in a subprocess
    # with a deadline would bound both.

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*" and _repeats_too_long(left, right):
            raise jinja2.exceptions.SecurityError("the repetition is too long")
        if operator == "**" and _power_too_large(left, right):
            raise jinja2.exceptions.SecurityError("the power is too large")
        return super().call_binop(context, operator, left, right)


class Renderer:
    """Checks and renders templates; one instance is shared (it holds the compiled cache)."""

    def __init__(self) -> None:
        common: dict[str, Any] = {"undefined": jinja2.StrictUndefined, "auto_reload": False}
        self._html = _Sandbox(autoescape=True, **common)
        self._plain = _Sandbox(autoescape=False, **common)
        self._cache: OrderedDict[tuple[str, float, Part], tuple[str, jinja2.Template]] = (
            OrderedDict()
        )

    # -- checking ---------------------------------------------------------------------

    def check(self, template: Template) -> None:
        """Refuse a template that does not compile or whose email parts do not go together.

        An email needs a subject and a text part; HTML is optional. Raises
        :class:`~mailwright.notify.errors.InvalidInput` with a field error per
        fault, pointing at ``/subject``, ``/text``, ``/html`` or ``/sms``, and
        the template line for syntax errors.
        """
        errors: list[FieldError] = []
        for part in PARTS:
            source = getattr(template, part)
            if source is None:
                continue
            try:
                self._environment(part).parse(source)
            except jinja2.TemplateSyntaxError as exc:
                errors.append(FieldError(f"/{part}", f"line {exc.lineno}: {exc.message}"))

        if (template.html is not None or template.subject is not None) and template.text is None:
            errors.append(FieldError("/text", "an email needs a text part"))
        if template.text is not None and template.subject is None:
            errors.append(FieldError("/subject", "an email needs a subject"))
        if errors:
            raise InvalidInput(f"template {template.name!r} is not valid", tuple(errors))

    @staticmethod
    def sendable(template: Template, channel: Channel) -> bool:
        """Whether ``template`` has the parts ``channel`` needs."""
        if channel == "sms":
            return template.sms is not None
        return template.subject is not None and template.text is not None

    # -- single notifications ---------------------------------------------------------

    def email(self, template: Template, data: dict[str, Any], *, links: Links) -> RenderedEmail:
        """Render the email parts of ``template`` with ``data``, footer added to both parts.

        Raises :class:`RenderError` naming the part when the template has no
        email parts, a variable is missing, the sandbox refuses an operation,
        or a part renders too long (or, for the subject, empty).
        """
        if not self.sendable(template, "email"):
            raise RenderError(
                f"template {template.name!r} has no email parts",
                (FieldError("/text", "missing"),),
            )
        context = {**data, "links": links}

        subject = " ".join(self._render(template, "subject", context).split())
        if not subject:
            raise RenderError(
                f"template {template.name!r}: the subject renders empty",
                (FieldError("/subject", "renders empty"),),
            )
        text = self._render(template, "text", context)
        html = self._render(template, "html", context) if template.html is not None else None

        return RenderedEmail(
            subject=subject,
            text=_with_text_footer(text, links),
            html=None if html is None else _with_html_footer(html, links),
        )

    def sms(self, template: Template, data: dict[str, Any], *, links: Links) -> str:
        """The text message of ``template`` with ``data``, stripped of outer white space.

        Raises :class:`RenderError` as :meth:`email` does, and for a message
        that renders empty.
        """
        if template.sms is None:
            raise RenderError(
                f"template {template.name!r} has no SMS part", (FieldError("/sms", "missing"),)
            )

        text = self._render(template, "sms", {**data, "links": links}).strip()
        if not text:
            raise RenderError(
                f"template {template.name!r}: the SMS renders empty",
                (FieldError("/sms", "renders empty"),),
            )
        return text

    # -- digests ----------------------------------------------------------------------

    def digest_email(
        self,
        category: Category,
        items: list[DigestItem],
        count: int,
        templates: dict[str, Template],
        *,
        links: Links,
        auto: bool,
        locale: str,
    ) -> RenderedEmail:
        """One email for a digest window: its true count and its newest items, each in full.

        Items are shown newest first, each through its own template's text
        and HTML bodies (text where a template has no HTML, its SMS text
        where it has no email parts). An item that cannot be rendered is
        shown as a placeholder and named in ``problems``: one bad payload
        does not hold back the rest. ``auto`` adds the notice that the
        digest was switched on automatically, with ``links.revert_url``.
        """
        # TODO: the digest's own sentences are English only; ``locale`` is
        # used for the HTML lang attribute until there is a message catalogue.
        title = category.description or category.name
        subject = f"{_plural(count, 'new notification')} in {title}"
        newest = sorted(items, key=lambda item: item.created_at, reverse=True)
        more = count - len(newest)

        texts: list[str] = [subject, ""]
        htmls: list[str] = [f"<h1>{escape(subject)}</h1>"]
        if auto:
            texts += [_auto_text(title, links), ""]
            htmls.append(_auto_html(title, links))

        problems: list[str] = []
        for item in newest:
            try:
                heading, text, html = self._digest_item(item, templates, links)
            except RenderError as exc:
                problems.append(f"{item.notification_id}: {exc.detail}")
                heading, text, html = None, "This notification could not be shown.", None
            texts += ["----", *([heading, ""] if heading else []), text.rstrip(), ""]
            htmls.append(_html_item(heading, text, html))

        if more > 0:
            texts += [f"... and {more} more.", ""]
            htmls.append(f"<p>&hellip; and {more} more.</p>")

        html_document = (
            f'<!DOCTYPE html>\n<html lang="{escape(locale)}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(subject)}</title></head>\n<body>\n"
            + "\n".join(htmls)
            + "\n</body></html>\n"
        )
        return RenderedEmail(
            subject=" ".join(subject.split()),
            text=_with_text_footer("\n".join(texts), links),
            html=_with_html_footer(html_document, links),
            problems=tuple(problems),
        )

    def digest_sms(
        self,
        category: Category,
        items: list[DigestItem],
        count: int,
        templates: dict[str, Template],
        *,
        links: Links,
        auto: bool,
        locale: str,
    ) -> str:
        """A short text for an SMS digest: the count, the newest item in brief, the link.

        The newest item's SMS text is quoted when its template has one and it
        renders, cut to :data:`SMS_PREVIEW` characters; otherwise it is left out.
        """
        # TODO: English only, as for digest emails.
        title = category.description or category.name
        text = f"{_plural(count, 'new notification')} in {title}"

        newest = max(items, key=lambda item: item.created_at, default=None)
        template = templates.get(newest.template) if newest is not None else None
        if newest is not None and template is not None and template.sms is not None:
            try:
                preview = " ".join(
                    self._render(template, "sms", {**newest.data, "links": links}).split()
                )
            except RenderError:
                preview = ""
            if len(preview) > SMS_PREVIEW:
                preview = preview[: SMS_PREVIEW - 3].rstrip() + "..."
            if preview:
                text += f'. Latest: "{preview}"'

        text += f". See all: {links.preferences_url}"
        if auto and links.revert_url:
            text += f" (daily summary because of volume; instant again: {links.revert_url})"
        return text

    def _digest_item(
        self, item: DigestItem, templates: dict[str, Template], links: Links
    ) -> tuple[str | None, str, str | None]:
        """The heading, text and HTML body of one digest item, raising RenderError."""
        template = templates.get(item.template)
        if template is None:
            raise RenderError(f"template {item.template!r} not found")
        context = {**item.data, "links": links}

        if template.text is None:
            if template.sms is None:
                raise RenderError(f"template {template.name!r} has no text to show")
            return None, self._render(template, "sms", context), None
        heading = None
        if template.subject is not None:
            heading = " ".join(self._render(template, "subject", context).split()) or None
        text = self._render(template, "text", context)
        html = None
        if template.html is not None:
            html = _body_of(self._render(template, "html", context))
        return heading, text, html

    # -- compiling and running --------------------------------------------------------

    def _environment(self, part: Part) -> _Sandbox:
        return self._html if part == "html" else self._plain

    def _compiled(self, template: Template, part: Part, source: str) -> jinja2.Template:
        """The compiled ``part`` of ``template``, from the cache while its source is unchanged."""
        key = (template.name, template.updated_at, part)
        cached = self._cache.get(key)
        if cached is not None and cached[0] == source:
            self._cache.move_to_end(key)
            return cached[1]

        try:
            compiled = self._environment(part).from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(
                f"template {template.name!r} {part}: line {exc.lineno}: {exc.message}",
                (FieldError(f"/{part}", f"line {exc.lineno}: {exc.message}"),),
            ) from exc
        self._cache[key] = (source, compiled)
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return compiled

    def _render(self, template: Template, part: Part, context: dict[str, Any]) -> str:
        """Render one part; every failure becomes a RenderError naming the part and line."""
        source = getattr(template, part)
        assert source is not None  # callers check the part exists
        compiled = self._compiled(template, part, source)

        try:
            output = compiled.render(context)
        except Exception as exc:  # templates and data are the sender's: any failure is theirs
            where = _template_line(exc.__traceback__)
            at = f"line {where}: " if where else ""
            message = f"{at}{type(exc).__name__}: {exc}"
            raise RenderError(
                f"template {template.name!r} {part}: {message}",
                (FieldError(f"/{part}", message),),
            ) from exc

        if len(output) > MAX_OUTPUT:
            raise RenderError(
                f"template {template.name!r} {part}: renders {len(output)} characters, "
                f"more than {MAX_OUTPUT}",
                (FieldError(f"/{part}", "renders too long"),),
            )
        return output


def _repeats_too_long(left: Any, right: Any) -> bool:
    """Whether ``left * right`` repeats a string or sequence beyond :data:`MAX_OUTPUT`."""
    for sequence, times in ((left, right), (right, left)):
        if isinstance(sequence, str | list | tuple) and isinstance(times, int):
            return len(sequence) * times > MAX_OUTPUT
    return False


def _power_too_large(left: Any, right: Any) -> bool:
    """Whether ``left ** right`` would make a huge integer (or take long to)."""
    numbers = isinstance(left, int) and isinstance(right, int)
    return numbers and abs(right) > 64 and abs(left) > 1


def _template_line(trace: TracebackType | None) -> int | None:
    """The template line where a render failed, from Jinja's rewritten traceback frames."""
    line = None
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == "<template>":
            line = trace.tb_lineno
        trace = trace.tb_next
    return line


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _footer_links(links: Links) -> list[tuple[str, str]]:
    """The footer's labels and URLs: the preference centre, and unsubscribe when given."""
    pairs = [("Manage your notification preferences", links.preferences_url)]
    if links.unsubscribe_url:
        pairs.append(("Unsubscribe", links.unsubscribe_url))
    return pairs


def _with_text_footer(text: str, links: Links) -> str:
    lines = [f"{label}: {url}" for label, url in _footer_links(links)]
    return text.rstrip() + "\n\n-- \n" + "\n".join(lines) + "\n"


def _with_html_footer(html: str, links: Links) -> str:
    """``html`` with the footer links placed before ``</body>``, or appended without one."""
    anchors = " &middot; ".join(
        f'<a href="{escape(url)}">{escape(label)}</a>' for label, url in _footer_links(links)
    )
    footer = f'<hr><p class="mailwright-footer" style="font-size:small;color:#555">{anchors}</p>\n'
    ends = list(_BODY_END.finditer(html))
    if not ends:
        return html.rstrip() + "\n" + footer
    at = ends[-1].start()
    return html[:at] + footer + html[at:]


def _body_of(html: str) -> str:
    """The inside of ``<body>`` when an item's HTML is a whole document, else all of it."""
    found = _BODY.search(html)
    return found.group(1).strip() if found else html.strip()


def _html_item(heading: str | None, text: str, html: str | None) -> str:
    """One digest item as HTML: its heading, then its HTML body or its text, escaped."""
    title = f"<h2>{escape(heading)}</h2>" if heading else ""
    if html is None:
        body = f'<div style="white-space:pre-wrap">{escape(text.strip())}</div>'
    else:
        body = html  # already escaped by the autoescaping environment
    return f'<hr><div class="mailwright-item">{title}{body}</div>'


def _auto_text(title: str, links: Links) -> str:
    sentence = (
        f"Because you received many notifications in {title}, we switched them "
        "to a daily digest automatically."
    )
    if links.revert_url:
        sentence += f" To get them one by one again: {links.revert_url}"
    return sentence


def _auto_html(title: str, links: Links) -> str:
    sentence = (
        f"Because you received many notifications in {escape(title)}, we switched them "
        "to a daily digest automatically."
    )
    if links.revert_url:
        sentence += f' <a href="{escape(links.revert_url)}">Get them one by one again</a>.'
    return f'<p class="mailwright-auto">{sentence}</p>'
