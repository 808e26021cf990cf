"""E-mail loader (.eml): the stdlib ``email`` parser, a header block and the body, then each
attachment loaded by its own loader as sections of the same document.

Attachments are hostile input twice over: their file names are only ever labels (never paths),
and an e-mail that attaches an e-mail (that attaches an e-mail ...) is only followed down to
``LoaderSettings.max_attachment_depth``; ``max_attachments`` bounds the total per top-level file.
"""
from __future__ import annotations

import email.header
import logging
from dataclasses import dataclass, field
from email import policy
from email.message import Message
from email.parser import BytesParser

from ingest.loaders.detect import (
    LoadError,
    base_name,
    binary_kind,
    clean_text,
    decode_text,
    detail,
    detect_kind,
    extension,
    no_text_error,
    stem,
)
from ingest.loaders.html import load_html, sniff_charset
from ingest.settings import LoaderSettings
from ingest.types import LoadedDocument, Section, sha256_hex

logger = logging.getLogger(__name__)

_HEADER_BLOCK = (("Subject", "subject"), ("From", "from"), ("To", "to"), ("Cc", "cc"), ("Date", "date"))
# Unnamed attachment parts get a label with the extension their MIME type implies (content still
# decides: detect_kind sniffs PDF and ZIP whatever the name says).
_EXTENSIONS = {
    "application/pdf": ".pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
    "text/markdown": ".md",
    "text/x-markdown": ".md",
    "text/plain": ".txt",
    "text/html": ".html",
    "message/rfc822": ".eml",
}
_MAX_LABEL = 200
_NAMED_IN_WARNING = 10


@dataclass
class _Budget:
    """Shared by an e-mail and every e-mail attached to it: what one top-level file may still load."""

    attachments_left: int
    text_left: int


@dataclass
class _Attachment:
    label: str
    data: bytes | None = None  # the decoded bytes of a file attachment
    message: Message | None = None  # an attached message/rfc822, already parsed


@dataclass
class _Parts:
    bodies: list[tuple[str, str | None]] = field(default_factory=list)  # (text, encoding)
    attachments: list[_Attachment] = field(default_factory=list)


# --- decoding ----------------------------------------------------------------------------------


def _decode(data: bytes, name: str, charset: str | None) -> tuple[str, str | None]:
    """Bytes of a MIME part: the declared charset first (a wrong or unknown one falls back to
    detection, see ``decode_text``); text with binary debris is decoded with replacements."""
    try:
        return decode_text(data, name, declared=charset)
    except LoadError as exc:
        logger.warning("%s: e-mail text is not clean text (%s); undecodable bytes replaced", name, exc.reason)
        return data.replace(b"\x00", b"").decode("utf-8", "replace"), None


def _raw_bytes(text: str) -> bytes:
    # The parser keeps undeclared 8-bit bytes as surrogate escapes; this gets the bytes back.
    return text.encode("utf-8", "surrogateescape")


