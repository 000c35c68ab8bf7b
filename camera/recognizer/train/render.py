"""Renders synthetic number plates and the crops the reader is trained on.

Everything is drawn here with Pillow and numpy from Debian's free fonts (FONTS below); no
photograph is used. A sample is what the reader sees on the camera: a plate in the style of one
region (US state plates, EU, Brazil's old grey plates and Mercosul), placed on a background with
a little perspective, then cut out around its characters as the detector's box would be (with
jittered margins, sometimes the whole plate with its frame text), shrunk to the size plates have
in real frames, blurred, noised, relit, partly occluded and JPEG-compressed, and finally resized
to the reader's input (grey, READER_H x READER_W).

`sample(rng)` returns (uint8 array READER_H x READER_W, label); the label is the plate's
characters (0-9 A-Z, no separators), or "" for a crop holding no plate (a negative).
"""

import io
import math
import random
import string

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

READER_H, READER_W = 32, 128
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LETTERS = string.ascii_uppercase
DIGITS = string.digits

# Debian packages and licences: fonts-opendin (OFL-1.1), fonts-roboto-unhinted (Apache-2.0),
# fonts-liberation2 (OFL-1.1), fonts-dejavu-core (Bitstream Vera licence, free).
PLATE_FONTS = [
    "/usr/share/fonts/truetype/opendin/OSP-DIN.ttf",
    "/usr/share/fonts/truetype/roboto/unhinted/RobotoCondensed-Bold.ttf",
    "/usr/share/fonts/truetype/roboto/unhinted/RobotoCondensed-Medium.ttf",
    "/usr/share/fonts/truetype/roboto/unhinted/RobotoCondensed-Regular.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Bold.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationMono-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf",
]
# Fonts for the small text around the characters (state names, slogans, city names).
SMALL_FONTS = PLATE_FONTS + [
    "/usr/share/fonts/truetype/liberation2/LiberationSerif-BoldItalic.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSerif-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif-BoldItalic.ttf",
    "/usr/share/fonts/truetype/roboto/unhinted/RobotoCondensed-BoldItalic.ttf",
]
FONTS = sorted(set(PLATE_FONTS + SMALL_FONTS))

_font_cache = {}


def font(path, size):
    key = (path, size)
    f = _font_cache.get(key)
    if f is None:
        f = ImageFont.truetype(path, size)
        _font_cache[key] = f
    return f


WORDS = [
    "CALIFORNIA", "TEXAS", "FLORIDA", "NEW YORK", "ILLINOIS", "OHIO", "GEORGIA", "ARIZONA",
    "NEVADA", "OREGON", "MICHIGAN", "VIRGINIA", "COLORADO", "KANSAS", "IOWA", "UTAH", "MAINE",
    "Land of Lincoln", "Sunshine State", "Empire State", "The Lone Star State", "dmv.ca.gov",
    "Grand Canyon State", "Live Free or Die", "SAO PAULO", "RIO DE JANEIRO", "CURITIBA",
    "BELO HORIZONTE", "BRASIL", "Peach State", "Great Lakes", "Wild Wonderful", "Famous Potatoes",
    "auto center", "Motors", "dealer", "Toyota", "Ford", "Honda", "www.autos.com", "Volkswagen",
]


def rand_chars(rng, pattern):
    out = []
    for p in pattern:
        if p == "L":
            out.append(rng.choice(LETTERS))
        elif p == "N":
            out.append(rng.choice(DIGITS))
        elif p == "A":
            out.append(rng.choice(ALPHABET))
        else:
            out.append(p)
    return "".join(out)


