"""ToyVIS scene model and renderer (private helper of :mod:`benchmark.data.toyvis`).

A :class:`Scene` is one video: a textured background and a few textured shapes with a fixed depth
order. Its state is advanced one frame at a time (:meth:`Scene.render`), so a video of any length
is rendered with memory that does not grow with the number of frames.

All randomness comes from the generators handed in; nothing here reads global state. Geometry is
float64 numpy and OpenCV's fixed-point polygon filler, so the output is a pure function of the
seed on a given platform and library build.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

__all__ = ["CATEGORIES", "PATTERNS", "ObjectState", "Scene", "make_scene"]

#: (name, supercategory). The category id is the position + 1.
CATEGORIES: tuple[tuple[str, str], ...] = (
    ("disc", "round"),
    ("ring", "round"),
    ("square", "polygon"),
    ("triangle", "polygon"),
    ("star", "polygon"),
    ("cross", "polygon"),
)
PATTERNS = ("stripes", "checker", "dots", "mosaic", "rings")

#: Long videos get one extra visiting object per this many frames (see :func:`make_scene`).
VISITOR_EVERY = 50
#: Objects per video at most (the label map is uint8).
MAX_OBJECTS = 200
_SUB = 4  # cv2.fillPoly fractional bits: vertices at 1/16 pixel
_CIRCLE = 48  # vertices of a circle


def _circle(n: int = _CIRCLE) -> np.ndarray:
    a = np.arange(n) * (2 * math.pi / n)
    return np.stack([np.cos(a), np.sin(a)], axis=1)


def _star(points: int = 5, outer: float = 1.15, inner: float = 0.5) -> np.ndarray:
    a = np.arange(2 * points) * (math.pi / points) - math.pi / 2
    r = np.where(np.arange(2 * points) % 2 == 0, outer, inner)
    return np.stack([r * np.cos(a), r * np.sin(a)], axis=1)


def _cross(arm: float = 1.0, half: float = 0.34) -> np.ndarray:
    a, h = arm, half
    return np.array(
        [
            (-h, -a),
            (h, -a),
            (h, -h),
            (a, -h),
            (a, h),
            (h, h),
            (h, a),
            (-h, a),
            (-h, h),
            (-a, h),
            (-a, -h),
            (-h, -h),
        ],
        dtype=np.float64,
    )


#: Unit outlines (radius about 1) per category: (outer polygon, hole polygon or None).
_OUTLINES: dict[str, tuple[np.ndarray, np.ndarray | None]] = {
    "disc": (_circle(), None),
    "ring": (_circle() * 1.05, _circle() * 0.55),
    "square": (np.array([(-0.85, -0.85), (0.85, -0.85), (0.85, 0.85), (-0.85, 0.85)]), None),
    "triangle": (_circle(3) * 1.15 @ np.array([[0.0, 1.0], [-1.0, 0.0]]), None),
    "star": (_star(), None),
    "cross": (_cross(), None),
}


@dataclass
class ObjectState:
    """One object: appearance, motion parameters and its current position.

    Lengths are in pixels, times in frames, angles in radians.
    """

    index: int
    category: int  # 0-based into CATEGORIES
    depth: int  # larger is nearer the camera (drawn later)
    t_start: int  # first frame the object exists
    t_end: int  # one past the last frame it exists
    pos: np.ndarray  # centre (x, y)
    vel: np.ndarray  # pixels per frame
    acc_amp: np.ndarray  # acceleration amplitude (x, y), pixels per frame^2
    acc_period: float
    acc_phase: float
    bounce: bool  # reflects off the frame border (else it may leave)
    radius: float
    scale_amp: float
    scale_period: float
    scale_phase: float
    theta0: float
    omega: float
    color1: np.ndarray  # float32 RGB
    color2: np.ndarray
    pattern: str
    period: float  # texture period in object pixels (at the base radius)
    pattern_angle: float
    tile: np.ndarray  # 4x4 random values in [0, 1] for the mosaic pattern
    vmax: float
    planted: str = ""  # "crossing" for the same-category crossing pair, "anchor" for the anchor

    def scale(self, t: int) -> float:
        return 1.0 + self.scale_amp * math.sin(2 * math.pi * t / self.scale_period + self.scale_phase)

    def theta(self, t: int) -> float:
        return self.theta0 + self.omega * t

    def step(self, t: int, width: int, height: int) -> None:
        """Advance from frame ``t`` to ``t + 1`` (an object not yet or no longer there stays put)."""
        if not self.t_start <= t < self.t_end - 1:
            return
        a = self.acc_amp * math.sin(2 * math.pi * t / self.acc_period + self.acc_phase)
        self.vel = self.vel + a
        speed = float(np.hypot(*self.vel))
        if speed > self.vmax:
            self.vel = self.vel * (self.vmax / speed)
        self.pos = self.pos + self.vel
        if self.bounce:
            r = self.radius * self.scale(t + 1) * 0.8
            for k, hi in ((0, width), (1, height)):
                lo_lim, hi_lim = r, hi - r
                if lo_lim >= hi_lim:
                    continue
                if self.pos[k] < lo_lim and self.vel[k] < 0:
                    self.pos[k] = 2 * lo_lim - self.pos[k]
                    self.vel[k] = -self.vel[k]
                elif self.pos[k] > hi_lim and self.vel[k] > 0:
                    self.pos[k] = 2 * hi_lim - self.pos[k]
                    self.vel[k] = -self.vel[k]

    def outline(self, t: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Outer polygon and hole (or ``None``) in frame coordinates at frame ``t``."""
        outer, hole = _OUTLINES[CATEGORIES[self.category][0]]
        th = self.theta(t)
        c, s = math.cos(th), math.sin(th)
        rot = np.array([[c, s], [-s, c]]) * (self.radius * self.scale(t))
        return outer @ rot + self.pos, (hole @ rot + self.pos) if hole is not None else None


