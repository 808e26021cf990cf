"""Which language a question is in (zh or en), to answer and refuse in the same language."""
from __future__ import annotations

import re
from typing import Literal

Language = Literal["zh", "en"]

# Han ideographs (CJK unified, extension A, compatibility) and CJK / full-width punctuation.
_CJK_RE = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")
_LATIN_RE = re.compile("[A-Za-z\u00c0-\u024f]")

# A Chinese question often carries Latin product names ("Lumen Beacon 3.2 最大上传多少？"), while an
# English one rarely holds more than a name in Chinese: a quarter of the letters is a robust cut.
ZH_MIN_SHARE = 0.25


def cjk_share(text: str) -> float:
    """CJK characters as a share of all CJK + Latin letters in ``text`` (0 when it has neither)."""
    cjk = len(_CJK_RE.findall(text or ""))
    latin = len(_LATIN_RE.findall(text or ""))
    return cjk / (cjk + latin) if cjk + latin else 0.0


def detect_language(text: str) -> Language:
    """``"zh"`` when at least a quarter of the letters are CJK characters, else ``"en"``."""
    return "zh" if cjk_share(text) >= ZH_MIN_SHARE else "en"