US_PATTERNS = [
    "LLL NNNN", "NLLLNNN", "NLLL NNN", "NNN LLL", "LLL NNN", "LLL-NNNN", "LL NNNNN",
    "NNNNNN", "NNN NNN", "LLL-NNN", "NLL NNN", "NNN-LLL", "LLLNNN", "LLLNNNN", "NLLLNNN",
    "LL NNNN", "NNNN LL", "LNN LLL", "AAAAAAA", "AAAAAA", "AAAAA", "NNNLLLN",
]
EU_PATTERNS = [
    "LL-NNN-LL", "LL NNN LL", "LLNNN LL", "NNNN LLL", "NNNN-LLL", "LLNN LLL", "LL NNNN",
    "L LL NNNN", "LL L NNN", "LLL NNNN", "NN-LLL-N", "N-LLL-NN", "LL-NN-NN", "LLL-NNN",
    "NNN LLL", "LLNNNNN", "AAAAAAA", "LLNNNLL", "NNNNLLL", "LLNNLLL",
]
BR_OLD = ["LLL-NNNN", "LLL NNNN", "LLL·NNNN"]
BR_MERCOSUL = ["LLLNLNN", "LLL NLNN", "LLLNLNN"]


def label_of(text):
    return "".join(c for c in text if c in ALPHABET)


def rgb(rng, lo, hi):
    return tuple(rng.randint(lo, hi) for _ in range(3))


def jitter(rng, color, amount=18):
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in color)


def draw_text_fit(img, text, font_path, box, color, rng, squeeze=1.0, spacing=0.0):
    """Draws `text` to fill `box` (x0, y0, x1, y1) in height, squeezed horizontally, centred.
    Returns the box the characters occupy."""
    x0, y0, x1, y1 = box
    bh = y1 - y0
    bw = x1 - x0
    size = max(6, int(bh * 1.25))
    f = font(font_path, size)
    # Render on its own layer so that it can be squeezed to the box.
    l, t, r, b = f.getbbox(text)
    if r - l <= 0 or b - t <= 0:
        return None
    pad = int(size * 0.1) + 2
    w = (r - l) + 2 * pad + int(spacing * size * len(text))
    h = (b - t) + 2 * pad
    layer = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(layer)
    x = pad
    if spacing == 0.0:
        d.text((pad - l, pad - t), text, font=f, fill=255)
    else:
        for ch in text:
            d.text((x - l, pad - t), ch, font=f, fill=255)
            x += f.getlength(ch) + spacing * size
    bbox = layer.getbbox()
    if bbox is None:
        return None
    layer = layer.crop(bbox)
    lw, lh = layer.size
    th = bh
    tw = int(lw * th / lh * squeeze)
    if tw > bw:
        tw = bw
    if tw < 4 or th < 4:
        return None
    layer = layer.resize((tw, th), Image.BILINEAR)
    ox = x0 + (bw - tw) // 2
    oy = y0
    img.paste(Image.new("RGB", (tw, th), color), (ox, oy), layer)
    return (ox, oy, ox + tw, oy + th)


def small_text(img, rng, text, box, color):
    fp = rng.choice(SMALL_FONTS)
    return draw_text_fit(img, text, fp, box, color, rng, squeeze=rng.uniform(0.8, 1.2))


