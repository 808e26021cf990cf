"""OCR with Tesseract: images (PNG, JPEG, TIFF) and PDF pages that have no text layer.

The ``tesseract`` binary runs as a subprocess (PNG on stdin, TSV on stdout), never a Python
binding, with a timeout; inside the isolated parser it inherits the child's address-space cap.
Images are checked from their header (width x height) before any pixel is decoded: a small PNG
that declares 100k x 100k pixels is refused, not inflated into gigabytes.

Language, per page, among the configured (``loaders.ocr_languages``) and installed ones:

1. Script. The page is read with a Chinese variant and the other languages (``chi_sim+eng``); its
   Han characters (at least 10, and 10% of its letters) make it a Chinese page. A page that is not
   is read again Latin first (``eng+chi_sim``): Chinese first runs some English words together
   ("largerfiles"); English first, on Chinese pages, keeps whole lines it misread as Latin garbage
   (0.53-0.75 of the characters on some pages that Chinese first read at 0.96-0.99). Once most of
   a file's pages were Latin, its next pages start with the Latin-first reading (and are read
   Chinese first only if they turn out Chinese): an English PDF costs one reading a page, like a
   Chinese one; a lone English image costs two.
2. Simplified or traditional. A Chinese page is also read with the other variant (``chi_tra+eng``).
   Both models read both scripts, each writing its own (chi_tra reads 职 as 職 as confidently as
   chi_sim reads it 职), so the page's mean confidence says little; over the words the two readings
   disagree on, the right model is the more confident one. The first configured variant is kept
   unless the other beats it there by 3 points (``_variant_margin``, ``_SWITCH_MARGIN``).
3. Within a file, after two pages clearly in one variant (and none in the other), Chinese pages are
   read with that variant alone, except every 4th, which is still compared and unfixes the choice
   if it disagrees (a file that switches script loses at most ~3 pages to the wrong variant).

Measured on 2 cores (rendered pages, ``tessdata_fast`` models):
  * OSD (``--psm 0``) to pick the script: ~1.0 s per A4 page, and a mostly-Chinese page with English
    terms came out "Latin, confidence 0.89". The first reading above gives the script for free.
  * Script comparison over the differing words (18 pages of 150-300 characters at 20 and 32 px):
    simplified pages -1.1 to -13.0 points for chi_tra, traditional pages +4.2 to +19.6; over whole
    pages the margins were -0.9 to -6.1 and +2.2 to +15.6. Below ~14 px (blurred strokes) even the
    differing words are noise: hence the bias to the first configured variant.
    ``chi_sim+chi_tra+eng`` in one reading: slower and worse (0.86-0.96) on simplified pages.
  * ``OMP_THREAD_LIMIT=1``: one dense A4 Chinese page 6-7 s, against 33-44 s with Tesseract's
    default OpenMP threads (they spin against each other on 2 cores); two single-threaded processes
    side by side read 1.85x the pages of one. So: one thread per process, one process per core.
  * Accuracy and pages/min: ``benchmarks/bench_ocr.py``.
"""
from __future__ import annotations

import difflib
import functools
import io
import logging
import math
import os
import re
import shutil
import statistics
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from PIL import Image, ImageOps

from ingest.loaders.detect import LoadError, clean_text, detail, no_text_error, stem
from ingest.settings import LoaderSettings
from ingest.types import LoadedDocument, Section, sha256_hex

logger = logging.getLogger(__name__)

