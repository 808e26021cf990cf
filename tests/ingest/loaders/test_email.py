"""E-mail loader: messages built in memory with email.message.EmailMessage (and raw bytes for the
charsets a modern builder would not write), attachments loaded by their own loaders."""
from __future__ import annotations

import base64
import io
import logging
import quopri
import zipfile
from email.message import EmailMessage

import pytest

from ingest.loaders.detect import LoadError
from ingest.loaders.email import load_eml
from ingest.settings import LoaderSettings
from ingest.types import sha256_hex
from tests.support.documents import make_pdf

LIMITS = LoaderSettings()
SUBJECT = "发票 Invoice 2024年3月"
HTML_BODY = """<html><head><title>ignored</title><style>p {color: red}</style></head><body>
<script>alert('tracking pixel')</script>
<p>您好，附件是三月份的发票。</p>
<table><tr><th>产品</th><th>价格</th></tr><tr><td>苹果</td><td>5 元</td></tr></table>
<p>Regards,<br>Zhang</p>
</body></html>"""


def _message(subject: str = "Hello", body: str = "Body text.") -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = "张三 <zhang@example.cn>"
    msg["To"] = "Ana <ana@example.com>, bob@example.com"
    msg["Date"] = "Mon, 04 Mar 2024 10:00:00 +0800"
    msg.set_content(body)
    return msg


def _raw(headers: str, body: bytes) -> bytes:
    return headers.replace("\n", "\r\n").encode("ascii") + b"\r\n" + body


def _b64_word(text: str, charset: str) -> str:
    return f"=?{charset}?B?{base64.b64encode(text.encode('gbk')).decode()}?="