def plate_us(rng):
    W, H = 300, 150
    kind = rng.random()
    if kind < 0.7:
        bg = jitter(rng, rng.choice([(245, 245, 240), (235, 240, 250), (250, 245, 225), (230, 230, 230)]))
        fg = jitter(rng, rng.choice([(20, 20, 25), (20, 30, 110), (120, 20, 25), (20, 70, 30)]))
    elif kind < 0.85:
        bg = jitter(rng, rng.choice([(240, 200, 60), (250, 220, 120), (200, 220, 240)]))
        fg = jitter(rng, rng.choice([(20, 30, 90), (20, 20, 20)]))
    else:
        bg = jitter(rng, rng.choice([(25, 35, 90), (20, 20, 20), (20, 70, 40), (110, 20, 25)]))
        fg = jitter(rng, rng.choice([(240, 240, 240), (240, 210, 60)]))
    img = Image.new("RGB", (W, H), bg)
    d = ImageDraw.Draw(img)
    # Graphics: a gradient band, mountains, a sun.
    if rng.random() < 0.5:
        c = rgb(rng, 80, 230)
        y = rng.randint(80, 130)
        d.polygon([(0, H), (0, y), (rng.randint(40, 120), y - rng.randint(10, 40)),
                   (rng.randint(150, 220), y), (W, y - rng.randint(0, 30)), (W, H)], fill=jitter(rng, c))
    if rng.random() < 0.3:
        r = rng.randint(15, 40)
        cx, cy = rng.randint(20, W - 20), rng.randint(20, H - 20)
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=rgb(rng, 150, 255))
    top_color = jitter(rng, rng.choice([(170, 20, 30), (20, 40, 140), fg]))
    if rng.random() < 0.9:
        small_text(img, rng, rng.choice(WORDS), (rng.randint(30, 80), 8, W - rng.randint(30, 80), 8 + rng.randint(18, 30)), top_color)
    if rng.random() < 0.6:
        small_text(img, rng, rng.choice(WORDS), (rng.randint(50, 100), H - 28, W - rng.randint(50, 100), H - 28 + rng.randint(12, 18)), top_color)
    text = rand_chars(rng, rng.choice(US_PATTERNS))
    ch_top = rng.randint(36, 48)
    ch_h = rng.randint(62, 80)
    cbox = draw_text_fit(img, text, rng.choice(PLATE_FONTS), (14, ch_top, W - 14, ch_top + ch_h), fg, rng,
                         squeeze=rng.uniform(0.55, 1.0), spacing=rng.choice([0.0, 0.0, 0.05, 0.12]))
    if rng.random() < 0.5:
        d.rectangle((2, 2, W - 3, H - 3), outline=jitter(rng, fg), width=rng.randint(1, 4))
    for bx in (W // 4, 3 * W // 4):  # bolts
        if rng.random() < 0.5:
            d.ellipse((bx - 5, 12 - 5, bx + 5, 12 + 5), fill=rgb(rng, 90, 200))
    return img, text, cbox


def eu_band(img, rng, band_w):
    W, H = img.size
    d = ImageDraw.Draw(img)
    blue = jitter(rng, (20, 50, 160), 15)
    d.rectangle((0, 0, band_w, H), fill=blue)
    cx, cy, r = band_w // 2, int(H * 0.3), int(band_w * 0.32)
    for k in range(12):
        a = 2 * math.pi * k / 12
        x, y = cx + r * math.cos(a), cy + r * math.sin(a)
        d.ellipse((x - 2, y - 2, x + 2, y + 2), fill=(250, 210, 30))
    code = rng.choice(["D", "F", "I", "E", "NL", "P", "B", "A", "PL", "CZ", "GB", "UK", "IRL", "L"])
    draw_text_fit(img, code, rng.choice(PLATE_FONTS), (2, int(H * 0.58), band_w - 2, int(H * 0.9)), (250, 250, 250), rng)


def plate_eu(rng):
    text = rand_chars(rng, rng.choice(EU_PATTERNS))
    W, H = rng.choice([(520, 112)] * 6 + [(440, 112)] * 3 + [(340, 200)])
    H2 = H
    bg = jitter(rng, rng.choice([(245, 245, 240), (245, 245, 240), (245, 245, 240), (250, 205, 30)]), 10)
    fg = jitter(rng, (15, 15, 20), 10)
    img = Image.new("RGB", (W, H2), bg)
    d = ImageDraw.Draw(img)
    band = int(W * 0.085) if rng.random() < 0.85 else 0
    if band:
        eu_band(img, rng, band)
    right_band = rng.random() < 0.15
    x1 = W - (band if right_band else 8)
    if right_band:
        d.rectangle((W - band, 0, W, H), fill=jitter(rng, (20, 50, 160), 15))
    d.rectangle((1, 1, W - 2, H - 2), outline=fg, width=rng.randint(2, 5))
    if H > 150:  # two-line plate (moto / square): draw the whole text on two lines
        top, bottom = text[: len(text) // 2], text[len(text) // 2:]
        b1 = draw_text_fit(img, top.strip(), rng.choice(PLATE_FONTS), (band + 8, 14, x1, 92), fg, rng, squeeze=rng.uniform(0.8, 1.1))
        b2 = draw_text_fit(img, bottom.strip(), rng.choice(PLATE_FONTS), (band + 8, 108, x1, 186), fg, rng, squeeze=rng.uniform(0.8, 1.1))
        # A two-line plate is read as one line only when the crop holds the whole plate.
        if b1 is None or b2 is None:
            return None
        return img, text, None
    cbox = draw_text_fit(img, text, rng.choice(PLATE_FONTS), (band + 10, int(H * 0.14), x1 - 6, int(H * 0.86)), fg, rng,
                         squeeze=rng.uniform(0.75, 1.1), spacing=rng.choice([0.0, 0.0, 0.08]))
    if cbox and " " in text and rng.random() < 0.3:
        # German-style seals between the district and the letters.
        i = text.index(" ")
        frac = (i + 0.5) / len(text)
        sx = int(cbox[0] + frac * (cbox[2] - cbox[0]))
        cy = (cbox[1] + cbox[3]) // 2
        for dy in (-18, 18):
            d.ellipse((sx - 12, cy + dy - 12, sx + 12, cy + dy + 12), fill=rgb(rng, 60, 220), outline=fg)
    return img, text, cbox


def plate_br(rng):
    if rng.random() < 0.5:  # old grey plate
        W, H = 400, 130
        bg = jitter(rng, (185, 188, 190), 20)
        fg = jitter(rng, (20, 20, 20), 10)
        img = Image.new("RGB", (W, H), bg)
        d = ImageDraw.Draw(img)
        d.rectangle((1, 1, W - 2, H - 2), outline=fg, width=rng.randint(2, 5))
        small_text(img, rng, rng.choice(["SP", "RJ", "MG", "PR", "SC", "RS", "BA"]) + " - " + rng.choice(WORDS[22:28]).upper(),
                   (60, 6, W - 60, 28), fg)
        text = rand_chars(rng, rng.choice(BR_OLD))
        cbox = draw_text_fit(img, text, rng.choice(PLATE_FONTS), (12, 36, W - 12, H - 12), fg, rng, squeeze=rng.uniform(0.7, 1.05))
        return img, text, cbox
    W, H = 400, 130  # Mercosul
    bg = jitter(rng, (245, 245, 245), 10)
    fg = jitter(rng, (20, 20, 20), 10)
    img = Image.new("RGB", (W, H), bg)
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, W, 30), fill=jitter(rng, (20, 50, 160), 15))
    draw_text_fit(img, "BRASIL", rng.choice(PLATE_FONTS), (150, 6, 250, 25), (250, 250, 250), rng)
    d.rectangle((W - 40, 6, W - 14, 24), fill=(30, 150, 60))
    d.rectangle((1, 1, W - 2, H - 2), outline=fg, width=rng.randint(2, 5))
    if rng.random() < 0.5:
        d.rectangle((10, 40, 36, 60), fill=(20, 50, 160))
    text = rand_chars(rng, rng.choice(BR_MERCOSUL))
    cbox = draw_text_fit(img, text, rng.choice(PLATE_FONTS), (40, 40, W - 16, H - 12), fg, rng, squeeze=rng.uniform(0.75, 1.05))
    return img, text, cbox


