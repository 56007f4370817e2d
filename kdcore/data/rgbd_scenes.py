"""RGB-D scenes: 1 to 3 coloured shapes at different depths, rendered as an RGB image and as a depth map.

A generated paired-modality set for cross-modal distillation (an RGB teacher and a depth student, or
the reverse). Each scene is a small object table rendered twice through one z-buffer, so both views
show the same silhouettes and the same occlusions. Colour is drawn independently of shape, size,
position and depth, and the depth map never sees it: the ``colour`` task cannot be solved from depth,
while ``shape`` and ``nearest`` can be solved from either view (in RGB, nearer objects are
brighter). Inputs stack the two views on the channel axis (channels 0-2 RGB, channel 3 depth) and
are cached on disk, keyed by the generation arguments.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdcore.data.splits import DatasetSplits, cache_dir, stratified_splits, to_split
from kdcore.registry import register_dataset

SIDE = 32  # pixels per image side
MAX_OBJECTS = 3
SHAPES = ("circle", "square", "triangle")
COLOURS = ("red", "green", "blue")
QUADRANTS = ("top-left", "top-right", "bottom-left", "bottom-right")
TASKS = ("shape", "nearest", "colour")
PALETTE = np.array([[0.9, 0.1, 0.1], [0.1, 0.9, 0.1], [0.1, 0.1, 0.9]], dtype=np.float32)  # (colour, RGB)
BACKGROUND = 0.1  # grey level of the RGB background
DISTANCES = (1.0, 4.0)  # object distance from the camera, uniform
FAR_PLANE = 5.0  # depth of the background; the depth map is distance / FAR_PLANE
# A light at the camera: brightness falls linearly from 1 at the nearest distance to 0.5 at the farthest,
# so RGB alone also tells which object is nearest.
FALLOFF = 0.5 / (DISTANCES[1] - DISTANCES[0])
RGB_NOISE = 0.03  # std of the Gaussian pixel noise on RGB
DEPTH_NOISE = 0.01  # std of the Gaussian pixel noise on the normalised depth map
# Sizes are apparent sizes in pixels (radius, half side), drawn independently of the distance.
SIZE_RANGE = (4.0, 8.0)
LIGHTING = 1.0  # factor on every object colour, on top of the falloff
SHIFT_SIZE_RANGE = (8.0, 11.0)
SHIFT_LIGHTING = 0.6
SHIFT = (f"new scenes with larger objects (size {SHIFT_SIZE_RANGE[0]:g}-{SHIFT_SIZE_RANGE[1]:g} px instead of "
         f"{SIZE_RANGE[0]:g}-{SIZE_RANGE[1]:g}) under dimmer lighting ({SHIFT_LIGHTING} instead of {LIGHTING})")
DEFAULT_SAMPLES = 6_000
CHUNK = 512  # scenes rendered at once, to bound the (chunk, 3, 32, 32) temporaries
VIEWS = {"rgb": (0, 3), "depth": (3, 4)}


@dataclass(frozen=True)
class Scenes:
    """Both renderings of N scenes, their labels, and the object table they come from.

    Slot k of scene i holds an object when ``valid[i, k]`` (k < count[i]); empty slots are at infinite
    distance, so they are never drawn and never nearest.
    """

    rgb: np.ndarray  # (N, 3, 32, 32) float32 in [0, 1]
    depth: np.ndarray  # (N, 1, 32, 32) float32 in [0, 1], distance / FAR_PLANE, background 1
    labels: dict[str, np.ndarray]  # task -> (N,) int64, from the nearest object
    count: np.ndarray  # (N,) int64, objects in the scene, 1 to 3
    valid: np.ndarray  # (N, 3) bool
    shape: np.ndarray  # (N, 3) int64, index into SHAPES
    colour: np.ndarray  # (N, 3) int64, index into COLOURS
    distance: np.ndarray  # (N, 3) float64, in DISTANCES; inf for empty slots
    cx: np.ndarray  # (N, 3) float64, centre column in [0, 32)
    cy: np.ndarray  # (N, 3) float64, centre row in [0, 32)
    size: np.ndarray  # (N, 3) float64, radius or half side in pixels


def render_scenes(n: int, seed: int, *, size_range: tuple[float, float] = SIZE_RANGE,
                  lighting: float = LIGHTING) -> Scenes:
    """Draw ``n`` scenes with a seeded generator and render them as RGB and depth through one z-buffer.

    RGB is the object colour times ``lighting`` times a linear falloff with distance, depth is the
    visible surface's distance / FAR_PLANE; both get Gaussian pixel noise. Every attribute is drawn
    independently and uniformly, so the nearest object's shape, colour and quadrant are balanced.
    Centres lie inside the frame, so the nearest object is always visible; distances are continuous,
    so the nearest one is unique.
    """
    rng = np.random.default_rng(seed)
    count = rng.integers(1, MAX_OBJECTS + 1, n)
    valid = np.arange(MAX_OBJECTS) < count[:, None]  # (N, 3)
    shape = rng.integers(0, len(SHAPES), (n, MAX_OBJECTS))
    colour = rng.integers(0, len(COLOURS), (n, MAX_OBJECTS))
    distance = np.where(valid, rng.uniform(*DISTANCES, (n, MAX_OBJECTS)), np.inf)
    size = rng.uniform(*size_range, (n, MAX_OBJECTS))
    cx, cy = rng.uniform(0, SIDE, (2, n, MAX_OBJECTS))
    rgb = np.empty((n, 3, SIDE, SIDE), dtype=np.float32)
    depth = np.empty((n, 1, SIDE, SIDE), dtype=np.float32)
    for start in range(0, n, CHUNK):
        part = slice(start, start + CHUNK)
        rgb[part], depth[part] = _render(shape[part], colour[part], distance[part], size[part], cx[part], cy[part],
                                         lighting)
    rgb = np.clip(rgb + RGB_NOISE * rng.standard_normal(rgb.shape, dtype=np.float32), 0, 1)
    depth = np.clip(depth + DEPTH_NOISE * rng.standard_normal(depth.shape, dtype=np.float32), 0, 1)
    rows, nearest = np.arange(n), distance.argmin(axis=1)  # (N,) slot of the nearest object
    quadrant = 2 * (cy[rows, nearest] >= SIDE / 2) + (cx[rows, nearest] >= SIDE / 2)
    labels = {"shape": shape[rows, nearest], "nearest": quadrant.astype(np.int64), "colour": colour[rows, nearest]}
    return Scenes(rgb, depth, labels, count, valid, shape, colour, distance, cx, cy, size)


def _render(shape: np.ndarray, colour: np.ndarray, distance: np.ndarray, size: np.ndarray, cx: np.ndarray,
            cy: np.ndarray, lighting: float) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free RGB (n, 3, 32, 32) and normalised depth (n, 1, 32, 32) of n scenes' (n, 3) object tables."""
    centres = np.arange(SIDE, dtype=np.float32) + 0.5  # pixel centres
    dx = centres[None, None, None, :] - cx[..., None, None].astype(np.float32)  # (n, 3, 1, 32)
    dy = centres[None, None, :, None] - cy[..., None, None].astype(np.float32)  # (n, 3, 32, 1)
    s = size[..., None, None].astype(np.float32)
    circle = dx**2 + dy**2 <= s**2  # (n, 3, 32, 32)
    square = (np.abs(dx) <= s) & (np.abs(dy) <= s)
    triangle = (dy <= s) & (2 * np.abs(dx) <= dy + s)  # apex up at (cx, cy - s), base at cy + s
    inside = np.where((shape == 0)[..., None, None], circle,
                      np.where((shape == 1)[..., None, None], square, triangle))
    z = np.where(inside, distance[..., None, None].astype(np.float32), np.inf)  # (n, 3, 32, 32) z-buffer candidates
    front = z.argmin(axis=1)[:, None]  # (n, 1, 32, 32) slot visible at each pixel
    visible = np.take_along_axis(z, front, axis=1)  # (n, 1, 32, 32) distance of the visible surface
    background = np.isinf(visible)
    surface = np.where(background, FAR_PLANE, visible)  # (n, 1, 32, 32)
    seen = np.take_along_axis(colour[..., None, None], front, axis=1)[:, 0]  # (n, 32, 32) colour index
    shade = lighting * (1 - FALLOFF * (surface - DISTANCES[0]))  # (n, 1, 32, 32)
    rgb = np.where(background, BACKGROUND, shade * PALETTE[seen].transpose(0, 3, 1, 2))  # (n, 3, 32, 32)
    return rgb.astype(np.float32), (surface / FAR_PLANE).astype(np.float32)