@dataclass
class Frame:
    """One rendered frame.

    Attributes:
        image: ``[H, W, 3]`` uint8 RGB.
        labels: ``[H, W]`` uint8: 0 background, ``k + 1`` where object ``k`` is visible.
        boxes: Per object, the crop ``(x0, y0, x1, y1)`` of its full (unoccluded) shape inside the
            frame, or ``None`` when it does not exist in this frame or is wholly outside it.
        full_area: Per object, pixels of its full shape inside the frame (0 when not drawn).
        clipped: Per object, whether its shape extends beyond the frame.
    """

    image: np.ndarray
    labels: np.ndarray
    boxes: list[tuple[int, int, int, int] | None]
    full_area: list[int]
    clipped: list[bool]


@dataclass
class Scene:
    """One ToyVIS video: background plus objects, rendered frame by frame."""

    height: int
    width: int
    length: int
    objects: list[ObjectState]
    background: np.ndarray  # [H, W, 3] float32
    noise_rng: np.random.Generator
    noise_sigma: float
    _t: int = field(default=0, init=False)

    def render(self) -> Frame:
        """Render the next frame and advance the objects."""
        t, h, w = self._t, self.height, self.width
        img = self.background.copy()
        labels = np.zeros((h, w), np.uint8)
        n = len(self.objects)
        boxes: list[tuple[int, int, int, int] | None] = [None] * n
        full_area, clipped = [0] * n, [False] * n
        for obj in sorted(self.objects, key=lambda o: o.depth):
            if not obj.t_start <= t < obj.t_end:
                continue
            outer, hole = obj.outline(t)
            lo, hi = outer.min(axis=0), outer.max(axis=0)
            x0, y0 = max(math.floor(lo[0]) - 1, 0), max(math.floor(lo[1]) - 1, 0)
            x1, y1 = min(math.ceil(hi[0]) + 2, w), min(math.ceil(hi[1]) + 2, h)
            if x0 >= x1 or y0 >= y1:
                continue
            m = np.zeros((y1 - y0, x1 - x0), np.uint8)
            off = np.array([x0, y0])
            cv2.fillPoly(m, [np.round((outer - off) * (1 << _SUB)).astype(np.int32)], 1, cv2.LINE_8, _SUB)
            if hole is not None:
                cv2.fillPoly(m, [np.round((hole - off) * (1 << _SUB)).astype(np.int32)], 0, cv2.LINE_8, _SUB)
            mask = m.astype(bool)
            area = int(mask.sum())
            if area == 0:
                continue
            k = obj.index
            boxes[k] = (x0, y0, x1, y1)
            full_area[k] = area
            clipped[k] = bool(lo[0] < 0 or lo[1] < 0 or hi[0] > w - 1 or hi[1] > h - 1)
            tex = _texture(obj, t, x0, y0, x1, y1)
            crop = img[y0:y1, x0:x1]
            crop[mask] = tex[mask]
            labels[y0:y1, x0:x1][mask] = k + 1
        for obj in self.objects:
            obj.step(t, w, h)
        self._t += 1
        noise = self.noise_rng.standard_normal((h, w, 1), dtype=np.float32) * self.noise_sigma
        img += noise
        np.clip(img, 0, 255, out=img)
        return Frame(img.astype(np.uint8), labels, boxes, full_area, clipped)