HAN_VARIANTS = frozenset({"chi_sim", "chi_tra", "chi_sim_vert", "chi_tra_vert"})
NOT_INSTALLED = "Tesseract is not installed (install tesseract-ocr with `make ocr`)"
TURNED_OFF = "OCR is turned off (loaders.ocr)"
IMAGE_FORMATS = ("PNG", "JPEG", "TIFF")
MIN_PDF_DPI = 150  # a page too large for the pixel limit at ``ocr_dpi`` is rendered down to this, not below
TESSERACT_TIMEOUT_S = 120.0  # one Tesseract run; the file's parse budget usually ends it first
_MAX_SIDE = 32_767  # Tesseract refuses images wider or taller than this
# Line pitch (baseline to baseline) below which an image is upscaled, and the pitch it is scaled
# to: ~30 px text at 1.6 line spacing. Measured on rendered text: Chinese at 16 px read 0.85 of
# its characters as is and 1.00 upscaled 2x; at 20 px and more, 1.00 without.
_SMALL_PITCH_PX = 30
_TARGET_PITCH_PX = 48
_MAX_UPSCALE = 3.0
_HAN_PAGE_MIN_CHARS = 10  # a page is "Chinese" with at least this many Han characters ...
_HAN_PAGE_MIN_SHARE = 0.1  # ... making at least this share of its letters and digits
# Confidence points (``_variant_margin``) a later Chinese variant must win by to replace the first
# one, and any variant to count towards the file's choice.
_SWITCH_MARGIN = 3.0
_CONFIDENT_MARGIN = 3.0
_RECHECK_EVERY = 4  # with the file's variant fixed, every 4th Han page is still read with all of them

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
# Characters written without spaces between them: Han, CJK punctuation, kana, full-width forms.
_CJK = _HAN + "\u3000-\u303f\u3040-\u30ff\uff00-\uffef"
_HAN_RE = re.compile(f"[{_HAN}]")
_CJK_SPACE_RE = re.compile(f"(?<=[{_CJK}])[ \t]+(?=[{_CJK}])")
_CJK_NEWLINE_RE = re.compile(f"(?<=[{_CJK}])\n(?=[{_CJK}])")
# chi_tra often reads "，" as " , ": between two Han characters an ASCII comma (semicolon, ...) is
# the full-width one, and no space belongs there.
_CJK_ASCII_PUNCT_RE = re.compile(f"(?<=[{_HAN}])[ \t]*([,;:!?])[ \t]*(?=[{_HAN}]|$)", re.MULTILINE)
_FULL_WIDTH = {",": "\uff0c", ";": "\uff1b", ":": "\uff1a", "!": "\uff01", "?": "\uff1f"}
_WORDLIKE_RE = re.compile(rf"[\w{_CJK}]")
_BOMB_RE = re.compile(r"\((\d+) pixels\)")


# --- availability ----------------------------------------------------------------------------------


@functools.cache
def _tesseract_path() -> str | None:
    return shutil.which("tesseract")


