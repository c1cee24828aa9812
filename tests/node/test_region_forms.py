"""The three region forms (full-frame masks, masks cropped to their bbox, an instance-label
image + RegionArray) become the same engine Frame, and so the same answers; each form's bad
input gets a sentence naming the problem before anything is allocated."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from smolrgpt_core.inference.engine import EngineError, Query, SpatialQueryEngine
from smolrgpt_core.settings import FrameLimits
from smolrgpt_ros.conversions import StoredFrame, frame_from_msgs
from smolrgpt_ros.image_conversion import numpy_to_imgmsg
from smolrgpt_ros.region_forms import MASK_FORMS, encode_regions

H, W = 60, 80
TYPES = SimpleNamespace(
    RegionMask=SimpleNamespace,
    RegionMaskArray=SimpleNamespace,
    Region=SimpleNamespace,
    RegionArray=SimpleNamespace,
    RegionOfInterest=SimpleNamespace,
)


@dataclass
class FakeImage:
    height: int = 0
    width: int = 0
    encoding: str = ''
    is_bigendian: int = 0
    step: int = 0
    data: bytes = b''
    header: object = field(default=None)


def _header() -> SimpleNamespace:
    return SimpleNamespace(stamp=SimpleNamespace(sec=7, nanosec=5), frame_id='camera')


def _image(array: np.ndarray, encoding: str) -> FakeImage:
    msg = numpy_to_imgmsg(array, encoding, msg_type=FakeImage)
    msg.header = _header()
    return msg


def _masks() -> tuple[np.ndarray, list[int]]:
    """Three disjoint regions: a box, a disc (not its bbox) and an L shape."""
    masks = np.zeros((3, H, W), bool)
    masks[0, 5:20, 4:30] = True
    yy, xx = np.mgrid[:H, :W]
    masks[1] = (yy - 40) ** 2 + (xx - 20) ** 2 < 64
    masks[2, 30:55, 50:56] = True
    masks[2, 49:55, 56:75] = True
    return masks, [3, 7, 12]


def _msgs(form: str, masks: np.ndarray, ids: list[int]) -> tuple:
    rng = np.random.default_rng(0)
    rgb = _image(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), 'rgb8')
    depth = _image(rng.integers(500, 9000, (H, W), dtype=np.uint16), '16UC1')
    regions = encode_regions(
        form, masks, ids, ['pallet'] * len(ids), types=TYPES, image=_image, header=_header()
    )
    if form == 'instances':
        labels, region_array = regions
        return rgb, depth, region_array, labels
    return rgb, depth, regions[0], None


def _frame(form: str, masks: np.ndarray, ids: list[int], limits: FrameLimits | None = None):
    rgb, depth, regions, labels = _msgs(form, masks, ids)
    return frame_from_msgs(rgb, depth, regions, limits, instances_msg=labels)


def test_every_form_gives_the_same_frame() -> None:
    masks, ids = _masks()
    frames = {form: _frame(form, masks, ids) for form in MASK_FORMS}
    for form, frame in frames.items():
        assert frame.masks.dtype == np.uint8 and frame.masks.shape == (3, H, W), form
        assert np.array_equal(frame.masks != 0, masks), form
        assert np.array_equal(frame.masks, frames['full'].masks), form
        assert list(frame.region_ids) == ids and frame.stamp_ns == 7_000_000_005
        assert np.array_equal(frame.rgb, frames['full'].rgb)


def test_the_forms_get_the_same_answers(tiny_checkpoint: Path) -> None:
    masks, ids = _masks()
    engine = SpatialQueryEngine.from_checkpoint(tiny_checkpoint)
    queries = [
        Query('Is <region3> left of <region12>?', [], 6, 'model'),
        Query('How far is <mask> from <mask>?', [7, 3], 6, 'model'),
    ]
    answers = {}
    for form in MASK_FORMS:
        frame = _frame(form, masks, ids)
        frame.stamp_ns = 0  # no encoder cache across forms: each form is encoded afresh
        answers[form] = [a.text for a in engine.ask_many(frame, queries)]
    assert answers['cropped'] == answers['full'] == answers['instances']


def test_full_and_cropped_masks_mix_in_one_array() -> None:
    masks, ids = _masks()
    full = _msgs('full', masks, ids)
    cropped = _msgs('cropped', masks, ids)
    mixed = full[2]
    mixed.regions[1] = cropped[2].regions[1]
    frame = frame_from_msgs(full[0], full[1], mixed)
    assert np.array_equal(frame.masks != 0, masks)


def test_the_cropped_form_is_about_one_percent_of_the_full_form() -> None:
    masks = np.zeros((10, 1080, 1920), bool)
    for k in range(10):  # ten pallet-sized regions (150 x 100 px) at 1080p
        masks[k, 600:700, 20 + 190 * k : 170 + 190 * k] = True
    ids = list(range(1, 11))
    full = encode_regions('full', masks, ids, ['pallet'] * 10, types=TYPES, image=_image, header=0)
    crop = encode_regions(
        'cropped', masks, ids, ['pallet'] * 10, types=TYPES, image=_image, header=0
    )
    full_bytes = sum(len(r.mask.data) for r in full[0].regions)
    crop_bytes = sum(len(r.mask.data) for r in crop[0].regions)
    assert crop_bytes <= 0.01 * full_bytes, (crop_bytes, full_bytes)


def test_an_empty_region_stays_a_valid_empty_mask_in_every_form() -> None:
    masks, ids = _masks()
    masks[1] = False
    for form in MASK_FORMS:
        frame = _frame(form, masks, ids)
        assert not frame.masks[1].any() and frame.masks[0].any(), form


def test_instances_refuse_overlaps_and_background_ids() -> None:
    masks, ids = _masks()
    masks[1, 10, 10] = True  # inside region 3's box
    with pytest.raises(ValueError, match='regions 3 and 7 overlap'):
        encode_regions('instances', masks, ids, ['p'] * 3, types=TYPES, image=_image, header=0)
    with pytest.raises(ValueError, match='ids >= 1'):
        encode_regions(
            'instances', _masks()[0], [0, 1, 2], ['p'] * 3, types=TYPES, image=_image, header=0
        )


def test_wide_ids_take_a_wider_label_encoding() -> None:
    masks, _ = _masks()
    rgb, depth, regions, labels = _msgs('instances', masks, [3, 700, 70_000])
    assert labels.encoding == '32SC1'
    frame = frame_from_msgs(rgb, depth, regions, instances_msg=labels)
    assert np.array_equal(frame.masks != 0, masks)


def _cropped_with(change) -> tuple:
    masks, ids = _masks()
    msgs = _msgs('cropped', masks, ids)
    change(msgs[2].regions[0])
    return msgs


@pytest.mark.parametrize(
    ('change', 'error'),
    [
        (
            lambda r: setattr(r.bbox, 'width', 25),
            r'size mismatch: mask of region 3 is \[15, 26\], neither the image \[60, 80\] nor '
            r'its bbox \[15, 25\]',
        ),
        (
            lambda r: setattr(r.bbox, 'x_offset', 70),
            r'the bbox of region 3 \(x 70, y 5, 26x15\) reaches outside the 80x60 image',
        ),
        (
            lambda r: setattr(r.mask, 'encoding', 'mono16'),
            "mask of region 3 must be mono8, got 'mono16'",
        ),
    ],
)
def test_bad_cropped_masks_are_named(change, error: str) -> None:
    rgb, depth, regions, _ = _cropped_with(change)
    with pytest.raises(EngineError, match=error):
        frame_from_msgs(rgb, depth, regions)


def test_bad_instance_inputs_are_named() -> None:
    masks, ids = _masks()
    rgb, depth, regions, labels = _msgs('instances', masks, ids)
    regions.regions[2].id = 300
    with pytest.raises(EngineError, match=r'region id 300 cannot be a mono8 label \(1..255'):
        frame_from_msgs(rgb, depth, regions, instances_msg=labels)
    rgb, depth, regions, labels = _msgs('instances', masks, ids)
    small = _image(np.zeros((H - 1, W), np.uint8), 'mono8')
    with pytest.raises(EngineError, match=r'the instance-label image is \[59, 80\], rgb is'):
        frame_from_msgs(rgb, depth, regions, instances_msg=small)
    colour = _image(np.zeros((H, W, 3), np.uint8), 'rgb8')
    with pytest.raises(EngineError, match='must be mono8, mono16 or 32SC1'):
        frame_from_msgs(rgb, depth, regions, instances_msg=colour)
    with pytest.raises(EngineError, match='a RegionArray needs its instance-label image'):
        frame_from_msgs(rgb, depth, regions)


def test_expanded_masks_are_bounded_before_allocation() -> None:
    # 10 cropped masks are a few KB on the wire, but 10 x 800 x 600 bytes once expanded
    masks = np.zeros((10, 600, 800), bool)
    masks[:, 10:20, 10:20] = True
    rgb = _image(np.zeros((600, 800, 3), np.uint8), 'rgb8')
    depth = _image(np.zeros((600, 800), np.uint16), '16UC1')
    (regions,) = encode_regions(
        'cropped', masks, list(range(10)), ['p'] * 10, types=TYPES, image=_image, header=0
    )
    limits = FrameLimits(max_frame_bytes=1 << 22)
    with pytest.raises(EngineError, match='10 regions at 800x600 expand to 4800000 bytes'):
        frame_from_msgs(rgb, depth, regions, limits)
    stored = StoredFrame(rgb, depth, regions)
    assert stored.nbytes >= 10 * 600 * 800  # the frame cache budgets the expanded masks
