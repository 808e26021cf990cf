"""Regenerate the demo corpus in this folder (fictional company "Lumen Labs").

    python samples/make_samples.py

Deterministic: the same bytes on every run (fixed timestamps in the .docx ZIP and the PDF
metadata), so the committed files only change when this script's content does. Needs
python-docx and fpdf2 (a test dependency).
"""
from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent / "samples"
FIXED_TIME = datetime(2024, 5, 21, 9, 0, 0, tzinfo=UTC)

EMPLOYEE_HANDBOOK_ZH = """\
---
title: Lumen Labs 员工手册
version: 2024.2
---

# Lumen Labs 员工手册

本手册适用于 Lumen Labs（流明实验室）全体正式员工，由人力资源部维护，最近一次更新为 2024 年 3 月。

## 办公时间

公司实行弹性工作制。核心工作时间为**周一至周五 10:00 至 16:00**，员工须在此时段内保持在线或在办公室。每日标准工作时长为 8 小时，午休时间为 12:00 至 13:00。

每周三为“无会议日”，除线上事故处理外不安排内部会议。

## 年假

### 年假天数

- 入职不满五年的正式员工，每年享有 **12 天**带薪年假。
- 入职满五年及以上的正式员工，每年享有 **18 天**带薪年假。
- 入职当年的年假按实际在职月份折算，试用期内即可申请。

### 申请与结转

年假须至少提前 5 个工作日在 HR 系统“流明通”中提交申请，由直属经理审批。当年未使用的年假最多可结转 5 天至次年，结转部分须在次年 3 月 31 日前用完，逾期作废。

## 报销流程

1. 费用发生后 30 天内，在“流明通”中提交报销单，并上传发票照片。
2. 单笔金额不超过 2000 元的报销由直属经理审批；超过 2000 元的还需部门负责人审批。
3. 财务部每月 15 日和最后一个工作日集中付款，款项打入工资卡。

| 费用类型 | 报销标准 |
| --- | --- |
| 市内交通 | 实报实销，需附行程单 |
| 出差住宿（一线城市） | 每晚不超过 600 元 |
| 出差餐补 | 每天 150 元 |

## 联系方式

如有疑问，请发送邮件至 hr@lumenlabs.example 或在“流明通”中提交工单。
"""

PRODUCT_FAQ_EN = """\
# Lumen Beacon Product FAQ

Answers to the questions our sales and support teams hear most often about Lumen Beacon,
the self-hosted knowledge search product from Lumen Labs.

## General

### What is Lumen Beacon?

Lumen Beacon indexes your team's documents (PDF, Word, Markdown, HTML and plain text) and
answers questions about them with citations to the source page or section.

### Which languages are supported?

English and Simplified Chinese, including mixed-language documents. Traditional Chinese
search works but is not yet officially supported.

## Pricing and Plans

### How much does Lumen Beacon cost?

- **Free**: up to 3 users and 1 GB of indexed documents.
- **Team**: $12 per user per month, billed annually, up to 100 GB of documents.
- **Enterprise**: custom pricing; adds single sign-on (SAML and OIDC) and a 99.9% uptime SLA.

### Is there a free trial?

Yes. The Team plan has a 30-day free trial and no credit card is required.

## Deployment

### What are the minimum server requirements?

| Resource | Minimum |
| --- | --- |
| CPU | 4 cores (x86_64) |
| Memory | 16 GB RAM |
| Disk | 50 GB SSD |

### Does my data leave my servers?

No. Indexing and answering run entirely on your own hardware; Lumen Beacon only contacts
Lumen Labs to check your license key once a day.
"""

