"""RGB-D scenes: seeded, labelled by the nearest object, two views of one scene, colour only in RGB."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from kdcore.config import DataConfig
from kdcore.data.rgbd_scenes import (
    COLOURS,
    DEPTH_NOISE,
    FAR_PLANE,
    QUADRANTS,
    SHAPES,
    SIDE,
    TASKS,
    Scenes,
    generate,
    render_scenes,
)
from kdcore.data.splits import load_dataset
from kdcore.registry import DATASETS

TOL = 5 * DEPTH_NOISE  # a depth pixel lies within five noise std of its surface


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KDX_CACHE_DIR", str(tmp_path))


@pytest.fixture(scope="module")
def scenes() -> Scenes:
    return render_scenes(600, seed=1)


def nearest_slot(scenes: Scenes, i: int) -> int:
    """The slot of scene i's nearest object, checked to be unique."""
    slots = [k for k in range(int(scenes.count[i])) if scenes.valid[i, k]]
    nearest = min(slots, key=lambda k: scenes.distance[i, k])
    assert all(scenes.distance[i, k] > scenes.distance[i, nearest] for k in slots if k != nearest)
    return nearest


def quantiles(view: np.ndarray) -> np.ndarray:
    """Per-channel intensity quantiles (N, 11 * C): what colours and depths a view holds, not where."""
    return np.quantile(view, np.linspace(0, 1, 11), axis=(2, 3)).transpose(1, 0, 2).reshape(len(view), -1)