def background(rng, w, h):
    """A street-like backdrop: a gradient, noise and a few blocks (drawn at a quarter size)."""
    w0, h0 = w, h
    w, h = max(8, w // 4), max(8, h // 4)
    base = np.array(rgb(rng, 0, 220), dtype=np.float32)
    gy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    gx = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    arr = base + (gy * rng.uniform(-60, 60) + gx * rng.uniform(-60, 60))
    arr = arr + np.random.default_rng(rng.randint(0, 2**31)).normal(0, rng.uniform(2, 20), (h, w, 3))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    for _ in range(rng.randint(0, 6)):
        x, y = rng.randint(0, w), rng.randint(0, h)
        d.rectangle((x, y, x + rng.randint(2, w // 2), y + rng.randint(1, h // 3)), fill=rgb(rng, 0, 255))
    return img.resize((w0, h0), Image.BILINEAR)


def homography(src, dst):
    a = []
    b = []
    for (x, y), (u, v) in zip(src, dst):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b += [u, v]
    h = np.linalg.solve(np.array(a, dtype=np.float64), np.array(b, dtype=np.float64))
    return np.append(h, 1.0).reshape(3, 3)


def apply_h(hm, pts):
    out = []
    for x, y in pts:
        p = hm @ np.array([x, y, 1.0])
        out.append((p[0] / p[2], p[1] / p[2]))
    return out


def negative(rng):
    """A crop holding text or texture that is not a plate (label "")."""
    w, h = rng.randint(60, 300), rng.randint(20, 60)
    img = background(rng, w, h)
    if rng.random() < 0.8:
        word = rng.choice(WORDS)
        if rng.random() < 0.5:
            word = word.lower()
        small_text(img, rng, word, (2, int(h * 0.15), w - 2, int(h * 0.85)), rgb(rng, 0, 255))
    return img


def degrade(rng, crop):
    """Shrinks to a camera-like size, blurs, relights, noises, occludes, JPEG-compresses."""
    w, h = crop.size
    # Height of the characters in the camera frame: 10..48 px.
    target_h = rng.choice([rng.randint(13, 22), rng.randint(16, 32), rng.randint(22, 56)])
    scale = target_h / h
    small = crop.resize((max(4, int(w * scale)), max(4, int(h * scale))), Image.BILINEAR)
    if rng.random() < 0.3:
        small = small.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    arr = np.asarray(small).astype(np.float32)
    if rng.random() < 0.2:  # horizontal motion blur
        k = rng.randint(2, 3)
        arr = sum(np.roll(arr, s, axis=1) for s in range(k)) / k
    # Lighting: contrast, brightness, gamma, a shadow across part of the plate.
    arr = (arr - 128) * rng.uniform(0.35, 1.3) + 128 + rng.uniform(-70, 50)
    if rng.random() < 0.3:
        sh, sw = arr.shape[:2]
        x = rng.randint(0, sw)
        mask = np.zeros((sh, sw, 1), np.float32)
        if rng.random() < 0.5:
            mask[:, x:] = 1
        else:
            mask[:, :x] = 1
        arr = arr * (1 - mask * rng.uniform(0.2, 0.6))
    arr = np.clip(arr, 0, 255)
    arr = 255 * (arr / 255) ** rng.uniform(0.6, 1.6)
    arr = arr + np.random.default_rng(rng.randint(0, 2**31)).normal(0, rng.uniform(0, 12), arr.shape)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if rng.random() < 0.15:  # a bar over the top or bottom edge (frame, bumper, tow hook)
        d = ImageDraw.Draw(img)
        sw, sh = img.size
        bh = int(sh * rng.uniform(0.05, 0.18))
        if rng.random() < 0.5:
            d.rectangle((0, 0, sw, bh), fill=rgb(rng, 0, 80))
        else:
            d.rectangle((0, sh - bh, sw, sh), fill=rgb(rng, 0, 80))
    if rng.random() < 0.7:
        img = jpeg_again(img, rng.randint(20, 90))
    return img


def jpeg_again(img, quality):
    """`img` after a round trip through JPEG at `quality` (a camera's compression)."""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def to_input(img):
    """The reader's input: grey, stretched to READER_W x READER_H (as the Rust reader does)."""
    return np.asarray(img.convert("L").resize((READER_W, READER_H), Image.BILINEAR), dtype=np.uint8)


def sample(rng):
    """One training sample: (uint8 READER_H x READER_W, label)."""
    crop, label = compose(rng)
    return to_input(degrade(rng, crop)), label


STYLES = {"us": plate_us, "eu": plate_eu, "br": plate_br}


def plate_of_mix(rng, r):
    """A plate of the regions' mix for `r` drawn in [0, 1): US 40 %, EU 30 %, Brazil 30 %."""
    return plate_us(rng) if r < 0.4 else plate_eu(rng) if r < 0.7 else plate_br(rng)


def compose(rng, style=None):
    """A crop at drawing resolution as the detector would give it, and its label."""
    if style is None and rng.random() < 0.06:
        return negative(rng), ""
    r = rng.random()
    made = None
    while made is None:
        if style is not None:
            made = STYLES[style](rng)
        else:
            made = plate_of_mix(rng, r)
        if made is not None and made[2] is None and made[0].size[1] < 150:
            made = None
    plate, text, cbox = made
    label = label_of(text)
    # Composed at half the drawing size: everything ends up far smaller anyway.
    plate = plate.resize((plate.size[0] // 2, plate.size[1] // 2), Image.BILINEAR)
    if cbox is not None:
        cbox = tuple(v // 2 for v in cbox)
    W, H = plate.size
    # Place the plate on a background, with perspective.
    m = int(0.6 * H)
    canvas = background(rng, W + 2 * m, H + 2 * m)
    canvas.paste(plate, (m, m))
    cw, ch = canvas.size
    src = [(0, 0), (cw, 0), (cw, ch), (0, ch)]
    dx, dy = 0.06 * W, 0.08 * H
    dst = [(x + rng.uniform(-dx, dx), y + rng.uniform(-dy, dy)) for x, y in src]
    ang = math.radians(rng.uniform(-6, 6))
    cx, cy = cw / 2, ch / 2
    dst = [(cx + (x - cx) * math.cos(ang) - (y - cy) * math.sin(ang),
            cy + (x - cx) * math.sin(ang) + (y - cy) * math.cos(ang)) for x, y in dst]
    hm = homography(src, dst)
    inv = np.linalg.inv(hm)
    inv = inv / inv[2, 2]
    warped = canvas.transform((cw, ch), Image.PERSPECTIVE, tuple(inv.flatten()[:8]), Image.BILINEAR)
    whole = cbox is None or rng.random() < 0.12
    if whole:
        box = (m, m, m + W, m + H)
    else:
        box = (cbox[0] + m, cbox[1] + m, cbox[2] + m, cbox[3] + m)
    pts = apply_h(hm, [(box[0], box[1]), (box[2], box[1]), (box[2], box[3]), (box[0], box[3])])
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    bh = y1 - y0
    if whole:
        gx0, gx1, gy0, gy1 = (rng.uniform(-0.05, 0.1) * bh for _ in range(4))
    else:
        # As the detector's box grown by the recognizer (0.15 h left/right, 0.05 h up/down),
        # with the detector's own slack.
        gx0, gx1 = rng.uniform(-0.03, 0.45) * bh, rng.uniform(-0.03, 0.45) * bh
        gy0, gy1 = rng.uniform(-0.06, 0.3) * bh, rng.uniform(-0.06, 0.3) * bh
    crop = warped.crop((int(max(0, x0 - gx0)), int(max(0, y0 - gy0)),
                        int(min(cw, x1 + gx1)), int(min(ch, y1 + gy1))))
    return crop, label


if __name__ == "__main__":
    # Preview: python render.py OUT.png  (a grid of 48 samples, labels on stdout)
    import sys

    rng = random.Random(1)
    tiles = []
    for _ in range(48):
        a, lab = sample(rng)
        print(lab)
        tiles.append(a)
    grid = np.vstack([np.hstack(tiles[i:i + 4]) for i in range(0, 48, 4)])
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2)).save(sys.argv[1] if len(sys.argv) > 1 else "preview.png")
