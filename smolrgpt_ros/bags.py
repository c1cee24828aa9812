"""rosbag2 files of RGB-D frames, region masks and questions, written and read without ROS.

Uses the pure-Python ``rosbags`` library, so bags are made on machines without ROS and play
with ``ros2 bag play`` on robots. The custom ``smolrgpt_ros/msg`` types are registered from the
package's own ``.msg`` files, so the bag carries the same type hashes as live topics.

Topics (relative names are avoided on purpose: a bag records absolute ones):

=============================  ==========================  =================================
topic                          type                        content
=============================  ==========================  =================================
``/camera/color/image_raw``    sensor_msgs/msg/Image       rgb8
``/camera/depth/image_raw``    sensor_msgs/msg/Image       16UC1 mm (metric) or mono8
``/regions``                   smolrgpt_ros/msg/...Array   RegionMaskArray: one mono8 mask per
                                                           region, cropped to its bbox (the
                                                           default) or full-frame; RegionArray
                                                           with the instances form
``/camera/instances``          sensor_msgs/msg/Image       instances form only: the label
                                                           image (mono8/mono16/32SC1)
``/camera/depth/camera_info``  sensor_msgs/msg/CameraInfo  pinhole intrinsics, when known
``/smolrgpt/questions``        std_msgs/msg/String         JSON: id, question, region_ids,
                                                           frame stamp, ground truth
=============================  ==========================  =================================

``mask_form`` (``smolrgpt_ros.region_forms.MASK_FORMS``) picks the regions' form; the cropped
form keeps a 1080p frame's masks at ~1 % of the full form's bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

RGB_TOPIC = '/camera/color/image_raw'
DEPTH_TOPIC = '/camera/depth/image_raw'
REGIONS_TOPIC = '/regions'
INSTANCES_TOPIC = '/camera/instances'
CAMERA_INFO_TOPIC = '/camera/depth/camera_info'
QUESTIONS_TOPIC = '/smolrgpt/questions'
FRAME_ID = 'camera_color_optical_frame'


def _msg_dir() -> Path:
    """msg/ of the source tree (pip -e), else the installed share/smolrgpt_ros/msg."""
    source = Path(__file__).resolve().parent.parent / 'msg'
    if (source / 'RegionMask.msg').is_file():
        return source
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory('smolrgpt_ros')) / 'msg'


class BagError(RuntimeError):
    """A bag that cannot be written or read as asked."""


# what replay needs of each question record (Question's fields plus the frame stamp)
_QUESTION_KEYS = frozenset(
    {'stamp_ns', 'id', 'question', 'region_ids', 'category', 'answer', 'normalized_answer'}
)


@dataclass
class Question:
    id: str
    question: str  # `<mask>` placeholders, k-th = region_ids[k]
    region_ids: list[int]
    category: str = ''
    answer: str = ''
    normalized_answer: str = ''


@dataclass
class BagFrame:
    stamp_ns: int
    rgb: np.ndarray  # uint8 [H, W, 3]
    depth: np.ndarray  # uint16 mm [H, W] (0 = invalid), or uint8 [H, W] dataset-style
    masks: np.ndarray  # bool [M, H, W]
    region_ids: list[int]
    labels: list[str]
    questions: list[Question] = field(default_factory=list)
    # pinhole intrinsics of the (registered) depth image: fx, fy, cx, cy in pixels; None =
    # unknown (the NVIDIA warehouse data has none), then no CameraInfo is written
    intrinsics: dict[str, float] | None = None

    def __post_init__(self) -> None:
        h, w = self.rgb.shape[:2]
        if self.rgb.dtype != np.uint8 or self.rgb.ndim != 3 or self.rgb.shape[2] != 3:
            raise BagError(f'rgb must be uint8 [H, W, 3], got {self.rgb.dtype} {self.rgb.shape}')
        if self.depth.shape != (h, w) or self.depth.dtype not in (np.uint16, np.uint8):
            raise BagError(
                f'depth must be uint16 mm or uint8 [{h}, {w}], got '
                f'{self.depth.dtype} {self.depth.shape}'
            )
        if self.masks.ndim != 3 or self.masks.shape[1:] != (h, w):
            raise BagError(f'masks must be [M, {h}, {w}], got {self.masks.shape}')
        if not len(self.region_ids) == len(self.labels) == self.masks.shape[0]:
            raise BagError('one region id and one label per mask are needed')
        if self.intrinsics is not None:
            missing = {'fx', 'fy', 'cx', 'cy'} - set(self.intrinsics)
            if missing:
                raise BagError(f'intrinsics lack {", ".join(sorted(missing))}')


def typestore() -> Any:
    """The Jazzy typestore plus this package's interfaces, registered from msg/*.msg."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    types: dict[str, Any] = {}
    msg_dir = _msg_dir()
    for name in ('RegionMask', 'RegionMaskArray', 'Region', 'RegionArray'):
        text = (msg_dir / f'{name}.msg').read_text(encoding='utf-8')
        types.update(get_types_from_msg(text, f'smolrgpt_ros/msg/{name}'))
    store.register(types)
    return store


