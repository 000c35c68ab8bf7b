"""Composes street-like camera frames with number plates for the plate detector.

`frame(rng, w, h)` returns (uint8 h x w x 3 RGB, list of quads): each quad is the four corners
(top-left, top-right, bottom-right, bottom-left, in pixels of the frame) of one plate's
characters. Everything is drawn (render.py's plates and backdrops, Pillow, numpy, Debian's free
fonts); no photograph is used. Besides 0..3 plates (mostly 1) placed with perspective, a frame
holds car-like structure (bodies, bumpers, grilles, lights) and text that is NOT a plate (words,
numbers, signs, dealer stickers, badges, blank plate-shaped panels): the detector must learn to
find plates, not text. Then the whole frame is degraded (blur, motion blur, lighting, gamma,
noise, night, glare, JPEG).

`label_map(quads, w, h)` is the detector's target: a cell of stride 4 is positive when its centre
lies inside a plate's character quad shrunk toward its centre (`shrink`).

    python frames.py OUT.png     # preview: a grid of frames with their label quads drawn
"""
import math
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

import render

STRIDE = 4
# Shrink of a character quad for the label, as a fraction of its height, on every side.
SHRINK = 0.2

# Fonts for the words around (signs, stickers, badges): render.py's and a few more free ones.
# Debian packages and licences: fonts-croscore (OFL-1.1), fonts-clear-sans (Apache-2.0),
# fonts-league-spartan (OFL-1.1), fonts-freefont-ttf (GPL-3+ with font exception).
WORD_FONTS = render.FONTS + [
    "/usr/share/fonts/truetype/croscore/Arimo-Bold.ttf",
    "/usr/share/fonts/truetype/croscore/Arimo-Regular.ttf",
    "/usr/share/fonts/truetype/croscore/Tinos-Bold.ttf",
    "/usr/share/fonts/truetype/croscore/Cousine-Bold.ttf",
    "/usr/share/fonts/truetype/clear-sans/ClearSans-Bold.ttf",
    "/usr/share/fonts/truetype/clear-sans/ClearSans-Regular.ttf",
    "/usr/share/fonts/opentype/league-spartan/LeagueSpartan-Bold.otf",
    "/usr/share/fonts/opentype/league-spartan/LeagueSpartan-Black.otf",
    "/usr/share/fonts/truetype/freefont/FreeSansBold.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSerifBold.ttf",
    "/usr/share/fonts/truetype/freefont/FreeMonoBold.ttf",
]

EXTRA_WORDS = [
    "SALE", "OPEN", "PARKING", "EXIT", "STOP", "BUS", "TAXI", "POLICE", "HOTEL", "PHARMACY",
    "CAFE", "PIZZA", "BANK", "SHELL", "Car Wash", "Tires", "Service", "ONE WAY", "NO PARKING",
    "SPEED LIMIT", "Rent a car", "DIESEL", "AUTO CENTER", "AUTO SALES", "GARAGE", "Mercedes",
    "Chevrolet", "Nissan", "Hyundai", "Fiat", "Renault", "Peugeot", "Kia", "Audi", "BMW", "Mazda",
]


def words(rng, numbers=True):
    """A word, a phrase or (with `numbers`) a number that is not a plate."""
    r = rng.random() if numbers else rng.uniform(0, 0.5) if rng.random() < 0.8 else rng.uniform(0.85, 1)
    if r < 0.5:
        w = rng.choice(render.WORDS + EXTRA_WORDS)
    elif r < 0.65:
        w = str(rng.randint(0, 99999))
    elif r < 0.75:
        w = f"{rng.randint(100, 999)}-{rng.randint(1000, 9999)}"
    elif r < 0.85:
        w = f"{rng.choice(['$', '', 'No ', 'Km '])}{rng.randint(1, 999)}{rng.choice(['', '.99', ',00', ' km/h'])}"
    else:
        w = " ".join(rng.choice(render.WORDS + EXTRA_WORDS) for _ in range(2))
    if rng.random() < 0.3:
        w = w.lower()
    elif rng.random() < 0.3:
        w = w.title()
    return w


def text_on(img, rng, box, color, numbers=True):
    """Draws a distractor text to fit `box` (x0, y0, x1, y1) on `img`."""
    x0, y0, x1, y1 = (int(v) for v in box)
    if x1 - x0 < 6 or y1 - y0 < 5:
        return
    render.draw_text_fit(img, words(rng, numbers), rng.choice(WORD_FONTS), (x0, y0, x1, y1), color, rng,
                         squeeze=rng.uniform(0.7, 1.3), spacing=rng.choice([0.0, 0.0, 0.05]))