def generate(n: int, seed: int, *, size_range: tuple[float, float] = SIZE_RANGE,
             lighting: float = LIGHTING) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """RGB and depth stacked as x (N, 4, 32, 32) and the labels of every task, read from / written to the disk cache."""
    args = {"n": n, "seed": seed, "size_range": list(size_range), "lighting": lighting,
            "palette": PALETTE.tolist(), "background": BACKGROUND, "distances": DISTANCES, "far_plane": FAR_PLANE,
            "falloff": FALLOFF, "noise": [RGB_NOISE, DEPTH_NOISE]}
    key = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / "rgbd_scenes" / f"{key}.npz"
    if path.is_file():
        with np.load(path) as cached:
            return cached["x"], {task: cached[task] for task in TASKS}
    scenes = render_scenes(n, seed, size_range=size_range, lighting=lighting)
    x = np.concatenate([scenes.rgb, scenes.depth], axis=1)  # (N, 4, 32, 32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, x=x, **scenes.labels)
    Path(tmp).replace(path)  # atomic: a crash never leaves half a cache file
    return x, scenes.labels


def load_scenes(name: str, task: str, num_classes: int, cfg) -> DatasetSplits:
    """Split the scenes by one task's labels; the shifted test split is as many new, larger and dimmer scenes."""
    x, labels = generate(cfg.n_samples or DEFAULT_SAMPLES, seed=42)
    train, val, test = stratified_splits(x, labels[task], cfg.val_fraction, cfg.test_fraction, cfg.split_seed)
    xs, ys = generate(len(test), seed=4242, size_range=SHIFT_SIZE_RANGE, lighting=SHIFT_LIGHTING)
    return DatasetSplits(name, train, val, test, to_split(xs, ys[task]),
                         num_classes=num_classes, input_shape=(4, SIDE, SIDE), shift=SHIFT)