SECURITY_POLICY_EN = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Lumen Labs Information Security Policy</title>
<style>table { border-collapse: collapse; } td, th { border: 1px solid #999; padding: 4px; }</style>
<script>window.analytics = { page: "security-policy" };</script>
</head>
<body>
<nav><a href="/">Intranet home</a> | <a href="/policies">All policies</a></nav>
<header><h1>Information Security Policy</h1></header>
<p>Version 3.1, effective 1 January 2024. Owner: Security Team
(<a href="mailto:security@lumenlabs.example">security@lumenlabs.example</a>).</p>

<h2>Scope</h2>
<p>This policy applies to all Lumen Labs employees, contractors and interns, and to every
device that accesses company systems, including personal phones used for email.</p>

<h2>Data Classification</h2>
<p>Every document and dataset belongs to exactly one of four levels:</p>
<table>
<tr><th>Level</th><th>Examples</th><th>Handling</th></tr>
<tr><td>Public</td><td>Marketing website, published documentation</td><td>No restrictions</td></tr>
<tr><td>Internal</td><td>Roadmaps, internal wiki</td><td>Share only with staff and contractors under NDA</td></tr>
<tr><td>Confidential</td><td>Contracts, financial reports, source code</td><td>Encrypted at rest; need-to-know access</td></tr>
<tr><td>Restricted</td><td>Customer personal data, credentials, encryption keys</td><td>Encrypted at rest and in transit; access approved by the Security Team and reviewed quarterly</td></tr>
</table>

<h2>Access and Authentication</h2>
<h3>Passwords</h3>
<p>Passwords must be at least 14 characters long and stored in the company password manager.
Passwords are not rotated on a schedule; change one immediately if you suspect it was exposed.</p>
<h3>Multi-factor authentication</h3>
<p>MFA is required on all company accounts. Hardware security keys are required for any
access to production systems.</p>

<h2>Incident Reporting</h2>
<p>Report any suspected security incident (a lost laptop, a phishing link you clicked, a leaked
credential) to <a href="mailto:security@lumenlabs.example">security@lumenlabs.example</a> or the
#sec-incidents Slack channel <strong>within 1 hour</strong> of discovering it. Do not investigate
on your own.</p>
<p>Lost or stolen devices must also be reported to IT so they can be wiped remotely.</p>
<footer>&copy; 2024 Lumen Labs. Internal use only.</footer>
</body>
</html>
"""

MEETING_NOTES_ZH = """\
会议纪要：2024 年第二季度产品规划会

时间：2024 年 4 月 9 日 14:00-15:30
地点：上海办公室 3 楼“北极星”会议室
主持人：陈思远（产品副总裁）
记录人：林晓
参会人员：陈思远、王磊、赵敏、刘洋、林晓

一、上季度回顾
Lumen Beacon 3.1 已于 3 月 20 日发布，月活跃团队数环比增长 18%。客户反馈主要集中在两点：中文 PDF 检索准确率偏低，以及离线部署文档不足。

二、本季度决议
1. 中文检索优化列为最高优先级，由赵敏负责，目标是在 6 月 30 日前将内部评测集上的中文问答准确率从 71% 提升到 85%。
2. 新加坡数据中心定于 2024 年 7 月 15 日上线，由王磊负责迁移方案。
3. 暂停移动端 App 开发，相关人力转向企业版的权限管理功能。

三、待办事项
- 刘洋：5 月 10 日前完成离线部署手册初稿。
- 林晓：本周五前将本纪要发送给全体参会人员。

下次会议：2024 年 5 月 14 日 14:00，地点不变。
"""

RELEASE_NOTES_PAGES: list[tuple[str, list[str]]] = [
    (
        "Lumen Beacon 3.2 Release Notes",
        [
            "Released: May 21, 2024",
            "Lumen Beacon is the self-hosted knowledge search product from Lumen Labs. Version 3.2 "
            "focuses on Chinese-language retrieval quality and support for larger documents.",
            "Upgrading from 3.1 takes about 15 minutes and does not require re-indexing your "
            "documents. Upgrades from 3.0 or earlier must go through 3.1 first.",
            "Highlights: better Chinese answers, larger uploads, an admin audit log, and two new "
            "file extensions. Details follow on the next pages.",
        ],
    ),
    (
        "New Features and Improvements",
        [
            "Larger uploads: the maximum upload size is now 200 MB per file, up from 50 MB in 3.1.",
            "Chinese retrieval: answer accuracy on our internal Chinese benchmark improved from 71% "
            "to 86%, thanks to a new word segmenter and hybrid keyword and vector search.",
            "Audit log: administrators can now see who uploaded, deleted or searched documents. "
            "Audit events are kept for 365 days.",
            "File types: files ending in .htm and .markdown are now indexed like .html and .md files.",
        ],
    ),
    (
        "Known Issues and Upgrade Notes",
        [
            "Password-protected PDFs cannot be indexed. Remove the password before uploading.",
            "Lumen Beacon 3.2 requires PostgreSQL 14 or later. Support for PostgreSQL 12 ended with "
            "this release.",
            "Support for version 3.0 ends on August 31, 2024. Customers on 3.0 should plan their "
            "upgrade before then.",
            "Questions about this release: support@lumenlabs.example.",
        ],
    ),
]


def _normalised_zip(data: bytes) -> bytes:
    """Rewrite a ZIP with fixed entry timestamps: python-docx stamps entries with the current time."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(2024, 5, 21, 9, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            dst.writestr(fixed, src.read(info.filename))
    return out.getvalue()


def build_onboarding_docx() -> bytes:
    import docx

    doc = docx.Document()
    props = doc.core_properties
    props.title = "New Hire Onboarding Guide"
    props.author = "Lumen Labs People Operations"
    props.last_modified_by = "Lumen Labs People Operations"
    props.created = props.modified = FIXED_TIME.replace(tzinfo=None)
    props.revision = 1

    doc.add_heading("New Hire Onboarding Guide", level=0)  # the "Title" style
    doc.add_paragraph(
        "Welcome to Lumen Labs! This guide covers your first two weeks. It is maintained by the "
        "People Operations team and was last reviewed in February 2024."
    )
    doc.add_heading("Before Your First Day", level=1)
    doc.add_paragraph(
        "Your manager sends a welcome email five business days before your start date. It includes "
        "your building badge appointment and the name of your onboarding buddy."
    )
    doc.add_paragraph(
        "Bring a government-issued photo ID on your first day; reception cannot issue a badge without one."
    )
    doc.add_heading("First Week Schedule", level=1)
    rows = [
        ("Day", "Time", "Activity", "Location"),
        ("Monday", "09:30", "Laptop pickup and account setup", "IT Help Desk, Floor 2"),
        ("Monday", "12:30", "Welcome lunch with your team", "Cafe Lumen, Floor 1"),
        ("Tuesday", "10:00", "Security and privacy training (mandatory, 90 minutes)", "Training Room B"),
        ("Wednesday", "All day", "No-meeting day: read team docs, set up your dev environment", "Remote or office"),
        ("Friday", "16:00", "First-week check-in with your manager", "Manager's choice"),
    ]
    table = doc.add_table(rows=len(rows), cols=len(rows[0]))
    table.style = "Table Grid"
    for r, values in enumerate(rows):
        for c, value in enumerate(values):
            table.cell(r, c).text = value
    doc.add_heading("Your Onboarding Buddy", level=1)
    doc.add_heading("What a buddy does", level=2)
    doc.add_paragraph(
        "Every new hire is paired with a buddy from a different team for their first 60 days. Your "
        "buddy answers day-to-day questions, introduces you to colleagues and meets you for coffee "
        "at least once a week."
    )
    doc.add_heading("Check-ins", level=2)
    doc.add_paragraph(
        "People Operations schedules check-ins at 30, 60 and 90 days. The 90-day check-in marks the "
        "end of your probation period."
    )
    doc.add_heading("Getting Help", level=1)
    doc.add_paragraph(
        "For laptop or account problems, open a ticket at it.lumenlabs.example or call extension 4357.",
        style="List Bullet",
    )
    doc.add_paragraph(
        "For payroll and benefits questions, email people@lumenlabs.example.", style="List Bullet"
    )
    buf = io.BytesIO()
    doc.save(buf)
    return _normalised_zip(buf.getvalue())


def build_release_notes_pdf() -> bytes:
    from fpdf import FPDF

    class ReleaseNotes(FPDF):
        def footer(self) -> None:  # called by fpdf2 at the end of every page
            self.set_y(-15)
            self.set_font("Helvetica", "I", 8)
            self.cell(0, 10, f"Lumen Beacon 3.2 Release Notes - page {self.page_no()}", align="C")

    pdf = ReleaseNotes(format="A4")
    pdf.set_creation_date(FIXED_TIME)
    pdf.set_title("Lumen Beacon 3.2 Release Notes")
    pdf.set_author("Lumen Labs")
    for heading, paragraphs in RELEASE_NOTES_PAGES:
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 18)
        pdf.multi_cell(0, 10, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
        pdf.set_font("Helvetica", "", 11)
        for para in paragraphs:
            pdf.multi_cell(0, 6, para, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(3)
    return bytes(pdf.output())


def main() -> None:
    outputs: dict[str, bytes] = {
        "employee_handbook_zh.md": EMPLOYEE_HANDBOOK_ZH.encode("utf-8"),
        "product_faq_en.md": PRODUCT_FAQ_EN.encode("utf-8"),
        "security_policy_en.html": SECURITY_POLICY_EN.encode("utf-8"),
        # GBK with Windows line endings, as such notes usually arrive from a Chinese Windows PC.
        "会议纪要_gbk.txt": MEETING_NOTES_ZH.replace("\n", "\r\n").encode("gbk"),
        "onboarding_en.docx": build_onboarding_docx(),
        "release_notes_en.pdf": build_release_notes_pdf(),
    }
    for name, data in outputs.items():
        (HERE / name).write_bytes(data)
        print(f"wrote samples/{name} ({len(data)} bytes)")  # a script, not library code


if __name__ == "__main__":
    main()