def contrast(rng, bg):
    """A colour that stands out on `bg`."""
    lum = sum(bg) / 3
    return render.rgb(rng, 0, 70) if lum > 128 else render.rgb(rng, 190, 255)


# ---- backdrop and distractors (drawn on an RGB image of the frame size) ----

def car_body(d, rng, w, h, around=None):
    """A car-like block: body, bumper, grille bars, lights. `around`: a plate's (cx, cy, ph)."""
    if around is not None:
        cx, cy, ph = around
        bw = ph * rng.uniform(6, 14)
        bh = ph * rng.uniform(3, 7)
        x0 = cx - bw * rng.uniform(0.35, 0.65)
        y0 = cy - bh * rng.uniform(0.5, 0.85)
    else:
        bw, bh = rng.uniform(0.2, 1.0) * w, rng.uniform(0.15, 0.6) * h
        x0, y0 = rng.uniform(-0.2, 1) * w - bw / 2, rng.uniform(0, 1) * h - bh / 3
    body = render.rgb(rng, 0, 255)
    r = int(min(bw, bh) * rng.uniform(0.05, 0.25))
    d.rounded_rectangle((x0, y0, x0 + bw, y0 + bh), radius=max(1, r), fill=body)
    # Windscreen.
    if rng.random() < 0.6:
        d.rounded_rectangle((x0 + bw * 0.12, y0 - bh * 0.45, x0 + bw * 0.88, y0 + bh * 0.05),
                            radius=max(1, r), fill=render.rgb(rng, 10, 120))
    # Bumper.
    by = y0 + bh * rng.uniform(0.55, 0.8)
    d.rectangle((x0 - bw * 0.02, by, x0 + bw * 1.02, by + bh * rng.uniform(0.1, 0.25)),
                fill=render.jitter(rng, body, 60) if rng.random() < 0.5 else render.rgb(rng, 0, 60))
    # Grille.
    if rng.random() < 0.7:
        gx0, gx1 = x0 + bw * rng.uniform(0.2, 0.35), x0 + bw * rng.uniform(0.65, 0.8)
        gy0 = y0 + bh * rng.uniform(0.1, 0.3)
        gy1 = gy0 + bh * rng.uniform(0.12, 0.3)
        gc = render.rgb(rng, 0, 90)
        d.rectangle((gx0, gy0, gx1, gy1), fill=gc)
        bars = rng.randint(2, 8)
        bc = render.rgb(rng, 100, 230)
        for k in range(bars):
            yy = gy0 + (gy1 - gy0) * (k + 0.5) / bars
            d.line((gx0, yy, gx1, yy), fill=bc, width=max(1, int((gy1 - gy0) / bars / 3)))
    # Lights.
    if rng.random() < 0.8:
        lw, lh = bw * rng.uniform(0.08, 0.18), bh * rng.uniform(0.08, 0.2)
        ly = y0 + bh * rng.uniform(0.1, 0.35)
        lc = rng.choice([render.rgb(rng, 200, 255), (220, 30, 30), (250, 160, 30)])
        for lx in (x0 + bw * 0.04, x0 + bw * 0.96 - lw):
            if rng.random() < 0.5:
                d.ellipse((lx, ly, lx + lw, ly + lh), fill=lc)
            else:
                d.rounded_rectangle((lx, ly, lx + lw, ly + lh), radius=max(1, int(lh / 3)), fill=lc)


def backdrop(rng, w, h):
    img = render.background(rng, w, h)
    d = ImageDraw.Draw(img)
    # Sky and road bands.
    if rng.random() < 0.5:
        y = rng.uniform(0.1, 0.5) * h
        d.rectangle((0, 0, w, y), fill=render.rgb(rng, 120, 255))
    if rng.random() < 0.5:
        y = rng.uniform(0.6, 0.95) * h
        d.rectangle((0, y, w, h), fill=render.rgb(rng, 30, 120))
        for _ in range(rng.randint(0, 3)):  # road markings
            x = rng.uniform(0, w)
            d.polygon([(x, y), (x + rng.uniform(5, 30), y), (x + rng.uniform(20, 80), h), (x - rng.uniform(0, 30), h)],
                      fill=render.rgb(rng, 180, 255))
    # Textures: random lines and blocks.
    for _ in range(rng.randint(0, 12)):
        c = render.rgb(rng, 0, 255)
        if rng.random() < 0.5:
            d.line((rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0, h)), fill=c,
                   width=rng.randint(1, 4))
        else:
            x, y = rng.uniform(0, w), rng.uniform(0, h)
            d.rectangle((x, y, x + rng.uniform(3, w / 3), y + rng.uniform(3, h / 4)), fill=c)
    for _ in range(rng.choice([0, 1, 1, 2, 3])):
        car_body(d, rng, w, h)
    return img


