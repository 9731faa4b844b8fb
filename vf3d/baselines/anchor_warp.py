"""The `anchor_warp` baseline: the anchor views warped into every frame by the exact mesh flows.

The same composite is the pseudo ground truth of the paper's visual-fidelity metrics (Sec. 4.2), so this
method shows how far PSNR/SSIM/LPIPS favour plain warping over generation. Frame i takes the anchors that
bracket it (the last at or before i, the first at or after); each pixel comes from the one nearer in time
among those that see it (a tie: the earlier). As a video every pixel needs a value: holes (disocclusions,
background, pixels no anchor sees) take the nearer anchor's warp at its nearest valid pixel (Euclidean
distance transform); a frame no anchor sees at all repeats the nearer anchor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from scipy.ndimage import distance_transform_edt

from vf3d.common.warp import warp_image
from vf3d.preprocess.camera import Intrinsics
from vf3d.preprocess.flows import depth_flow


def bracketing_anchors(frame_index: int, anchor_indices: Iterable[int]) -> list[int]:
    """The anchors frame i is interpolated between: the last at or before it and the first at or after it,
    nearer in time first (a tie: the earlier). In a multi-segment video these are its own segment's v_0, v_N."""
    indices = sorted(set(anchor_indices))
    before = [k for k in indices if k <= frame_index][-1:]
    after = [k for k in indices if k >= frame_index][:1]
    return sorted(set(before + after), key=lambda k: (abs(k - frame_index), k))


def check_geometry(depth: np.ndarray, c2w: np.ndarray, intrinsics: Intrinsics) -> None:
    if depth.ndim != 3:
        raise ValueError(f"depth: expected (F, H, W) planar depth, got shape {depth.shape}")
    if c2w.shape != (depth.shape[0], 4, 4):
        raise ValueError(f"c2w: expected ({depth.shape[0]}, 4, 4) poses, one per depth frame, got {c2w.shape}")
    if (intrinsics.height, intrinsics.width) != depth.shape[1:]:
        raise ValueError(f"intrinsics: for {intrinsics.width}x{intrinsics.height} images but depth is "
                         f"{depth.shape[2]}x{depth.shape[1]}; use intrinsics.scaled_to(width, height)")


def warped_anchors(frame_index: int, anchors: Mapping[int, np.ndarray], depth: np.ndarray, c2w: np.ndarray,
                   intrinsics: Intrinsics) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(anchor frame, warped image (H, W, 3) uint8, valid (H, W) bool) of frame i's bracketing anchors, nearer
    first. Shapes as `composite`."""
    depth, c2w = np.asarray(depth), np.asarray(c2w)
    check_geometry(depth, c2w, intrinsics)
    if not anchors:
        raise ValueError("anchors: need at least one anchor frame, got none")
    if not 0 <= frame_index < depth.shape[0]:
        raise ValueError(f"frame_index: {frame_index} is outside the {depth.shape[0]} frames of depth")
    out = []
    for k in bracketing_anchors(frame_index, anchors):
        anchor = np.asarray(anchors[k])
        if anchor.shape != depth.shape[1:] + (3,) or anchor.dtype != np.uint8:
            raise ValueError(f"anchors[{k}]: expected a uint8 image of shape {depth.shape[1:] + (3,)}, got "
                             f"{anchor.dtype} {anchor.shape}")
        if not 0 <= k < depth.shape[0]:
            raise ValueError(f"anchors: frame {k} is outside the {depth.shape[0]} frames of depth")
        flow, valid = depth_flow(depth, c2w, intrinsics, frame_index, k)
        warped, _ = warp_image(anchor, flow, valid)
        out.append((k, warped, valid))
    return out


def composite(frame_index: int, anchors: Mapping[int, np.ndarray], depth: np.ndarray, c2w: np.ndarray,
              intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Frame i from its bracketing anchors, each pixel from the nearer anchor that sees it.

    Args:
        frame_index: the frame i (index into `depth` and `c2w`).
        anchors: frame index -> (H, W, 3) uint8 anchor view ({0: v_0, N: v_N}, or every segment's anchors).
        depth: (F, H, W) planar depth of every frame (inf = background), as guidance's depth.npy.
        c2w: (F, 4, 4) OpenCV camera-to-world poses, as guidance's meta.json.
        intrinsics: pinhole intrinsics of the (H, W) images.

    Returns:
        image (H, W, 3) uint8 (0 where no anchor sees the pixel) and known (H, W) bool.
    """
    return composite_of(warped_anchors(frame_index, anchors, depth, c2w, intrinsics))


def composite_of(warps: list[tuple[int, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Composite of `warped_anchors`' output (nearer first): image and known mask."""
    image = np.zeros_like(warps[0][1])
    known = np.zeros(image.shape[:2], bool)
    for _, warped, valid in warps:
        take = valid & ~known
        image[take] = warped[take]
        known |= valid
    return image, known


def fill_from_nearest_valid(image: np.ndarray, known: np.ndarray, source: np.ndarray, source_valid: np.ndarray
                            ) -> np.ndarray:
    """`image` with every pixel outside `known` replaced by `source` at its nearest pixel in `source_valid`."""
    if known.all() or not source_valid.any():
        return image
    _, (rows, cols) = distance_transform_edt(~source_valid, return_indices=True)
    filled = image.copy()
    filled[~known] = source[rows[~known], cols[~known]]
    return filled


def anchor_warp_video(anchors: Mapping[int, np.ndarray], depth: np.ndarray, c2w: np.ndarray,
                      intrinsics: Intrinsics) -> list[np.ndarray]:
    """Every frame of the shot by `composite`, holes filled from the nearer anchor (module docstring)."""
    frames = []
    for i in range(np.asarray(depth).shape[0]):
        if i in anchors:
            frames.append(np.asarray(anchors[i]).copy())
            continue
        warps = warped_anchors(i, anchors, depth, c2w, intrinsics)
        image, known = composite_of(warps)
        if not known.any():
            frames.append(np.asarray(anchors[warps[0][0]]).copy())  # no anchor sees this view at all
            continue
        nearer = next((w, v) for _, w, v in warps if v.any())
        frames.append(fill_from_nearest_valid(image, known, *nearer))
    return frames