def _image(store: Any, header: Any, array: np.ndarray, encoding: str) -> Any:
    image_cls = store.types['sensor_msgs/msg/Image']
    data = np.ascontiguousarray(array)
    height, width = data.shape[:2]
    return image_cls(
        header=header,
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=data.nbytes // height,
        data=np.frombuffer(data.tobytes(), dtype=np.uint8),
    )


def _camera_info(store: Any, header: Any, frame: BagFrame) -> Any:
    """CameraInfo of an undistorted pinhole camera (K, P from fx, fy, cx, cy; R = I)."""
    k = frame.intrinsics
    height, width = frame.depth.shape
    return store.types['sensor_msgs/msg/CameraInfo'](
        header=header,
        height=height,
        width=width,
        distortion_model='plumb_bob',
        d=np.zeros(5, dtype=np.float64),
        k=np.array([k['fx'], 0, k['cx'], 0, k['fy'], k['cy'], 0, 0, 1], dtype=np.float64),
        r=np.eye(3, dtype=np.float64).reshape(-1),
        p=np.array([k['fx'], 0, k['cx'], 0, 0, k['fy'], k['cy'], 0, 0, 0, 1, 0], dtype=np.float64),
        binning_x=0,
        binning_y=0,
        roi=store.types['sensor_msgs/msg/RegionOfInterest'](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        ),
    )


def write_bag(
    path: str | Path,
    frames: Iterable[BagFrame],
    storage: str = 'mcap',
    mask_form: str = 'cropped',
) -> int:
    """Write frames into a new rosbag2 directory; returns the number of frames written.
    ``mask_form``: cropped (default), full (the 0.2 form) or instances."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from smolrgpt_ros.region_forms import MASK_FORMS, encode_regions

    plugins = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
    if storage not in plugins:
        raise BagError(f'storage must be one of {", ".join(plugins)}, got {storage!r}')
    if mask_form not in MASK_FORMS:
        raise BagError(f'mask form must be one of {", ".join(MASK_FORMS)}, got {mask_form!r}')
    path = Path(path)
    if path.exists():
        raise BagError(f'{path} exists already; rosbag2 writes a new directory')
    store = typestore()
    t = store.types
    header_cls, time_cls = t['std_msgs/msg/Header'], t['builtin_interfaces/msg/Time']
    string_cls = t['std_msgs/msg/String']
    region_types = SimpleNamespace(
        RegionMask=t['smolrgpt_ros/msg/RegionMask'],
        RegionMaskArray=t['smolrgpt_ros/msg/RegionMaskArray'],
        Region=t['smolrgpt_ros/msg/Region'],
        RegionArray=t['smolrgpt_ros/msg/RegionArray'],
        RegionOfInterest=t['sensor_msgs/msg/RegionOfInterest'],
    )
    instances = mask_form == 'instances'
    array_cls = region_types.RegionArray if instances else region_types.RegionMaskArray
    count = 0
    with Writer(path, version=9, storage_plugin=plugins[storage]) as writer:
        conns = {
            RGB_TOPIC: writer.add_connection(RGB_TOPIC, 'sensor_msgs/msg/Image', typestore=store),
            DEPTH_TOPIC: writer.add_connection(
                DEPTH_TOPIC, 'sensor_msgs/msg/Image', typestore=store
            ),
            REGIONS_TOPIC: writer.add_connection(
                REGIONS_TOPIC, array_cls.__msgtype__, typestore=store
            ),
            QUESTIONS_TOPIC: writer.add_connection(
                QUESTIONS_TOPIC, 'std_msgs/msg/String', typestore=store
            ),
        }
        if instances:
            conns[INSTANCES_TOPIC] = writer.add_connection(
                INSTANCES_TOPIC, 'sensor_msgs/msg/Image', typestore=store
            )

        def camera_connection() -> Any:
            if CAMERA_INFO_TOPIC not in conns:
                conns[CAMERA_INFO_TOPIC] = writer.add_connection(
                    CAMERA_INFO_TOPIC, 'sensor_msgs/msg/CameraInfo', typestore=store
                )
            return conns[CAMERA_INFO_TOPIC]

        def put(topic: str, stamp_ns: int, msg: Any) -> None:
            writer.write(conns[topic], stamp_ns, store.serialize_cdr(msg, msg.__msgtype__))

        last = -1
        for frame in frames:
            if frame.stamp_ns <= last:
                raise BagError(f'frame stamps must increase: {frame.stamp_ns} after {last}')
            last = frame.stamp_ns
            stamp = time_cls(
                sec=frame.stamp_ns // 1_000_000_000, nanosec=frame.stamp_ns % 1_000_000_000
            )
            header = header_cls(stamp=stamp, frame_id=FRAME_ID)
            put(RGB_TOPIC, frame.stamp_ns, _image(store, header, frame.rgb, 'rgb8'))
            depth_encoding = '16UC1' if frame.depth.dtype == np.uint16 else 'mono8'
            put(DEPTH_TOPIC, frame.stamp_ns, _image(store, header, frame.depth, depth_encoding))
            if frame.intrinsics is not None:
                camera_connection()
                put(CAMERA_INFO_TOPIC, frame.stamp_ns, _camera_info(store, header, frame))
            try:
                regions = encode_regions(
                    mask_form,
                    frame.masks,
                    frame.region_ids,
                    frame.labels,
                    types=region_types,
                    image=lambda array, encoding, h=header: _image(store, h, array, encoding),
                    header=header,
                )
            except ValueError as exc:
                raise BagError(f'frame {frame.stamp_ns}: {exc}') from exc
            if instances:
                put(INSTANCES_TOPIC, frame.stamp_ns, regions[0])
            put(REGIONS_TOPIC, frame.stamp_ns, regions[-1])
            for q in frame.questions:
                payload = {'stamp_ns': frame.stamp_ns, **q.__dict__}
                put(QUESTIONS_TOPIC, frame.stamp_ns, string_cls(data=json.dumps(payload)))
            count += 1
    return count


@dataclass
class BagMessage:
    topic: str
    msgtype: str
    stamp_ns: int
    raw: bytes  # CDR, as rclpy's serialize_message writes it


def _read_errors() -> tuple[type[Exception], ...]:
    """What the rosbags readers raise on a truncated or corrupt bag."""
    import sqlite3
    import struct

    from rosbags.rosbag2 import ReaderError

    errors: list[type[Exception]] = [ReaderError, OSError, ValueError, EOFError, struct.error]
    errors.append(sqlite3.Error)
    try:  # rosbags reads sqlite3 bags with apsw, whose errors are not sqlite3's
        import apsw

        errors.append(apsw.Error)
    except ImportError:
        pass
    return tuple(errors)


def _one_line(exc: BaseException) -> str:
    return ' '.join(str(exc).split())


def check_bag(path: str | Path) -> Path:
    """The bag directory, once its metadata and storage files open (no message is read)."""
    from rosbags.rosbag2 import Reader

    path = Path(path)
    if not path.is_dir():
        raise BagError(
            f'{path} is not a rosbag2 directory' + ('' if path.exists() else ' (no such path)')
        )
    if not (path / 'metadata.yaml').is_file():
        raise BagError(f'{path} is not a rosbag2 directory (no metadata.yaml)')
    try:
        with Reader(path):
            pass
    except _read_errors() as exc:
        raise BagError(f'{path}: not a readable rosbag2 ({_one_line(exc)})') from exc
    return path


def region_form(path: str | Path) -> str:
    """The node's ``regions.form`` for a bag: instances when it carries a label image."""
    return 'instances' if INSTANCES_TOPIC in topics(path) else 'masks'