def sign(img, rng, w, h, scale):
    """A coloured panel with text (a street sign, a shop sign, a dealer sticker)."""
    d = ImageDraw.Draw(img)
    th = scale * rng.uniform(0.6, 1.6)
    tw = th * rng.uniform(2, 9)
    x0, y0 = rng.uniform(-0.1, 1) * w, rng.uniform(-0.05, 1) * h
    bg = render.rgb(rng, 0, 255)
    m = th * rng.uniform(0.15, 0.6)
    shape = rng.random()
    if shape < 0.6:
        d.rectangle((x0 - m, y0 - m, x0 + tw + m, y0 + th + m), fill=bg)
    else:
        d.rounded_rectangle((x0 - m, y0 - m, x0 + tw + m, y0 + th + m), radius=max(1, int(m)), fill=bg)
    if rng.random() < 0.4:
        d.rectangle((x0 - m, y0 - m, x0 + tw + m, y0 + th + m), outline=contrast(rng, bg),
                    width=max(1, int(th / 10)))
    # Words, seldom numbers: a panel with big digits IS what a plate looks like.
    text_on(img, rng, (x0, y0, x0 + tw, y0 + th), contrast(rng, bg), numbers=rng.random() < 0.2)
    if rng.random() < 0.4:  # a second line
        text_on(img, rng, (x0, y0 + th + m * 0.5, x0 + tw, y0 + th * 1.5 + m * 0.5), contrast(rng, bg))


def loose_text(img, rng, w, h, scale):
    """Text straight on the backdrop (lettering on a car, a wall, a truck)."""
    th = scale * rng.uniform(0.4, 2.0)
    tw = th * rng.uniform(1.5, 12)
    x0, y0 = rng.uniform(-0.1, 1) * w, rng.uniform(0, 1) * h
    arr = np.asarray(img.crop((int(x0), int(y0), int(x0 + 2), int(y0 + 2))))
    bg = tuple(int(v) for v in arr.reshape(-1, 3).mean(0)) if arr.size else (128, 128, 128)
    text_on(img, rng, (x0, y0, x0 + tw, y0 + th), contrast(rng, bg))


def badge(img, rng, w, h, scale):
    """A logo or badge: an ellipse or a shield with a letter or two, or chrome stripes."""
    d = ImageDraw.Draw(img)
    s = scale * rng.uniform(0.8, 2.5)
    x0, y0 = rng.uniform(0, 1) * w, rng.uniform(0, 1) * h
    c = render.rgb(rng, 0, 255)
    if rng.random() < 0.5:
        d.ellipse((x0, y0, x0 + s * rng.uniform(1, 2.2), y0 + s), fill=c, outline=contrast(rng, c), width=max(1, int(s / 12)))
        text_on(img, rng, (x0 + s * 0.2, y0 + s * 0.25, x0 + s * 0.9, y0 + s * 0.75), contrast(rng, c))
    else:
        for k in range(rng.randint(1, 5)):  # stripes
            yy = y0 + k * s * 0.3
            d.rectangle((x0, yy, x0 + s * rng.uniform(3, 12), yy + s * 0.12), fill=render.rgb(rng, 0, 255))