def _texture(obj: ObjectState, t: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """The object's surface colours over the crop, in object coordinates (moves and turns with it)."""
    xs = np.arange(x0, x1, dtype=np.float32) + 0.5 - np.float32(obj.pos[0])
    ys = np.arange(y0, y1, dtype=np.float32) + 0.5 - np.float32(obj.pos[1])
    dx, dy = xs[None, :], ys[:, None]
    th = obj.theta(t)
    s = np.float32(1.0 / obj.scale(t))
    c, si = np.float32(math.cos(th)), np.float32(math.sin(th))
    u = (c * dx + si * dy) * s
    v = (-si * dx + c * dy) * s
    p = obj.period
    if obj.pattern == "stripes":
        ca, sa = np.float32(math.cos(obj.pattern_angle)), np.float32(math.sin(obj.pattern_angle))
        val = (np.floor((u * ca + v * sa) / p) % 2).astype(np.float32)
    elif obj.pattern == "checker":
        val = ((np.floor(u / p) + np.floor(v / p)) % 2).astype(np.float32)
    elif obj.pattern == "dots":
        fu, fv = (u / p) % 1.0 - 0.5, (v / p) % 1.0 - 0.5
        val = ((fu * fu + fv * fv) < 0.09).astype(np.float32)
    elif obj.pattern == "mosaic":
        iu = (np.floor(u / p) % 4).astype(np.intp)
        iv = (np.floor(v / p) % 4).astype(np.intp)
        val = obj.tile[iv, iu].astype(np.float32)
    else:  # rings
        val = (np.floor(np.sqrt(u * u + v * v) / p) % 2).astype(np.float32)
    # A soft light from the top-left gives the surface some shading.
    shade = 1.0 - np.float32(0.18 / max(obj.radius, 1.0)) * (u + v) * np.float32(0.5)
    col = obj.color1 + val[..., None] * (obj.color2 - obj.color1)
    return np.clip(col * shade[..., None], 0, 255).astype(np.float32)


# ---- scene sampling ---------------------------------------------------------------------------
def _color(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    h = rng.random()
    c1 = colorsys.hsv_to_rgb(h, rng.uniform(0.55, 1.0), rng.uniform(0.6, 1.0))
    h2 = (h + rng.uniform(0.25, 0.75)) % 1.0
    c2 = colorsys.hsv_to_rgb(h2, rng.uniform(0.3, 1.0), rng.uniform(0.15, 0.55))
    return np.array(c1, np.float32) * 255, np.array(c2, np.float32) * 255


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Low-frequency colour clouds plus a faint fine texture (never a flat field)."""
    gh, gw = int(rng.integers(3, 7)), int(rng.integers(4, 9))
    lum = rng.uniform(50, 190, (gh, gw, 1))
    tint = rng.uniform(-30, 30, (1, 1, 3)) + rng.uniform(-12, 12, (gh, gw, 3))
    base = (lum + tint).astype(np.float32)
    clouds = cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC)
    tile = cv2.GaussianBlur(rng.uniform(-1.0, 1.0, (16, 16)).astype(np.float32), (3, 3), 0)
    reps = (h // 16 + 1, w // 16 + 1)
    fine = np.tile(tile, reps)[:h, :w] * np.float32(rng.uniform(10, 22))
    # Faint diagonal lines so the background has edges a detector must learn to ignore.
    period = float(rng.uniform(9, 24))
    ang = float(rng.uniform(0, math.pi))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    lines = (((xx * math.cos(ang) + yy * math.sin(ang)) / period) % 1.0 < 0.12).astype(np.float32)
    out = clouds + (fine + lines * np.float32(rng.uniform(-25, 25)))[..., None]
    return np.clip(out, 0, 255).astype(np.float32)


def _object(rng: np.random.Generator, index: int, category: int, h: int, w: int, length: int) -> ObjectState:
    m = min(h, w)
    radius = float(rng.uniform(0.09, 0.19) * m)
    speed = float(rng.uniform(0.01, 0.045) * m)
    angle = float(rng.uniform(0, 2 * math.pi))
    vel = np.array([math.cos(angle), math.sin(angle)]) * speed
    pos = np.array([rng.uniform(0.12, 0.88) * w, rng.uniform(0.12, 0.88) * h])
    c1, c2 = _color(rng)
    return ObjectState(
        index=index,
        category=category,
        depth=0,
        t_start=0,
        t_end=length,
        pos=pos,
        vel=vel,
        acc_amp=rng.uniform(-0.004, 0.004, 2) * m,
        acc_period=float(rng.uniform(10, 40)),
        acc_phase=float(rng.uniform(0, 2 * math.pi)),
        bounce=bool(rng.random() < 0.5),
        radius=radius,
        scale_amp=float(rng.uniform(0.05, 0.3)),
        scale_period=float(rng.uniform(12, 48)),
        scale_phase=float(rng.uniform(0, 2 * math.pi)),
        theta0=float(rng.uniform(0, 2 * math.pi)),
        omega=float(rng.uniform(-0.09, 0.09)),
        color1=c1,
        color2=c2,
        pattern=PATTERNS[int(rng.integers(len(PATTERNS)))],
        period=float(rng.uniform(0.22, 0.45) * radius),
        pattern_angle=float(rng.uniform(0, math.pi)),
        tile=rng.random((4, 4)),
        vmax=0.08 * m,
    )


def make_scene(
    rng: np.random.Generator, noise_rng: np.random.Generator, height: int, width: int, length: int
) -> Scene:
    """Sample one video's scene.

    Per video: 2-5 objects of random categories with a random depth order; the nearest one (the
    *anchor*) stays in view all along so every video has at least one track. With probability 0.6
    two objects share a category and cross each other mid-video (their appearance differs, so a
    tracker can keep them apart, and one that swaps them loses AP). Others may start outside the
    frame and enter, head out and leave, bounce off the border, or exist only for part of the video.
    """
    h, w, m = height, width, min(height, width)
    n = int(rng.integers(2, 6))
    cats = [int(c) for c in rng.integers(len(CATEGORIES), size=n)]
    objs = [_object(rng, i, cats[i], h, w, length) for i in range(n)]
    for d, i in enumerate(rng.permutation(n)):
        objs[int(i)].depth = d
    anchor = max(objs, key=lambda o: o.depth)
    anchor.planted, anchor.bounce = "anchor", True

    if n >= 3 and rng.random() < 0.6:
        # Two non-anchor objects of one category whose straight paths cross at (pc, tc).
        others = [o for o in objs if o is not anchor]
        ia, ib = (int(i) for i in rng.choice(len(others), size=2, replace=False))
        a, b = others[ia], others[ib]
        b.category = a.category
        tc = rng.uniform(0.35, 0.65) * max(length - 1, 1)
        pc = np.array([rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h])
        ang = rng.uniform(0, 2 * math.pi)
        speed = float(np.clip(rng.uniform(0.5, 0.9) * w / max(length, 1), 0.012 * m, 0.07 * m))
        direction = np.array([math.cos(ang), math.sin(ang)])
        perp = np.array([-direction[1], direction[0]]) * rng.uniform(-0.4, 0.4) * speed
        for o, sign in ((a, 1.0), (b, -1.0)):
            o.vel = sign * direction * speed + perp
            o.pos = pc - o.vel * tc
            o.acc_amp = np.zeros(2)
            o.bounce, o.planted = False, "crossing"
    for o in objs:
        if o.planted:
            continue
        r = rng.random()
        if r < 0.3:  # enters from outside
            side = int(rng.integers(4))
            margin = o.radius * rng.uniform(1.2, 2.0)
            speed = float(np.hypot(*o.vel))
            if side == 0:
                o.pos = np.array([-margin, rng.uniform(0.2, 0.8) * h])
            elif side == 1:
                o.pos = np.array([w + margin, rng.uniform(0.2, 0.8) * h])
            elif side == 2:
                o.pos = np.array([rng.uniform(0.2, 0.8) * w, -margin])
            else:
                o.pos = np.array([rng.uniform(0.2, 0.8) * w, h + margin])
            target = np.array([rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h])
            heading = (target - o.pos) / max(float(np.hypot(*(target - o.pos))), 1e-6)
            o.vel = heading * max(speed, 0.03 * m)
            o.bounce = False
        elif r < 0.55:  # heads out of the frame, leaving it about when ``te`` says
            o.bounce = False
            te = rng.uniform(0.4, 0.9) * max(length - 1, 1)
            side = int(rng.integers(4))
            margin = o.radius * 1.5
            along = rng.uniform(0.2, 0.8)
            exit_pt = (
                np.array([-margin, along * h]),
                np.array([w + margin, along * h]),
                np.array([along * w, -margin]),
                np.array([along * w, h + margin]),
            )[side]
            o.pos = np.array([rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h])
            dist = float(np.hypot(*(exit_pt - o.pos)))
            speed = float(np.clip(dist / te, 0.012 * m, o.vmax))
            o.vel = (exit_pt - o.pos) / dist * speed
            o.acc_amp = o.acc_amp * 0.3
        if length >= 6 and rng.random() < 0.25:
            o.t_start = int(rng.integers(1, max(2, length // 3)))
        if length >= 6 and rng.random() < 0.25:
            o.t_end = int(rng.integers(max(o.t_start + 2, 2 * length // 3), length))
    background = _background(rng, h, w)
    sigma = float(rng.uniform(2.0, 5.0))
    # Long videos get visitors: one more object per VISITOR_EVERY frames, each entering from outside
    # at a random time and leaving again, so the scene does not empty out after the first minute.
    # (Drawn last, so videos shorter than VISITOR_EVERY are unaffected.)
    for _ in range(min(length // VISITOR_EVERY, MAX_OBJECTS - n)):
        o = _object(rng, len(objs), int(rng.integers(len(CATEGORIES))), h, w, length)
        o.depth = int(rng.integers(0, anchor.depth + 1))
        o.t_start = int(rng.integers(0, length))
        o.bounce = False
        side = int(rng.integers(4))
        margin = o.radius * 1.3
        along = rng.uniform(0.15, 0.85)
        o.pos = (
            np.array([-margin, along * h]),
            np.array([w + margin, along * h]),
            np.array([along * w, -margin]),
            np.array([along * w, h + margin]),
        )[side]
        target = np.array([rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h])
        heading = (target - o.pos) / max(float(np.hypot(*(target - o.pos))), 1e-6)
        o.vel = heading * max(float(np.hypot(*o.vel)), 0.02 * m)
        o.acc_amp = o.acc_amp * 0.3
        objs.append(o)
    return Scene(h, w, length, objs, background, noise_rng, sigma)