def _not_indexed(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_html_body_header_block_and_pdf_attachment() -> None:
    msg = EmailMessage()
    msg["Subject"] = SUBJECT
    msg["From"] = "张三 <zhang@example.cn>"
    msg["To"] = "ana@example.com"
    msg["Cc"] = "李四 <li@example.cn>"
    msg["Date"] = "Mon, 04 Mar 2024 10:00:00 +0800"
    msg.set_content(HTML_BODY, subtype="html")
    msg.add_attachment(make_pdf(["Invoice total 4,380 EUR"]), maintype="application", subtype="pdf", filename="invoice.pdf")
    data = msg.as_bytes()
    assert b"=?utf-8?" in data  # the subject is an RFC 2047 encoded word on the wire

    doc = load_eml(data, "mail/invoice.eml", LIMITS)
    assert doc.file_type == "email" and doc.title == SUBJECT and doc.doc_id == sha256_hex(data)
    first = doc.sections[0]
    assert first.heading_path == (SUBJECT,) and first.page is None
    assert first.text.startswith(
        f"Subject: {SUBJECT}\nFrom: 张三 <zhang@example.cn>\nTo: ana@example.com\nCc: 李四 <li@example.cn>\n"
        "Date: Mon, 04 Mar 2024 10:00:00 +0800\n\n您好，附件是三月份的发票。"
    )
    for cell in ("产品", "价格", "苹果", "5 元"):
        assert cell in first.text
    assert "Regards,\nZhang" in first.text
    for dropped in ("alert", "tracking", "color", "ignored", "<p>", "<script", "<td"):
        assert dropped not in doc.text
    pdf = [s for s in doc.sections if "Attachment: invoice.pdf" in s.heading_path]
    assert len(pdf) == 1
    assert pdf[0].page == 1 and pdf[0].heading_path == (SUBJECT, "Attachment: invoice.pdf")
    assert "Invoice total 4,380 EUR" in pdf[0].text


def test_plain_text_is_preferred_over_html_alternative() -> None:
    msg = _message(body="The plain version.")
    msg.add_alternative("<p>The HTML version.</p>", subtype="html")
    doc = load_eml(msg.as_bytes(), "alt.eml", LIMITS)
    assert "The plain version." in doc.text and "HTML version" not in doc.text
    assert len(doc.sections) == 1


def test_gbk_quoted_printable_body_and_gb2312_labelled_subject() -> None:
    # 喆 is in GBK but not in GB2312: mail clients label GBK text "gb2312" all the time.
    subject = "报价单 喆"
    body = "您好：\n价格如下，请查收。喆\nTotal 4,380 EUR\n"
    headers = (
        f"Subject: {_b64_word(subject, 'gb2312')}\n"
        f"From: {_b64_word('王五', 'gbk')} <wang@example.cn>\n"
        "To: ana@example.com\n"
        "MIME-Version: 1.0\n"
        'Content-Type: text/plain; charset="gb2312"\n'
        "Content-Transfer-Encoding: quoted-printable\n"
    )
    doc = load_eml(_raw(headers, quopri.encodestring(body.encode("gbk"))), "quote.eml", LIMITS)
    assert doc.title == subject and doc.encoding == "gb2312"
    assert doc.sections[0].text == (
        f"Subject: {subject}\nFrom: 王五 <wang@example.cn>\nTo: ana@example.com\n\n您好：\n价格如下，请查收。喆\nTotal 4,380 EUR"
    )


def test_base64_utf8_body_and_raw_8bit_gbk_subject() -> None:
    headers = "From: a@example.com\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n"
    raw_subject = b"Subject: " + "会议纪要".encode("gbk") + b"\r\n"
    data = raw_subject + _raw(headers, base64.encodebytes("会议在周五。".encode()))
    doc = load_eml(data, "minutes.eml", LIMITS)
    assert doc.title == "会议纪要"
    assert doc.sections[0].text.endswith("\n\n会议在周五。")


@pytest.mark.parametrize("charset", ["utf-8", "x-no-such-charset", "base64"])
def test_wrong_or_unknown_charset_falls_back_to_detection(charset: str) -> None:
    headers = f"Subject: wrong label\nMIME-Version: 1.0\nContent-Type: text/plain; charset={charset}\nContent-Transfer-Encoding: 8bit\n"
    doc = load_eml(_raw(headers, "价格表：苹果五元".encode("gbk")), "wrong.eml", LIMITS)
    assert doc.sections[0].text.endswith("\n\n价格表：苹果五元")


def test_html_body_charset_comes_from_mime_not_meta() -> None:
    html = '<html><head><meta charset="gbk"></head><body><p>中文正文</p></body></html>'
    headers = 'Subject: meta\nMIME-Version: 1.0\nContent-Type: text/html; charset="utf-8"\n'
    doc = load_eml(_raw(headers, html.encode("utf-8")), "meta.eml", LIMITS)
    assert doc.sections[0].text.endswith("\n\n中文正文")


def test_zip_exe_and_corrupt_pdf_attachments_are_skipped_with_warnings(caplog: pytest.LogCaptureFixture) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("secret.txt", "zip secret content")
    msg = _message(subject="Files", body="See attached.")
    msg.add_attachment(buf.getvalue(), maintype="application", subtype="zip", filename="archive.zip")
    msg.add_attachment(b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 64, maintype="application", subtype="octet-stream", filename="setup.exe")
    msg.add_attachment(b"%PDF-1.4\n% truncated", maintype="application", subtype="pdf", filename="broken.pdf")
    msg.add_attachment("text of the notes", filename="../../etc/notes.txt")
    with caplog.at_level(logging.WARNING):
        doc = load_eml(msg.as_bytes(), "files.eml", LIMITS)
    assert doc.sections[0].text.endswith("See attached.")
    assert [s.heading_path for s in doc.sections[1:]] == [("Files", "Attachment: notes.txt")]
    assert doc.sections[1].text == "text of the notes"
    assert "zip secret" not in doc.text and "secret.txt" not in doc.text
    warnings = _not_indexed(caplog)
    for label in ("'archive.zip' not indexed", "'setup.exe' not indexed", "'broken.pdf' not indexed"):
        assert label in warnings


def test_inline_image_is_ignored_without_warning(caplog: pytest.LogCaptureFixture) -> None:
    msg = _message(body="Plain body")
    msg.add_alternative("<p>Logo below</p><img src='cid:logo'>", subtype="html")
    html_part = next(p for p in msg.iter_parts() if p.get_content_type() == "text/html")
    html_part.add_related(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32, maintype="image", subtype="png", cid="<logo>")
    msg.add_attachment(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32, maintype="image", subtype="png", filename="logo.png", disposition="inline", cid="<logo2>")
    with caplog.at_level(logging.WARNING):
        doc = load_eml(msg.as_bytes(), "logo.eml", LIMITS)
    assert len(doc.sections) == 1 and "Plain body" in doc.text
    assert _not_indexed(caplog) == ""


def _nested(levels: int, as_file: bool) -> bytes:
    msg = _message(subject="Level 0", body="Text of level 0.")
    for level in range(1, levels):
        outer = _message(subject=f"Level {level}", body=f"Text of level {level}.")
        if as_file:
            outer.add_attachment(msg.as_bytes(), maintype="application", subtype="octet-stream", filename=f"level{level - 1}.eml")
        else:
            outer.add_attachment(msg)  # message/rfc822
        msg = outer
    return msg.as_bytes()


@pytest.mark.parametrize("as_file", [False, True], ids=["message-rfc822", "eml-file"])
def test_attachment_loop_ends_at_depth_limit(as_file: bool, caplog: pytest.LogCaptureFixture) -> None:
    data = _nested(20, as_file)
    with caplog.at_level(logging.WARNING):
        doc = load_eml(data, "loop.eml", LIMITS)
    # depth 0 (Level 19) loads its attachment (depth 1), which loads its own (depth 2); no deeper.
    assert LIMITS.max_attachment_depth == 2
    assert [s.heading_path[0::2] for s in doc.sections] == [("Level 19",), ("Level 19", "Level 18"), ("Level 19", "Level 18", "Level 17")]
    for level in (19, 18, 17):
        assert f"Text of level {level}." in doc.text
    assert "Text of level 16." not in doc.text
    assert "not indexed (attached more than 2 e-mail(s) deep)" in _not_indexed(caplog)
    nested = doc.sections[2].heading_path
    assert nested[1].startswith("Attachment: ") and nested[3].startswith("Attachment: ")


def test_depth_zero_loads_no_attachments() -> None:
    doc = load_eml(_nested(3, as_file=False), "loop.eml", LoaderSettings(max_attachment_depth=0))
    assert len(doc.sections) == 1 and "Text of level 1." not in doc.text


def test_attachment_count_limit_is_per_top_level_file(caplog: pytest.LogCaptureFixture) -> None:
    inner = _message(subject="Inner", body="Inner text.")
    inner.add_attachment("inner attachment", filename="inner.txt")
    msg = _message(subject="Outer", body="Outer text.")
    msg.add_attachment(inner)
    for n in range(3):
        msg.add_attachment(f"outer attachment {n}", filename=f"outer{n}.txt")
    with caplog.at_level(logging.WARNING):
        doc = load_eml(msg.as_bytes(), "many.eml", LoaderSettings(max_attachments=3))
    # Inner.eml, inner.txt (inside it) and outer0.txt use up the three.
    assert "inner attachment" in doc.text and "outer attachment 0" in doc.text
    assert "outer attachment 1" not in doc.text and "outer attachment 2" not in doc.text
    assert "over the limit of 3 attachments per file" in _not_indexed(caplog)


@pytest.mark.parametrize("data", [b"\x00\x01binary", b"", b"   \r\n", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, b"just a line of text"])
def test_not_an_email_is_load_error(data: bytes) -> None:
    with pytest.raises(LoadError, match=r"^not a valid e-mail \(") as exc_info:
        load_eml(data, "junk.eml", LIMITS)
    assert "\n" not in exc_info.value.reason


def test_message_without_text_is_no_text_error() -> None:
    data = _raw("From: a@example.com\nMIME-Version: 1.0\nContent-Type: text/plain\n", b"\r\n  \r\n")
    with pytest.raises(LoadError, match="no extractable text"):
        load_eml(data, "empty.eml", LIMITS)


def test_subject_only_message_and_title_fallback() -> None:
    doc = load_eml(_raw("Subject: Lunch?\nFrom: a@example.com\n", b""), "lunch.eml", LIMITS)
    assert doc.sections[0].text == "Subject: Lunch?\nFrom: a@example.com"
    doc = load_eml(_raw("From: a@example.com\n", b"No subject here."), "dir/untitled.eml", LIMITS)
    assert doc.title == "untitled" and doc.sections[0].heading_path == ()