def blank_plate(img, rng, w, h, scale):
    """A plate-shaped panel without a registration (a holder, a blank, a sticker)."""
    d = ImageDraw.Draw(img)
    ph = scale * rng.uniform(0.6, 2.0)
    pw = ph * rng.uniform(2, 4.7)
    x0, y0 = rng.uniform(0, 1) * w, rng.uniform(0, 1) * h
    bg = render.rgb(rng, 150, 255) if rng.random() < 0.7 else render.rgb(rng, 0, 255)
    d.rectangle((x0, y0, x0 + pw, y0 + ph), fill=bg)
    if rng.random() < 0.6:
        d.rectangle((x0, y0, x0 + pw, y0 + ph), outline=contrast(rng, bg), width=max(1, int(ph / 15)))
    if rng.random() < 0.5:  # small text only (a dealer's plate insert)
        text_on(img, rng, (x0 + pw * 0.15, y0 + ph * 0.08, x0 + pw * 0.85, y0 + ph * 0.3), contrast(rng, bg))
    if rng.random() < 0.3:
        text_on(img, rng, (x0 + pw * 0.2, y0 + ph * 0.7, x0 + pw * 0.8, y0 + ph * 0.9), contrast(rng, bg))


def headlight(img, rng, w, h, scale):
    d = ImageDraw.Draw(img)
    s = scale * rng.uniform(0.5, 3)
    x0, y0 = rng.uniform(0, 1) * w, rng.uniform(0, 1) * h
    d.ellipse((x0, y0, x0 + s * rng.uniform(1, 3), y0 + s), fill=render.rgb(rng, 200, 255))


DISTRACTORS = [(sign, 4), (loose_text, 4), (badge, 2), (blank_plate, 2), (headlight, 1)]


def distractor(img, rng, w, h, scale):
    total = sum(k for _, k in DISTRACTORS)
    r = rng.uniform(0, total)
    for fn, k in DISTRACTORS:
        r -= k
        if r <= 0:
            return fn(img, rng, w, h, scale)
    return DISTRACTORS[-1][0](img, rng, w, h, scale)


# ---- plates ----

def make_plate(rng):
    """(plate RGB image at drawing size, character box on it (x0, y0, x1, y1))."""
    while True:
        made = render.plate_of_mix(rng, rng.random())
        if made is None:
            continue
        plate, _text, cbox = made
        W, H = plate.size
        if cbox is None:  # a two-line plate: its characters fill the plate but for a margin
            cbox = (int(0.1 * W), int(0.07 * H), int(0.96 * W), int(0.93 * H))
        return plate, cbox


def plate_height(rng):
    """Whole-plate height in the frame, px: 10..130, mostly 14..60."""
    r = rng.random()
    if r < 0.75:
        return rng.uniform(14, 60)
    if r < 0.85:
        return rng.uniform(10, 14)
    return rng.uniform(60, 130)


def place_plate(rng, w, h, ph, cx, cy):
    """Draws a plate; returns (RGBA layer, its offset (x, y), the character quad in frame px)."""
    plate, cbox = make_plate(rng)
    if rng.random() < 0.5:  # a holder/frame around the plate
        W, H = plate.size
        m = int(H * rng.uniform(0.04, 0.15))
        holder = Image.new("RGB", (W + 2 * m, H + 2 * m), render.rgb(rng, 0, 255) if rng.random() < 0.3 else render.rgb(rng, 0, 60))
        holder.paste(plate, (m, m))
        if rng.random() < 0.4:  # the dealer's name on the holder
            hb = (W * 0.2, H + m * 0.15, W * 0.8 + 2 * m, H + m * 1.85)
            text_on(holder, rng, hb, render.rgb(rng, 150, 255))
        plate = holder
        cbox = (cbox[0] + m, cbox[1] + m, cbox[2] + m, cbox[3] + m)
    W, H = plate.size
    s = ph / H
    # Shrink with antialiasing to about the final size, then warp (no aliasing).
    sw, sh = max(2, int(round(W * s * 1.1))), max(2, int(round(H * s * 1.1)))
    small = plate.resize((sw, sh), Image.LANCZOS)
    fx, fy = sw / W, sh / H
    src = [(0, 0), (sw, 0), (sw, sh), (0, sh)]
    pw, ph2 = W * s, H * s
    base = [(-pw / 2, -ph2 / 2), (pw / 2, -ph2 / 2), (pw / 2, ph2 / 2), (-pw / 2, ph2 / 2)]
    dx, dy = 0.06 * pw, 0.08 * ph2
    ang = math.radians(rng.uniform(-8, 8))
    ca, sa = math.cos(ang), math.sin(ang)
    dst = []
    for x, y in base:
        x, y = x + rng.uniform(-dx, dx), y + rng.uniform(-dy, dy)
        dst.append((cx + x * ca - y * sa, cy + x * sa + y * ca))
    hm = render.homography(src, dst)
    xs, ys = [p[0] for p in dst], [p[1] for p in dst]
    ox, oy = int(math.floor(min(xs))), int(math.floor(min(ys)))
    lw, lh = int(math.ceil(max(xs))) - ox + 1, int(math.ceil(max(ys))) - oy + 1
    # Map from the layer (offset) back to the small plate.
    shift = np.array([[1, 0, ox], [0, 1, oy], [0, 0, 1]], dtype=np.float64)
    inv = np.linalg.inv(hm) @ shift
    inv = inv / inv[2, 2]
    rgba = small.convert("RGBA")
    layer = rgba.transform((lw, lh), Image.PERSPECTIVE, tuple(inv.flatten()[:8]), Image.BILINEAR)
    cb = [(cbox[0] * fx, cbox[1] * fy), (cbox[2] * fx, cbox[1] * fy), (cbox[2] * fx, cbox[3] * fy), (cbox[0] * fx, cbox[3] * fy)]
    quad = render.apply_h(hm, cb)
    return layer, (ox, oy), quad