@functools.cache
def installed_languages() -> frozenset[str]:
    """Tesseract's installed languages (``tesseract --list-langs``); empty when it is missing."""
    exe = _tesseract_path()
    if exe is None:
        return frozenset()
    try:
        proc = subprocess.run([exe, "--list-langs"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        logger.warning("tesseract --list-langs failed: %s", exc)
        return frozenset()
    lines = proc.stdout.decode("utf-8", "replace").splitlines()
    # The first line is 'List of available languages in "<dir>" (N):'.
    return frozenset(line.strip() for line in lines[1:] if line.strip() and " " not in line.strip())


def tesseract_available() -> bool:
    """Whether Tesseract is installed with at least one language (cached for the process)."""
    return bool(installed_languages() - {"osd"})


def _usable_languages(limits: LoaderSettings) -> list[str]:
    installed = installed_languages()
    return [lang for lang in dict.fromkeys(limits.ocr_languages) if lang in installed and lang != "osd"]


def ocr_unavailable_reason(limits: LoaderSettings) -> str | None:
    """Why OCR cannot run with these settings ('OCR is turned off (loaders.ocr)', ...), or None."""
    if not limits.ocr:
        return TURNED_OFF
    if limits.max_ocr_pages == 0:
        return "OCR is limited to 0 pages per file (loaders.max_ocr_pages)"
    if not tesseract_available():
        return NOT_INSTALLED
    if not _usable_languages(limits):
        wanted = ", ".join(limits.ocr_languages) or "(none)"
        have = ", ".join(sorted(installed_languages() - {"osd"}))
        return f"none of the OCR languages {wanted} (loaders.ocr_languages) is installed (Tesseract has: {have})"
    return None


def require_ocr(limits: LoaderSettings) -> None:
    reason = ocr_unavailable_reason(limits)
    if reason:
        raise LoadError(f"this file needs OCR but {reason}")


# --- image checks and preparation ----------------------------------------------------------------


def check_pixels(width: int, height: int, limits: LoaderSettings) -> None:
    """Refuse an image (or a page about to be rendered) from its declared size, before decoding."""
    if width * height > limits.max_image_pixels:
        raise LoadError(
            f"refused: the image is {width:,} x {height:,} pixels (limit {limits.max_image_pixels:,}); an image bomb?"
        )
    if width <= 0 or height <= 0:
        raise LoadError(f"not a valid image (it declares {width} x {height} pixels)")
    if max(width, height) > _MAX_SIDE:
        raise LoadError(f"refused: the image is {width:,} x {height:,} pixels; OCR reads at most {_MAX_SIDE:,} a side")


def _allow_pil_pixels(limits: LoaderSettings) -> None:
    # PIL refuses an image over 2x MAX_IMAGE_PIXELS at open, before we can read the size. Raise
    # its limit to ours if ours is higher (never lower it: that would weaken other code in the
    # process); an image over our limit is refused by check_pixels from the header anyway.
    current = Image.MAX_IMAGE_PIXELS
    if current is not None and current < limits.max_image_pixels:
        Image.MAX_IMAGE_PIXELS = limits.max_image_pixels


def _bomb_error(exc: Exception, limits: LoaderSettings) -> LoadError:
    found = _BOMB_RE.search(str(exc))
    size = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
    return LoadError(f"refused: the image is {size} (limit {limits.max_image_pixels:,}); an image bomb?")


def _to_gray(image: Image.Image) -> Image.Image:
    """8-bit grayscale; transparency flattened onto white; 16-bit and float images rescaled."""
    mode = image.mode
    if mode == "L":
        return image
    if mode in ("I", "F") or mode.startswith("I;16"):
        wide = image.convert("F") if mode == "F" else image.convert("I")
        extrema = wide.getextrema()
        lo, hi = float(extrema[0]), float(extrema[1])  # type: ignore[arg-type]  # one band: two numbers
        span = (hi - lo) or 1.0
        return wide.point(lambda v: (v - lo) * (255.0 / span)).convert("L")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("L")
    if mode in ("1", "P", "RGB"):
        return image.convert("L")
    return image.convert("RGB").convert("L")  # CMYK, YCbCr, LAB, ...


def _line_pitch(gray: Image.Image) -> float | None:
    """Distance in pixels from one text line to the next (median), from the horizontal ink profile
    (the mean of each row); None when no lines show. About 1.2-1.6x the font size."""
    width, height = gray.size
    if height < 8:
        return None
    rows = list(gray.resize((1, height), Image.Resampling.BOX).tobytes())  # one byte per row: mode L
    ordered = sorted(rows)
    background = ordered[int(0.95 * (len(ordered) - 1))]
    spread = background - ordered[int(0.05 * (len(ordered) - 1))]
    if spread < 8:
        return None  # flat: no lines to see
    threshold = background - max(2.0, 0.1 * spread)
    starts: list[int] = []
    heights: list[int] = []
    run = 0
    for y, value in enumerate([*rows, 255]):
        if value < threshold:
            run += 1
        elif run:
            if run >= 3:  # rules and specks are not lines
                starts.append(y - run)
                heights.append(run)
            run = 0
    if len(starts) >= 3:
        return float(statistics.median(b - a for a, b in zip(starts, starts[1:])))
    # One or two lines: their dark core (x-height, or a Han character) times two, roughly.
    return 2.0 * statistics.median(heights) if heights else None


def _prepare(image: Image.Image, limits: LoaderSettings, upscale: bool = True) -> tuple[Image.Image, float]:
    """Grayscale, and upscaled when its text lines are small (screenshots, low-dpi scans), with
    the scale applied (1.0: none)."""
    gray = _to_gray(image)
    if not upscale:
        return gray, 1.0
    pitch = _line_pitch(gray)
    if pitch is None or pitch >= _SMALL_PITCH_PX:
        return gray, 1.0
    scale = min(_TARGET_PITCH_PX / pitch, _MAX_UPSCALE)
    width, height = gray.size
    scale = min(scale, math.sqrt(limits.max_image_pixels / (width * height)), _MAX_SIDE / max(width, height))
    if scale < 1.2:
        return gray, 1.0
    return gray.resize((round(width * scale), round(height * scale)), Image.Resampling.LANCZOS), scale


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", compress_level=1)  # a pipe, not storage: fast beats small
    return buf.getvalue()


# --- running Tesseract ------------------------------------------------------------------------------


class OcrFailed(Exception):
    """One Tesseract run failed (exit status, timeout); a page's problem, not the file's."""


@dataclass(frozen=True)
class _Reading:
    text: str
    languages: str
    variant: str | None  # the Chinese variant among the languages
    han_chars: int
    letters: int  # letters and digits, Han included
    han_confidence: float  # mean word confidence per Han character (0 when there are none)
    words: tuple[tuple[str, float], ...] = ()  # (word, confidence) as Tesseract read them

    @property
    def is_han(self) -> bool:
        return self.han_chars >= _HAN_PAGE_MIN_CHARS and self.han_chars >= _HAN_PAGE_MIN_SHARE * self.letters


def _run_tesseract(png: bytes, languages: str, dpi: int, timeout: float) -> str:
    exe = _tesseract_path()
    if exe is None:
        raise OcrFailed(NOT_INSTALLED)
    env = dict(os.environ)
    env["OMP_THREAD_LIMIT"] = "1"  # see the module docstring: 6x faster on 2 cores
    cmd = [exe, "stdin", "stdout", "-l", languages, "--psm", "3", "--dpi", str(dpi), "tsv"]
    try:
        proc = subprocess.run(cmd, input=png, capture_output=True, timeout=max(1.0, timeout), env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        raise OcrFailed(f"Tesseract took longer than {timeout:.0f} s on one page") from exc
    except OSError as exc:
        raise OcrFailed(f"Tesseract could not be started: {exc}") from exc
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.decode("utf-8", "replace").splitlines() if line.strip()]
        raise OcrFailed(f"Tesseract failed (exit status {proc.returncode}): {lines[-1] if lines else 'no message'}")
    return proc.stdout.decode("utf-8", "replace")


def _parse_tsv(tsv: str, languages: str, variant: str | None) -> _Reading:
    paragraphs: dict[tuple[str, str, str], dict[str, list[str]]] = {}
    kept: list[tuple[str, float]] = []
    han_chars = letters = 0
    han_weight = 0.0
    for row in tsv.splitlines()[1:]:
        fields = row.split("\t")
        if len(fields) < 12 or fields[0] != "5":
            continue
        word = fields[11].strip()
        try:
            conf = float(fields[10])
        except ValueError:
            continue
        if not word or conf < 0:
            continue
        if conf < 50 and not _WORDLIKE_RE.search(word):
            continue  # low-confidence specks: '|', '_', '—' read off rules, borders and stains
        paragraphs.setdefault((fields[1], fields[2], fields[3]), {}).setdefault(fields[4], []).append(word)
        kept.append((word, conf))
        han = len(_HAN_RE.findall(word))
        han_chars += han
        han_weight += han * conf
        letters += sum(ch.isalnum() for ch in word)
    text = "\n\n".join(
        "\n".join(" ".join(words) for words in lines.values()) for lines in paragraphs.values()
    )
    # Tesseract separates every Chinese character by a space, and breaks Chinese sentences where the
    # line ends on the page: neither is in the text.
    text = _CJK_ASCII_PUNCT_RE.sub(lambda m: _FULL_WIDTH[m.group(1)], text)
    text = _CJK_NEWLINE_RE.sub("", _CJK_SPACE_RE.sub("", text))
    return _Reading(
        text=clean_text(text),
        languages=languages,
        variant=variant,
        han_chars=han_chars,
        letters=letters,
        han_confidence=han_weight / han_chars if han_chars else 0.0,
        words=tuple(kept),
    )


def _han_confidence(words: list[tuple[str, float]]) -> float:
    weights = [(len(_HAN_RE.findall(word)), conf) for word, conf in words]
    total = sum(n for n, _ in weights)
    return sum(n * conf for n, conf in weights) / total if total else 0.0


def _variant_margin(a: _Reading, b: _Reading) -> float:
    """How much more confident reading ``b`` is than ``a`` where they differ (Han characters only).

    Both Chinese models read both scripts, each writing its own (chi_tra reads 职 as 職 with the
    same confidence as chi_sim reads it 职), so the confidence over the whole page says little;
    over the words the two readings disagree on it separates the scripts (see the module docstring)."""
    matcher = difflib.SequenceMatcher(None, [w for w, _ in a.words], [w for w, _ in b.words], autojunk=False)
    only_a: list[tuple[str, float]] = []
    only_b: list[tuple[str, float]] = []
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op != "equal":
            only_a += a.words[a1:a2]
            only_b += b.words[b1:b2]
    return _han_confidence(only_b) - _han_confidence(only_a)


class _PageReader:
    """Reads pages with the language plan of the module docstring. One per file, shared by its
    pages (thread-safe: they are read in parallel): what earlier pages were decides the order of
    the first reading and, once clear, the Chinese variant."""

    def __init__(self, limits: LoaderSettings, deadline: float | None = None) -> None:
        usable = _usable_languages(limits)
        self.base = [lang for lang in usable if lang not in HAN_VARIANTS]
        self.variants = [lang for lang in usable if lang in HAN_VARIANTS]
        self.limits = limits
        self.deadline = deadline
        self.used: Counter[str] = Counter()
        self._pages: Counter[str] = Counter()  # "han" / "latin": pages of each kind so far
        self._wins: Counter[str] = Counter()
        self._fixed: str | None = None
        self._fixed_pages = 0  # Han pages read with the fixed variant only, since it was fixed
        self._lock = threading.Lock()

    def _timeout(self) -> float:
        if self.deadline is None:
            return TESSERACT_TIMEOUT_S
        return min(TESSERACT_TIMEOUT_S, self.deadline - time.monotonic() + 30.0)

    def _read(self, png: bytes, variant: str | None, dpi: int, han_first: bool) -> _Reading:
        han = [variant] if variant else []
        languages = "+".join(han + self.base if han_first else self.base + han)
        text = _run_tesseract(png, languages, dpi, self._timeout())
        return _parse_tsv(text, languages, variant)

    def read(self, image: Image.Image, dpi: int = 300, upscale: bool = True) -> str:
        """The page's text ('' when none). ``dpi``: the image's resolution, for Tesseract."""
        prepared, scale = _prepare(image, self.limits, upscale)
        if prepared is image:
            prepared = image.copy()  # PIL's save() leaves encoder settings on the image it saved
        png = _png(prepared)
        del prepared
        if scale != 1.0:
            dpi = 300  # upscaled to the text size Tesseract reads best, as if scanned at 300 dpi
        if not self.variants or not self.base:
            return self._keep(self._read(png, self.variants[0] if self.variants else None, dpi, True), None)
        with self._lock:
            fixed = self._fixed
            han_first = self._pages["han"] >= self._pages["latin"]
        lead = fixed or self.variants[0]
        first = self._read(png, lead, dpi, han_first)
        if not first.is_han:
            if not first.letters:
                return self._keep(first, None)  # nothing to read (a blank page, a picture)
            # Latin pages read Latin first: Chinese first runs English words together ("largerfiles").
            return self._keep(self._read(png, lead, dpi, False) if han_first else first, "latin")
        # Han pages read Han first: English first keeps whole Chinese lines it misread as Latin.
        candidates = [lead] + [v for v in self.variants if v != lead]
        if fixed:
            with self._lock:
                self._fixed_pages += 1
                recheck = self._fixed_pages % _RECHECK_EVERY == 0
            if not recheck:
                candidates = [fixed]
        readings = ([first] if han_first else []) + [
            self._read(png, variant, dpi, True) for variant in (candidates[1:] if han_first else candidates)
        ]
        best, margin = readings[0], math.inf
        for other in readings[1:]:  # the leading variant wins unless clearly beaten
            gain = _variant_margin(best, other)
            if gain >= _SWITCH_MARGIN:
                best, margin = other, gain
            else:
                margin = min(margin, -gain)
        if len(readings) > 1 and best.variant and margin >= _CONFIDENT_MARGIN:
            self._vote(best.variant)
        return self._keep(best, "han")

    def _vote(self, variant: str) -> None:
        """A page clearly in ``variant``: two such pages (and none in another) fix the file's
        variant; a page that clearly contradicts the fixed one unfixes it."""
        with self._lock:
            if self._fixed and variant != self._fixed:
                self._fixed = None
                self._wins.clear()
            self._wins[variant] += 1
            if self._fixed is None and self._wins[variant] >= 2 and len(self._wins) == 1:
                self._fixed = variant
                self._fixed_pages = 0

    def _keep(self, reading: _Reading, kind: str | None) -> str:
        with self._lock:
            self.used[reading.languages] += 1
            if kind:
                self._pages[kind] += 1
        return reading.text


def ocr_workers() -> int:
    """Tesseract processes run side by side: one per core (each single-threaded), at most 4."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def ocr_image(image: Image.Image, limits: LoaderSettings) -> str:
    """The text of one image (cleaned; '' when there is none), each page's language chosen as the
    module docstring says. Raises LoadError when OCR is unavailable, the image is over the pixel
    limit, or Tesseract fails."""
    require_ocr(limits)
    check_pixels(image.width, image.height, limits)
    try:
        return _PageReader(limits).read(image)
    except OcrFailed as exc:
        raise LoadError(f"OCR failed: {exc}") from exc


# --- many pages ----------------------------------------------------------------------------------------

# A page to read: its number and a function producing its image and resolution (called in the
# caller's thread: PDFium and a multi-frame PIL image are not thread-safe), or None to skip it.
_PageSource = tuple[int, Callable[[], tuple[Image.Image, int] | None]]


def _read_pages(
    sources: Iterable[_PageSource], reader: _PageReader, name: str, upscale: bool
) -> tuple[dict[int, str], dict[int, str]]:
    """OCR pages in parallel (one Tesseract process per core) while the next ones are rendered:
    ({page: text}, {page: why it failed}). Stops early, with a warning, when the next page would
    not finish before ``reader.deadline``."""
    results: dict[int, str] = {}
    failed: dict[int, str] = {}
    durations: list[float] = []
    pending: dict[Future[str], tuple[int, float]] = {}
    not_read: list[int] = []
    workers = ocr_workers()

    def collect(done: Iterable[Future[str]]) -> None:
        for future in done:
            number, started = pending.pop(future)
            try:
                results[number] = future.result()
            except OcrFailed as exc:
                failed[number] = str(exc)
            except Exception as exc:  # one page's image could not be prepared
                failed[number] = detail(exc)
            if number in failed:
                logger.warning("%s: OCR of page %d failed (%s); skipped", name, number, failed[number])
            durations.append(time.monotonic() - started)

    it: Iterator[_PageSource] = iter(sources)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ocr") as pool:
        for number, render in it:
            # Would the next page, taking the mean time so far, end past the deadline?
            late = reader.deadline is not None and durations
            if late and time.monotonic() + statistics.mean(durations) > (reader.deadline or 0.0):
                not_read = [number] + [n for n, _ in it]
                break
            page = render()
            if page is None:
                continue
            pending[pool.submit(reader.read, page[0], page[1], upscale)] = (number, time.monotonic())
            del page
            if len(pending) >= workers:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                collect(done)
        collect(wait(pending).done)
    if not_read:
        logger.warning(
            "%s: OCR stopped to stay within the parse time budget (loaders.parse_timeout_s): %d pages not read "
            "(pages %s)", name, len(not_read), page_list(not_read),
        )
    if len(failed) > 1:
        logger.warning("%s: OCR failed on %d pages: %s", name, len(failed), page_list(sorted(failed)))
    return results, failed


def page_list(pages: list[int], most: int = 10) -> str:
    shown = ", ".join(str(p) for p in pages[:most])
    return shown + (f" and {len(pages) - most} more" if len(pages) > most else "")


def _log_done(name: str, reader: _PageReader, read: int, started: float) -> None:
    if read:
        langs = ", ".join(f"{langs}: {n}" for langs, n in reader.used.most_common())
        logger.info("%s: OCR read %d pages in %.1f s (%s)", name, read, time.monotonic() - started, langs)


def parse_deadline(limits: LoaderSettings, started: float) -> float | None:
    """When OCR should stop starting pages so that the file is done within ``parse_timeout_s``
    (``time.monotonic()`` based; None without a budget): 80% of it, the rest for pages in flight."""
    if limits.parse_timeout_s <= 0:
        return None
    return started + 0.8 * limits.parse_timeout_s


# --- images ---------------------------------------------------------------------------------------------


def _open_image(data: bytes, limits: LoaderSettings) -> Image.Image:
    _allow_pil_pixels(limits)
    try:
        image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except Image.DecompressionBombError as exc:
        raise _bomb_error(exc, limits) from exc
    except Exception as exc:  # UnidentifiedImageError, and whatever a mangled header raises
        raise LoadError(f"not a valid image ({detail(exc)})") from exc
    check_pixels(image.width, image.height, limits)
    return image


def _frame(image: Image.Image, index: int, limits: LoaderSettings) -> Image.Image:
    """Frame ``index`` decoded (checked from its header first), upright, detached from the file."""
    try:
        image.seek(index)
    except Image.DecompressionBombError as exc:
        raise _bomb_error(exc, limits) from exc
    except Exception as exc:
        raise LoadError(f"not a valid image (page {index + 1}: {detail(exc)})") from exc
    check_pixels(image.width, image.height, limits)
    try:
        image.load()
        upright = ImageOps.exif_transpose(image)
        gray = _to_gray(upright)
        return gray.copy() if gray is image else gray
    except Image.DecompressionBombError as exc:
        raise _bomb_error(exc, limits) from exc
    except Exception as exc:  # truncated data, bad compression
        raise LoadError(f"not a valid image ({detail(exc)})") from exc


def load_image(data: bytes, name: str, limits: LoaderSettings | None = None) -> LoadedDocument:
    """OCR a PNG, JPEG or TIFF. A multi-page TIFF gives one Section per page (``page`` = its
    number, at most ``max_ocr_pages``); a single image one Section with ``page`` None."""
    limits = limits or LoaderSettings()
    started = time.monotonic()
    require_ocr(limits)
    image = _open_image(data, limits)
    multi = image.format == "TIFF" and _has_frame(image, 1)
    reader = _PageReader(limits, parse_deadline(limits, started))
    bad: list[str] = []

    def frames() -> Iterator[_PageSource]:
        for index in range(limits.max_ocr_pages if multi else 1):
            if multi and not _has_frame(image, index):
                return
            yield index + 1, functools.partial(decode, index)
        if multi and _has_frame(image, limits.max_ocr_pages):
            logger.warning(
                "%s: the TIFF has more than %d pages; only the first %d were read (loaders.max_ocr_pages)",
                name, limits.max_ocr_pages, limits.max_ocr_pages,
            )

    def decode(index: int) -> tuple[Image.Image, int] | None:
        try:
            return _frame(image, index, limits), _image_dpi(image)
        except LoadError as exc:
            if not multi or exc.reason.startswith("refused"):
                raise
            bad.append(exc.reason)
            logger.warning("%s: page %d unreadable (%s); skipped", name, index + 1, exc.reason)
            return None

    try:
        texts, failed = _read_pages(frames(), reader, name, upscale=True)
    finally:
        image.close()
    _log_done(name, reader, len(texts), started)
    sections = tuple(Section(text=t, page=n if multi else None) for n, t in sorted(texts.items()) if t)
    if not sections:
        if not texts and failed:
            raise LoadError(f"OCR failed: {next(iter(failed.values()))}")
        if not texts and bad:
            raise LoadError(bad[-1])
        raise no_text_error("OCR found no text in the image")
    return LoadedDocument(
        source=name, doc_id=sha256_hex(data), file_type="image", sections=sections, title=stem(name)
    )


def _has_frame(image: Image.Image, index: int) -> bool:
    try:
        image.seek(index)
    except Exception:  # EOFError past the last page; anything else: a broken chain of pages
        return False
    return True


def _image_dpi(image: Image.Image) -> int:
    """The resolution Tesseract is told: the file's own when plausible, else 300."""
    dpi = image.info.get("dpi")
    try:
        value = round(float(dpi[0])) if dpi else 0
    except (TypeError, ValueError, IndexError):
        value = 0
    return value if 150 <= value <= 1200 else 300


# --- PDF pages --------------------------------------------------------------------------------------------


def pdf_pages_worth_ocr(data: bytes, empty: list[int], sparse: list[int]) -> list[int]:
    """Which pages to OCR, in page order: an ``empty`` page (no text layer) unless it draws
    nothing at all (a blank page), a ``sparse`` one (a few characters of text, like the page
    number on a scan) when one image covers most of it. When PDFium cannot tell, the empty pages."""
    if not empty and not sparse:
        return []
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        pdf = pdfium.PdfDocument(data)
    except Exception as exc:
        logger.warning("PDFium could not open the PDF to look for scanned pages: %s", detail(exc))
        return sorted(empty)
    chosen: list[int] = []
    blank_candidates = set(empty)
    try:
        for number in sorted(blank_candidates | set(sparse)):
            try:
                page = pdf[number - 1]
                try:
                    if number in blank_candidates:
                        if next(iter(page.get_objects(max_depth=2)), None) is not None:
                            chosen.append(number)
                        continue
                    width, height = page.get_size()
                    area = max(width * height, 1.0)
                    for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=2):
                        left, bottom, right, top = obj.get_bounds()
                        if (right - left) * (top - bottom) >= 0.5 * area:
                            chosen.append(number)
                            break
                finally:
                    page.close()
            except Exception as exc:
                logger.warning("page %d: PDFium could not read it: %s", number, detail(exc))
                if number in blank_candidates:
                    chosen.append(number)
    finally:
        pdf.close()
    return chosen


def ocr_pdf_pages(
    data: bytes,
    pages: list[int],
    limits: LoaderSettings,
    *,
    name: str = "",
    deadline: float | None = None,
) -> dict[int, str]:
    """OCR the given 1-based pages, rendered with PDFium at ``ocr_dpi`` (lower, down to 150 dpi,
    for a page too large for ``max_image_pixels``; a page too large even then is skipped with a
    warning). Returns {page: text} for the pages read ('' when OCR found nothing on one); pages
    skipped, failed or cut by ``deadline`` (a ``time.monotonic()`` value) are absent. Raises
    LoadError only when OCR is unavailable or the PDF cannot be opened."""
    require_ocr(limits)
    import pypdfium2 as pdfium

    started = time.monotonic()
    try:
        pdf = pdfium.PdfDocument(data)
    except Exception as exc:
        raise LoadError(f"not a valid PDF (PDFium could not open it for OCR): {detail(exc)}") from exc
    reader = _PageReader(limits, deadline)

    def render(number: int) -> tuple[Image.Image, int] | None:
        try:
            page = pdf[number - 1]
        except Exception as exc:
            logger.warning("%s: page %d could not be opened for OCR (%s); skipped", name, number, detail(exc))
            return None
        try:
            width_pt, height_pt = page.get_size()
            dpi = _page_dpi(width_pt, height_pt, limits)
            if dpi is None:
                logger.warning(
                    "%s: page %d is %.0f x %.0f pt, over the pixel limit even at %d dpi (loaders.max_image_pixels); "
                    "not read", name, number, width_pt, height_pt, min(MIN_PDF_DPI, limits.ocr_dpi),
                )
                return None
            bitmap = page.render(scale=dpi / 72, grayscale=True, draw_annots=True)
            image = bitmap.to_pil()
            check_pixels(image.width, image.height, limits)
            return (image.convert("L") if image.mode != "L" else image.copy()), dpi
        except LoadError as exc:
            logger.warning("%s: page %d not read: %s", name, number, exc.reason)
            return None
        except Exception as exc:
            logger.warning("%s: page %d could not be rendered (%s); skipped", name, number, detail(exc))
            return None
        finally:
            page.close()

    sources = ((number, functools.partial(render, number)) for number in pages)
    try:
        # Rendered at a known resolution: no upscaling guesswork.
        texts, _ = _read_pages(sources, reader, name or "PDF", upscale=False)
    finally:
        pdf.close()
    _log_done(name or "PDF", reader, len(texts), started)
    return texts


def _page_dpi(width_pt: float, height_pt: float, limits: LoaderSettings) -> int | None:
    """``ocr_dpi``, or less for a page that would be over the pixel limit; None when even the
    lowest acceptable resolution is over it (or the page is degenerate)."""
    if not (width_pt > 0 and height_pt > 0) or math.isinf(width_pt * height_pt):
        return None
    dpi = limits.ocr_dpi
    pixels = (width_pt * dpi / 72) * (height_pt * dpi / 72)
    if pixels > limits.max_image_pixels:
        dpi = int(dpi * math.sqrt(limits.max_image_pixels / pixels))
    if max(width_pt, height_pt) * dpi / 72 > _MAX_SIDE:
        dpi = int(_MAX_SIDE * 72 / max(width_pt, height_pt))
    return dpi if dpi >= min(MIN_PDF_DPI, limits.ocr_dpi) else None