def _has_escapes(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _decode_raw_header(raw: str, name: str) -> str:
    """A header's raw value: RFC 2047 encoded words in any charset Python or ``decode_text`` knows
    (a GB2312 label on GBK bytes included), or raw 8-bit bytes (common in Chinese mail)."""
    raw = raw.replace("\r", "").replace("\n", "")  # unfold
    if _has_escapes(raw):
        return _decode(_raw_bytes(raw), name, None)[0]
    out: list[str] = []
    try:
        parts = email.header.decode_header(raw)
    except Exception:  # a malformed encoded word: show it as written
        return raw
    for chunk, charset in parts:
        if isinstance(chunk, str):
            out.append(chunk)
        elif charset is None:
            out.append(chunk.decode("ascii", "replace"))
        else:
            out.append(_decode(chunk, name, charset)[0])
    return "".join(out)


def _header(msg: Message, key: str, name: str) -> str:
    """All values of header ``key`` (case-insensitive), decoded, on one line, joined by ', '."""
    values: list[str] = []
    for header_name, raw in msg.raw_items():
        if header_name.lower() != key:
            continue
        raw = str(raw)
        value = ""
        if not _has_escapes(raw):
            try:
                value = str(msg.policy.header_fetch_parse(header_name, raw))
            except Exception:  # the policy's header parser on a malformed header
                value = ""
        if not value or "\ufffd" in value or _has_escapes(value):
            value = _decode_raw_header(raw, name)
        value = " ".join(clean_text(value).split())
        if value:
            values.append(value)
    return ", ".join(values)


def _payload_bytes(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload
    raw = part.get_payload()
    return _raw_bytes(raw) if isinstance(raw, str) else b""


def _label(filename: str) -> str:
    """A hostile file name made into a one-line label: last path component, no control characters."""
    label = " ".join(clean_text(base_name(filename)).split())
    return label[:_MAX_LABEL] or "attachment"


def _filename(part: Message) -> str:
    try:
        return part.get_filename() or ""
    except Exception:  # malformed RFC 2231 parameters
        return ""


# --- MIME structure ----------------------------------------------------------------------------


def _html_text(data: bytes, charset: str | None, name: str) -> tuple[str, str | None]:
    """An HTML body cleaned by the HTML loader; the MIME charset is applied here (the loader
    only sees UTF-8 with a BOM, so a contradicting <meta charset> cannot undo it)."""
    text, encoding = _decode(data, name, charset or sniff_charset(data))
    try:
        doc = load_html(b"\xef\xbb\xbf" + text.encode("utf-8", "replace"), name)
    except LoadError:  # an HTML body without visible text
        return "", encoding
    blocks: list[str] = []
    last: tuple[str, ...] = ()
    for section in doc.sections:
        # The HTML loader keeps headings out of the text; in an e-mail body they are just text.
        if section.heading_path and section.heading_path != last:
            blocks.append(section.heading_path[-1])
        last = section.heading_path
        blocks.append(section.text)
    return "\n\n".join(blocks), encoding


def _body_text(part: Message, name: str) -> tuple[str, str | None]:
    data = _payload_bytes(part)
    if not data.strip():
        return "", None
    charset = part.get_content_charset()
    if part.get_content_type() == "text/html":
        return _html_text(data, charset, name)
    return _decode(data, name, charset)


def _choose_alternative(subparts: list[Message], name: str) -> Message | None:
    """text/plain when it has text, else the richest version (the last, per RFC 2046)."""
    for sub in subparts:
        if sub.get_content_type() == "text/plain" and not _filename(sub) and _body_text(sub, name)[0].strip():
            return sub
    return subparts[-1] if subparts else None


def _collect(part: Message, name: str, parts: _Parts) -> None:
    ctype = part.get_content_type()
    disposition = part.get_content_disposition()
    filename = _filename(part)
    if ctype == "message/rfc822":
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        if isinstance(inner, Message):
            subject = _header(inner, "subject", name).replace("/", " ").replace("\\", " ")
            label = filename or f"{subject or 'message'}.eml"
            parts.attachments.append(_Attachment(_label(label), message=inner))
        else:
            parts.attachments.append(_Attachment(_label(filename or "message.eml"), data=_payload_bytes(part)))
        return
    if part.is_multipart():
        subparts = [p for p in part.get_payload() if isinstance(p, Message)]
        if ctype == "multipart/alternative":
            chosen = _choose_alternative(subparts, name)
            if chosen is not None:
                _collect(chosen, name, parts)
            return
        for sub in subparts:
            _collect(sub, name, parts)
        return
    inline = disposition == "inline" or (disposition is None and (not filename or part.get("Content-ID")))
    if ctype.startswith("image/") and inline:
        return  # a logo or signature picture shown inside the body: no text of its own
    if filename or disposition == "attachment":
        label = _label(filename or "attachment" + _EXTENSIONS.get(ctype, ""))
        parts.attachments.append(_Attachment(label, data=_payload_bytes(part)))
    elif ctype in ("text/plain", "text/html") or ctype.startswith("multipart/"):
        # (a multipart without a usable boundary arrives here as one text payload)
        text, encoding = _body_text(part, name)
        if text.strip():
            parts.bodies.append((text, encoding))
    elif not ctype.startswith("image/"):
        # An unnamed non-text part (an application/pdf without a file name): still a document.
        parts.attachments.append(_Attachment("attachment" + _EXTENSIONS.get(ctype, ""), data=_payload_bytes(part)))


# --- loading -----------------------------------------------------------------------------------


def _parse(data: bytes) -> Message:
    if not data.strip():
        raise LoadError("not a valid e-mail (empty file)")
    what = binary_kind(data[:1024])
    if what:
        raise LoadError(f"not a valid e-mail (the content is {what})")
    try:
        msg = BytesParser(policy=policy.default).parsebytes(data)
    except RecursionError as exc:
        raise LoadError("not a valid e-mail (MIME parts nested too deeply)") from exc
    except Exception as exc:  # the parser is lenient, but never leak its exception types
        raise LoadError(f"not a valid e-mail ({detail(exc)})") from exc
    if not msg.keys():
        raise LoadError("not a valid e-mail (no message headers)")
    return msg


def _skip_warning(name: str, labels: list[str], reason: str) -> None:
    shown = ", ".join(repr(label) for label in labels[:_NAMED_IN_WARNING])
    more = f" and {len(labels) - _NAMED_IN_WARNING} more" if len(labels) > _NAMED_IN_WARNING else ""
    logger.warning("%s: %d attachment(s) not indexed (%s): %s%s", name, len(labels), reason, shown, more)


def _load_attachment(att: _Attachment, limits: LoaderSettings, depth: int, budget: _Budget) -> LoadedDocument:
    if att.message is not None:
        return _load_message(att.message, b"", att.label, limits, depth + 1, budget)
    data = att.data or b""
    if extension(att.label) == ".eml" or detect_kind(data, att.label, limits) == "email":
        return _load_message(_parse(data), data, att.label, limits, depth + 1, budget)
    from ingest.loaders import load_bytes  # here: ingest.loaders imports this module

    return load_bytes(data, att.label, limits)


def _attachment_sections(
    attachments: list[_Attachment],
    base: tuple[str, ...],
    name: str,
    limits: LoaderSettings,
    depth: int,
    budget: _Budget,
) -> list[Section]:
    sections: list[Section] = []
    if not attachments:
        return sections
    if depth >= limits.max_attachment_depth:
        reason = f"attached more than {limits.max_attachment_depth} e-mail(s) deep"
        _skip_warning(name, [att.label for att in attachments], reason)
        return sections
    for index, att in enumerate(attachments):
        if budget.attachments_left <= 0:
            rest = [a.label for a in attachments[index:]]
            _skip_warning(name, rest, f"over the limit of {limits.max_attachments} attachments per file")
            break
        budget.attachments_left -= 1
        try:
            doc = _load_attachment(att, limits, depth, budget)
        except LoadError as exc:
            logger.warning("%s: attachment %r not indexed: %s", name, att.label, exc.reason)
            continue
        except RecursionError:
            logger.warning("%s: attachment %r not indexed: %s", name, att.label, "nested too deeply to parse")
            continue
        except MemoryError:
            raise
        except Exception as exc:  # the other loaders wrap their errors; this is the last line of defence
            logger.warning("%s: attachment %r not indexed: %s", name, att.label, detail(exc))
            continue
        size = sum(len(s.text.encode("utf-8", "replace")) for s in doc.sections)
        if size > budget.text_left:
            reason = f"its text would take the e-mail over the {limits.max_text_mb:g} MB text limit"
            logger.warning("%s: attachment %r not indexed: %s", name, att.label, reason)
            continue
        budget.text_left -= size
        heading = f"Attachment: {att.label}"
        sections += [
            Section(text=s.text, page=s.page, heading_path=(*base, heading, *s.heading_path)) for s in doc.sections
        ]
    return sections


def _load_message(
    msg: Message, data: bytes, name: str, limits: LoaderSettings, depth: int, budget: _Budget
) -> LoadedDocument:
    subject = _header(msg, "subject", name)
    header_lines = []
    for label, key in _HEADER_BLOCK:
        value = _header(msg, key, name)
        if value:
            header_lines.append(f"{label}: {value}")
    parts = _Parts()
    _collect(msg, name, parts)
    body = "\n\n".join(text for text, _ in parts.bodies)
    encoding = next((enc for _, enc in parts.bodies if enc), None)

    base = (subject,) if subject else ()
    sections: list[Section] = []
    text = clean_text("\n".join(header_lines) + "\n\n" + body)
    if subject or clean_text(body):
        sections.append(Section(text=text, heading_path=base))
        budget.text_left -= len(text.encode("utf-8", "replace"))
    sections += _attachment_sections(parts.attachments, base, name, limits, depth, budget)
    if not sections:
        raise no_text_error("the e-mail has no text")
    return LoadedDocument(
        source=name,
        doc_id=sha256_hex(data),
        file_type="email",
        sections=tuple(sections),
        title=subject or stem(name),
        encoding=encoding,
    )


def load_eml(data: bytes, name: str, limits: LoaderSettings, depth: int = 0) -> LoadedDocument:
    """An e-mail as a header block (Subject, From, To, Cc, Date) and its body (text/plain preferred,
    else the HTML cleaned), ``heading_path=(subject,)``; then each attachment's sections, loaded by
    its own loader, under ``(subject, "Attachment: <name>", ...)`` with their pages kept.

    An attachment that cannot be loaded is skipped with a warning; the e-mail still loads."""
    budget = _Budget(attachments_left=limits.max_attachments, text_left=limits.max_text_bytes)
    try:
        return _load_message(_parse(data), data, name, limits, depth, budget)
    except LoadError:
        raise
    except RecursionError as exc:
        raise LoadError("e-mail MIME parts nested too deeply to read") from exc
    except MemoryError:
        raise
    except Exception as exc:  # never leak the email package's exception types
        logger.exception("%s: unexpected error reading the e-mail", name)
        raise LoadError(f"could not read the e-mail: {detail(exc)}") from exc