# ---- degradations ----

def degrade(rng, img, plate_mask):
    """Whole-frame degradations. `plate_mask`: float h x w, 1 on plates (lit at night)."""
    arr = np.asarray(img).astype(np.float32)
    hh, ww = arr.shape[:2]
    if rng.random() < 0.15:  # night: dark scene, the plate lit
        scene = rng.uniform(0.08, 0.35)
        lit = rng.uniform(0.6, 1.1)
        g = scene + (lit - scene) * plate_mask[..., None]
        arr = arr * g
    else:
        arr = (arr - 128) * rng.uniform(0.5, 1.3) + 128 + rng.uniform(-50, 40)
    if rng.random() < 0.3:  # a shadow or a light gradient across
        gx = np.linspace(0, 1, ww, dtype=np.float32)[None, :, None]
        gy = np.linspace(0, 1, hh, dtype=np.float32)[:, None, None]
        arr = arr * (1 + rng.uniform(-0.5, 0.3) * (gx if rng.random() < 0.5 else gy))
    if rng.random() < 0.2:  # glare: a bright blob
        cx, cy = rng.uniform(0, ww), rng.uniform(0, hh)
        r = rng.uniform(0.05, 0.3) * ww
        yy, xx = np.mgrid[0:hh, 0:ww].astype(np.float32)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        arr = arr + rng.uniform(80, 250) * blob[..., None]
    arr = np.clip(arr, 0, 255)
    arr = 255 * (arr / 255) ** rng.uniform(0.6, 1.6)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    r = rng.random()
    if r < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.3)))
    elif r < 0.45:  # motion blur, mostly horizontal
        k = rng.randint(2, 5)
        a = np.asarray(img).astype(np.float32)
        axis = 1 if rng.random() < 0.8 else 0
        a = sum(np.roll(a, s, axis=axis) for s in range(k)) / k
        img = Image.fromarray(a.astype(np.uint8))
    arr = np.asarray(img).astype(np.float32)
    arr = arr + np.random.default_rng(rng.randint(0, 2**31)).normal(0, rng.uniform(0, 10), arr.shape)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if rng.random() < 0.8:
        img = render.jpeg_again(img, rng.randint(30, 90))
    return img


# ---- the frame ----

def frame(rng, w, h):
    """A street-like frame (uint8 h x w x 3 RGB) and its plates' character quads (pixels)."""
    img = backdrop(rng, w, h)
    n = rng.choices([0, 1, 2, 3], weights=[0.12, 0.6, 0.2, 0.08])[0]
    heights = [plate_height(rng) for _ in range(n)]
    # Where the plates go: a plate sometimes partly outside the frame.
    spots = []
    for ph in heights:
        for _ in range(10):
            out = rng.random() < 0.12
            mx = -ph if out else ph * 2.2
            my = -ph * 0.3 if out else ph * 0.8
            cx = rng.uniform(mx, w - mx) if w - 2 * mx > 0 else w / 2
            cy = rng.uniform(my, h - my) if h - 2 * my > 0 else h / 2
            # No overlap with another plate.
            if all(abs(cx - x) > (p + ph) * 2.6 or abs(cy - y) > (p + ph) * 0.7 for x, y, p in spots):
                spots.append((cx, cy, ph))
                break
    d = ImageDraw.Draw(img)
    for cx, cy, ph in spots:
        if rng.random() < 0.7:
            car_body(d, rng, w, h, around=(cx, cy, ph))
    # Distractors, at plate-like sizes (relative to the plates present or a typical plate).
    scale0 = sum(heights) / len(heights) if heights else plate_height(rng)
    for _ in range(rng.choice([0, 1, 2, 3, 4, 5, 6, 8])):
        scale = scale0 * rng.uniform(0.5, 1.5) if rng.random() < 0.6 else plate_height(rng)
        distractor(img, rng, w, h, scale)
    quads = []
    mask = Image.new("L", (w, h), 0)
    for cx, cy, ph in spots:
        layer, off, quad = place_plate(rng, w, h, ph, cx, cy)
        img.paste(layer, off, layer)
        mask.paste(255, off, layer.getchannel("A"))
        quads.append(quad)
        # Sometimes a sticker near the plate (it may cover part of it: the label stays the characters).
        if rng.random() < 0.2:
            sign(img, rng, w, h, ph * rng.uniform(0.2, 0.5))
    plate_mask = np.asarray(mask, dtype=np.float32) / 255.0
    out = degrade(rng, img, plate_mask)
    return np.asarray(out, dtype=np.uint8), quads