def silhouette(depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """From the depth map alone: the nearest surface's (fill of its box, share above its centroid, area), centroid."""
    d = depth[:, 0]  # (N, 32, 32)
    mask = d <= d.min(axis=(1, 2), keepdims=True) + 6 * DEPTH_NOISE
    ys, xs = np.mgrid[0:SIDE, 0:SIDE] + 0.5
    area = mask.sum((1, 2))
    cx, cy = (mask * xs).sum((1, 2)) / area, (mask * ys).sum((1, 2)) / area
    fill = area / (mask.any(2).sum(1) * mask.any(1).sum(1))
    above = (mask & (ys < cy[:, None, None])).sum((1, 2)) / area
    return np.stack([fill, above, area / 100], 1), np.stack([cx, cy], 1)


def test_same_seed_same_scenes_and_another_seed_other_scenes() -> None:
    a, b, c = render_scenes(50, seed=3), render_scenes(50, seed=3), render_scenes(50, seed=4)
    for name in ("rgb", "depth", "count", "valid", "shape", "colour", "distance", "cx", "cy", "size"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert all(np.array_equal(a.labels[task], b.labels[task]) for task in TASKS)
    assert not np.array_equal(a.rgb, c.rgb) and not np.array_equal(a.depth, c.depth)
    assert a.rgb.shape == (50, 3, SIDE, SIDE) and a.depth.shape == (50, 1, SIDE, SIDE)
    assert a.rgb.dtype == a.depth.dtype == np.float32
    assert a.rgb.min() >= 0 and a.rgb.max() <= 1 and a.depth.min() >= 0 and a.depth.max() <= 1


def test_labels_are_the_nearest_objects_attributes(scenes: Scenes) -> None:
    assert set(scenes.count.tolist()) == {1, 2, 3}
    assert np.array_equal(scenes.valid, np.arange(3) < scenes.count[:, None])
    assert (scenes.distance[scenes.valid] >= 1).all() and (scenes.distance[scenes.valid] <= 4).all()
    assert ((scenes.cx >= 0) & (scenes.cx < SIDE) & (scenes.cy >= 0) & (scenes.cy < SIDE)).all()
    for i in range(len(scenes.count)):
        k = nearest_slot(scenes, i)
        quadrant = {(False, False): 0, (False, True): 1, (True, False): 2, (True, True): 3}[
            (bool(scenes.cy[i, k] >= SIDE / 2), bool(scenes.cx[i, k] >= SIDE / 2))]
        assert scenes.labels["shape"][i] == scenes.shape[i, k]
        assert scenes.labels["colour"][i] == scenes.colour[i, k]
        assert scenes.labels["nearest"][i] == quadrant
    for task, classes in zip(TASKS, (3, 4, 3), strict=True):
        assert scenes.labels[task].dtype == np.int64
        share = np.bincount(scenes.labels[task], minlength=classes) / len(scenes.count)
        assert share.min() > 0.7 / classes and share.max() < 1.3 / classes, (task, share)


def test_rgb_and_depth_show_the_same_scene_with_occlusion(scenes: Scenes) -> None:
    background_depth = scenes.depth[:, 0] > 0.9  # objects sit at most at 4 / 5 = 0.8
    background_rgb = scenes.rgb.max(axis=1) < 0.27  # grey 0.1; a colour's main channel is at least 0.45
    assert np.array_equal(background_depth, background_rgb)
    assert 0.05 < background_depth.mean() < 0.95
    occluders = 0
    for i in range(len(scenes.count)):
        k = nearest_slot(scenes, i)
        row, col = int(scenes.cy[i, k]), int(scenes.cx[i, k])  # the pixel holding the centre
        near = scenes.distance[i, k] / FAR_PLANE
        assert abs(scenes.depth[i, 0, row, col] - near) < TOL
        assert scenes.depth[i].min() > near - TOL  # nothing in the map is nearer than the nearest object
        assert scenes.rgb[i, :, row, col].argmax() == scenes.colour[i, k]
        # A farther circle or square of another colour covering that pixel: without a z-buffer it would show.
        occluders += any(scenes.shape[i, j] in (0, 1) and scenes.colour[i, j] != scenes.colour[i, k]
                         and np.hypot(scenes.cx[i, j] - col - 0.5, scenes.cy[i, j] - row - 0.5) < scenes.size[i, j]
                         for j in range(int(scenes.count[i])) if j != k)
    assert occluders >= 10


def test_depth_carries_no_colour_but_shape_and_position() -> None:
    train, test = render_scenes(600, seed=1), render_scenes(400, seed=2)

    def accuracy(model, features, task: str) -> float:
        return model.fit(features(train), train.labels[task]).score(features(test), test.labels[task])

    rgb = accuracy(LogisticRegression(max_iter=2000), lambda s: quantiles(s.rgb), "colour")
    depth = accuracy(LogisticRegression(max_iter=2000), lambda s: quantiles(s.depth), "colour")
    depth_shape = accuracy(KNeighborsClassifier(5), lambda s: silhouette(s.depth)[0], "shape")
    depth_quadrant = accuracy(KNeighborsClassifier(5), lambda s: silhouette(s.depth)[1], "nearest")
    depth_any = accuracy(LogisticRegression(max_iter=2000), lambda s: np.hstack(silhouette(s.depth)), "colour")
    assert rgb > 0.8 and depth < 0.45 and depth_any < 0.45, (rgb, depth, depth_any)
    assert depth_shape > 0.6 and depth_quadrant > 0.6, (depth_shape, depth_quadrant)


def test_generate_stacks_the_views_and_caches_them(tmp_path) -> None:
    x, labels = generate(120, seed=5)
    scenes = render_scenes(120, seed=5)
    assert x.shape == (120, 4, SIDE, SIDE) and x.dtype == np.float32
    assert np.array_equal(x[:, 0:3], scenes.rgb) and np.array_equal(x[:, 3:4], scenes.depth)
    assert len(list((tmp_path / "rgbd_scenes").glob("*.npz"))) == 1
    again, labels_again = generate(120, seed=5)  # from the cache
    assert np.array_equal(again, x) and all(np.array_equal(labels_again[t], labels[t]) for t in TASKS)


@pytest.mark.parametrize(("name", "task", "classes", "solvable"), [
    ("rgbd_scenes", "shape", 3, True), ("rgbd_scenes_nearest", "nearest", 4, True),
    ("rgbd_scenes_colour", "colour", 3, False),
])
def test_registered_datasets_load_as_stacked_views(name: str, task: str, classes: int, solvable: bool) -> None:
    meta = DATASETS.entry(name).meta
    assert meta == {"input_shape": (4, 32, 32), "num_classes": classes, "generated": True, "modality": "rgbd",
                    "views": {"rgb": (0, 3), "depth": (3, 4)}, "task": task, "depth_solvable": solvable,
                    "classes": {"shape": SHAPES, "nearest": QUADRANTS, "colour": COLOURS}[task]}
    assert len(meta["classes"]) == classes
    splits = load_dataset(DataConfig(name=name, n_samples=600))
    assert splits.name == name and splits.num_classes == classes and splits.input_shape == (4, 32, 32)
    assert sum(len(s) for s in (splits.train, splits.val, splits.test)) == 600
    for split in (splits.train, splits.val, splits.test, splits.test_shifted):
        assert split.x.shape[1:] == (4, 32, 32) and split.x.dtype == torch.float32
        assert set(split.y.unique().tolist()) == set(range(classes))
    assert len(splits.test_shifted) == len(splits.test)
    assert not torch.equal(splits.test_shifted.x, splits.test.x) and "larger" in splits.shift
    objects = (splits.test.x[:, 3] < 0.9).float().mean(), (splits.test_shifted.x[:, 3] < 0.9).float().mean()
    assert objects[1] > objects[0]  # larger objects cover more pixels