@register_dataset("rgbd_scenes", input_shape=(4, 32, 32), num_classes=3, generated=True, modality="rgbd",
                  classes=SHAPES, views=VIEWS, task="shape", depth_solvable=True)
def rgbd_scenes(cfg) -> DatasetSplits:
    """RGB-D scenes, task shape: the nearest object's shape (3 classes), solvable from depth alone."""
    return load_scenes("rgbd_scenes", "shape", 3, cfg)


@register_dataset("rgbd_scenes_nearest", input_shape=(4, 32, 32), num_classes=4, generated=True, modality="rgbd",
                  classes=QUADRANTS, views=VIEWS, task="nearest", depth_solvable=True)
def rgbd_scenes_nearest(cfg) -> DatasetSplits:
    """RGB-D scenes, task nearest: the image quadrant of the nearest object (4 classes), solvable from depth."""
    return load_scenes("rgbd_scenes_nearest", "nearest", 4, cfg)


@register_dataset("rgbd_scenes_colour", input_shape=(4, 32, 32), num_classes=3, generated=True, modality="rgbd",
                  classes=COLOURS, views=VIEWS, task="colour", depth_solvable=False)
def rgbd_scenes_colour(cfg) -> DatasetSplits:
    """RGB-D scenes, task colour: the nearest object's colour (3 classes), not solvable from depth alone."""
    return load_scenes("rgbd_scenes_colour", "colour", 3, cfg)