# ---- labels ----

def shrink(quad, frac=SHRINK):
    """The quad shrunk toward its centre by `frac` of its height on every side (bilinear in the
    quad's own coordinates: perspective is kept up to second order)."""
    p = [np.asarray(q, dtype=np.float64) for q in quad]
    hgt = (np.linalg.norm(p[3] - p[0]) + np.linalg.norm(p[2] - p[1])) / 2
    wid = (np.linalg.norm(p[1] - p[0]) + np.linalg.norm(p[2] - p[3])) / 2
    a = min(0.45, frac * hgt / max(wid, 1e-6))
    b = frac

    def at(u, v):
        top = p[0] + (p[1] - p[0]) * u
        bot = p[3] + (p[2] - p[3]) * u
        return top + (bot - top) * v

    return [tuple(at(a, b)), tuple(at(1 - a, b)), tuple(at(1 - a, 1 - b)), tuple(at(a, 1 - b))]


def inside(quad, xs, ys):
    """Whether the points (xs, ys) lie inside the convex quad (any orientation)."""
    sides = []
    for i in range(4):
        x0, y0 = quad[i]
        x1, y1 = quad[(i + 1) % 4]
        sides.append((x1 - x0) * (ys - y0) - (y1 - y0) * (xs - x0))
    pos = np.all([s >= 0 for s in sides], axis=0)
    neg = np.all([s <= 0 for s in sides], axis=0)
    return pos | neg


def label_map(quads, w, h, stride=STRIDE):
    """uint8 (h/stride) x (w/stride): 1 where the cell's centre is inside a shrunk quad."""
    mh, mw = h // stride, w // stride
    ys, xs = np.mgrid[0:mh, 0:mw].astype(np.float64)
    xs = xs * stride + stride / 2
    ys = ys * stride + stride / 2
    out = np.zeros((mh, mw), np.uint8)
    for q in quads:
        out |= inside(shrink(q), xs, ys).astype(np.uint8)
    return out


def quad_box(quad):
    xs, ys = [p[0] for p in quad], [p[1] for p in quad]
    return (min(xs), min(ys), max(xs), max(ys))


if __name__ == "__main__":
    # Preview: python frames.py OUT.png  (a grid of frames; label quads in green, shrunk in red,
    # positive label cells tinted)
    import sys

    rng = random.Random("preview")
    tiles = []
    W, H = 384, 256
    for _ in range(12):
        a, quads = frame(rng, W, H)
        lab = label_map(quads, W, H)
        im = Image.fromarray(a)
        tint = np.kron(lab, np.ones((STRIDE, STRIDE), np.uint8))
        arr = np.asarray(im).copy()
        arr[tint > 0] = (0.5 * arr[tint > 0] + [0, 0, 127]).astype(np.uint8)
        im = Image.fromarray(arr)
        d = ImageDraw.Draw(im)
        for q in quads:
            d.polygon(q, outline=(0, 255, 0))
            d.polygon(shrink(q), outline=(255, 0, 0))
        tiles.append(np.asarray(im))
    grid = np.vstack([np.hstack(tiles[i:i + 3]) for i in range(0, 12, 3)])
    Image.fromarray(grid).save(sys.argv[1] if len(sys.argv) > 1 else "frames.png")