def topics(path: str | Path) -> dict[str, str]:
    """topic -> message type of every connection of a bag."""
    from rosbags.rosbag2 import Reader

    path = check_bag(path)
    try:
        with Reader(path) as reader:
            return {c.topic: c.msgtype for c in reader.connections}
    except _read_errors() as exc:
        raise BagError(f'{path}: not a readable rosbag2 ({_one_line(exc)})') from exc


def read_messages(path: str | Path) -> Iterator[BagMessage]:
    """Every message of a bag in time order, still serialised (for replay)."""
    from rosbags.rosbag2 import Reader

    path = check_bag(path)
    try:
        with Reader(path) as reader:
            for conn, stamp_ns, raw in reader.messages():
                yield BagMessage(conn.topic, conn.msgtype, stamp_ns, bytes(raw))
    except _read_errors() as exc:
        raise BagError(f'{path}: truncated or corrupt rosbag2 ({_one_line(exc)})') from exc


def read_questions(path: str | Path) -> list[dict[str, Any]]:
    """The question records of a bag (JSON payloads of the questions topic), in time order."""
    store = typestore()
    records = []
    for message in read_messages(path):
        if message.topic != QUESTIONS_TOPIC:
            continue
        try:
            record = json.loads(store.deserialize_cdr(message.raw, message.msgtype).data)
        except (ValueError, KeyError, IndexError, AttributeError) as exc:
            raise BagError(
                f'{path}: a message on {QUESTIONS_TOPIC} is not a question record ({exc})'
            ) from exc
        missing = _QUESTION_KEYS - set(record) if isinstance(record, dict) else _QUESTION_KEYS
        if missing:
            raise BagError(f'{path}: a message on {QUESTIONS_TOPIC} lacks {sorted(missing)}')
        records.append(record)
    return records


def decode_image(msg: Any) -> np.ndarray:
    """A rosbags Image message -> numpy, with the node's converter (same contract)."""
    from smolrgpt_ros.image_conversion import imgmsg_to_numpy

    return imgmsg_to_numpy(msg)
