"""Replay a bag into a running node over DDS, ask every question, score the answers.

Messages are published as the raw CDR bytes stored in the bag (nothing is deserialised), on
the schedule ``wall0 + (t - t0) / rate`` (``rate=0``: as fast as the node answers), with
``/clock`` published first so a node with ``use_sim_time`` follows bag time. After a frame's
messages, each of its questions is sent to ``spatial_query`` with the frame's stamp, so the
answer is about exactly that frame.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
import json
import math
from pathlib import Path
import threading
import time
from typing import Any

import numpy as np

from smolrgpt_ros import bags

# bag topic -> the node's topic (its defaults, at the root namespace)
DEFAULT_TOPIC_MAP = {
    bags.RGB_TOPIC: 'rgb/image',
    bags.DEPTH_TOPIC: 'depth/image',
    bags.REGIONS_TOPIC: 'regions',
    bags.INSTANCES_TOPIC: 'instances',
    bags.CAMERA_INFO_TOPIC: 'depth/camera_info',
}
FRAME_WAIT_S = 20.0  # generous: a loaded machine may take seconds to sync big frames


@dataclass
class ReplayResult:
    predictions: list[dict[str, Any]] = field(default_factory=list)  # [{id, normalized_answer}]
    answers: list[dict[str, Any]] = field(default_factory=list)  # everything per question
    latencies_ms: list[float] = field(default_factory=list)
    rejected: int = 0  # busy
    frames_dropped: int = 0  # the node never had the frame (sync miss or cache eviction)
    frames: int = 0
    wall_s: float = 0.0

    def latency_summary(self) -> dict[str, float]:
        if not self.latencies_ms:
            return {'p50': math.nan, 'p95': math.nan, 'max': math.nan}
        values = np.asarray(self.latencies_ms)
        return {
            'p50': float(np.percentile(values, 50)),
            'p95': float(np.percentile(values, 95)),
            'max': float(values.max()),
        }


def _message_types() -> dict[str, type]:
    from sensor_msgs.msg import CameraInfo, Image

    from smolrgpt_ros.msg import RegionArray, RegionMaskArray

    return {
        'sensor_msgs/msg/Image': Image,
        'sensor_msgs/msg/CameraInfo': CameraInfo,
        'smolrgpt_ros/msg/RegionMaskArray': RegionMaskArray,
        'smolrgpt_ros/msg/RegionArray': RegionArray,
    }


def replay(
    bag: str | Path,
    *,
    rate: float = 1.0,
    service: str = 'spatial_query',
    topic_map: dict[str, str] | None = None,
    timeout_s: float = 60.0,
) -> ReplayResult:
    """Play ``bag`` into the node serving ``service``; needs rclpy and a running node."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rosgraph_msgs.msg import Clock

    from smolrgpt_ros.srv import SpatialQuery

    topic_map = topic_map or DEFAULT_TOPIC_MAP
    questions: dict[int, list[dict[str, Any]]] = {}
    for record in bags.read_questions(bag):
        questions.setdefault(record['stamp_ns'], []).append(record)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = Node('smolrgpt_replay', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    result = ReplayResult()
    try:
        types = _message_types()
        publishers = {
            bag_topic: node.create_publisher(types[msgtype], topic_map[bag_topic], 10)
            for bag_topic, msgtype in bags.topics(bag).items()
            if bag_topic in topic_map
        }
        clock = node.create_publisher(Clock, '/clock', 10)
        client = node.create_client(SpatialQuery, service)
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise RuntimeError(f'service {service} not available after {timeout_s} s')
        _wait_for_subscribers(publishers, timeout_s)
        start = time.perf_counter()
        t0 = None
        last_stamp = None
        for message in bags.read_messages(bag):
            if message.topic not in publishers:
                continue
            t0 = message.stamp_ns if t0 is None else t0
            if rate > 0:
                delay = start + (message.stamp_ns - t0) / 1e9 / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            if last_stamp is not None and message.stamp_ns != last_stamp:
                _ask(client, last_stamp, questions.pop(last_stamp, []), result, timeout_s)
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = divmod(message.stamp_ns, 1_000_000_000)
            clock.publish(msg)
            publishers[message.topic].publish(message.raw)  # raw CDR: published as is
            if message.stamp_ns != last_stamp:
                result.frames += 1
            last_stamp = message.stamp_ns
        if last_stamp is not None:
            _ask(client, last_stamp, questions.pop(last_stamp, []), result, timeout_s)
        result.wall_s = time.perf_counter() - start
    finally:
        executor.shutdown()
        spinner.join(timeout=5)
        node.destroy_node()
        rclpy.shutdown(context=context)
    return result


def _wait_for_subscribers(publishers: dict[str, Any], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(p.get_subscription_count() > 0 for p in publishers.values()):
            return
        time.sleep(0.05)
    missing = [t for t, p in publishers.items() if p.get_subscription_count() == 0]
    raise RuntimeError(f'no subscriber on {missing} after {timeout_s} s (is the node active?)')


def _call(client: Any, request: Any, timeout_s: float) -> Any:
    future = client.call_async(request)
    deadline = time.monotonic() + timeout_s
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.002)
    if not future.done():
        raise RuntimeError(f'no response within {timeout_s} s')
    return future.result()


def _ask(
    client: Any,
    stamp_ns: int,
    records: list[dict[str, Any]],
    result: ReplayResult,
    timeout_s: float,
) -> None:
    from smolrgpt_ros.srv import SpatialQuery

    dropped = False
    for record in records:
        request = SpatialQuery.Request(
            question=record['question'], region_ids=record['region_ids']
        )
        request.stamp.sec, request.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        sent = time.perf_counter()
        deadline = time.monotonic() + FRAME_WAIT_S
        while True:  # the synchroniser may still be completing the frame
            response = _call(client, request, timeout_s)
            waiting = (
                not response.success and 'no frame with stamp' in response.error
            ) or response.error == 'no synchronised frame received yet'
            if not waiting or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        latency = (time.perf_counter() - sent) * 1e3
        if response.success:
            result.latencies_ms.append(latency)
        elif response.error.startswith('busy'):
            result.rejected += 1
        elif waiting:
            dropped = True
        result.predictions.append(
            {'id': record['id'], 'normalized_answer': response.normalized_answer}
        )
        result.answers.append(
            {
                'id': record['id'],
                'stamp_ns': stamp_ns,
                'question': record['question'],
                'region_ids': record['region_ids'],
                'category': record['category'],
                'gt_answer': record['answer'],
                'gt_normalized': record['normalized_answer'],
                'success': response.success,
                'error': response.error,
                'answer': response.answer,
                'normalized_answer': response.normalized_answer,
                'source': response.source,
                'cross_check': response.cross_check,
                'geometry_reason': response.geometry_reason,
                'latency_ms': latency,
            }
        )
    result.frames_dropped += int(dropped)


def ground_truth(bag: str | Path) -> list[dict[str, Any]]:
    """The bag's questions as the official scorer's ground truth."""
    return [
        {'id': r['id'], 'category': r['category'], 'normalized_answer': r['normalized_answer']}
        for r in bags.read_questions(bag)
    ]


def write_outputs(result: ReplayResult, bag: str | Path, out: str | Path) -> dict[str, Any]:
    """predictions.json, answers.jsonl, report.json (+ score and latency histogram PNG)."""
    from smolrgpt_core.answer_sources import score_by_source
    from smolrgpt_core.warehouse_metric import score_warehouse

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'predictions.json').write_text(json.dumps(result.predictions, indent=1))
    with open(out / 'answers.jsonl', 'w', encoding='utf-8') as f:
        for row in result.answers:
            f.write(json.dumps(row) + '\n')
    gt = [g for g in ground_truth(bag) if g['normalized_answer'] != '']
    report: dict[str, Any] = {
        'frames': result.frames,
        'questions': len(result.predictions),
        'answered': len(result.latencies_ms),
        'rejected_busy': result.rejected,
        'frames_dropped': result.frames_dropped,
        'wall_s': round(result.wall_s, 3),
        'latency_ms': result.latency_summary(),
    }
    if gt and len(gt) == len(result.predictions):
        report['score'] = score_warehouse(gt, result.predictions).to_dict()
        report['sources'] = dict(Counter(row['source'] or 'none' for row in result.answers))
        if any(row['source'] != 'model' or row['cross_check'] for row in result.answers):
            report['by_source'] = score_by_source(gt, result.answers)
    (out / 'report.json').write_text(json.dumps(report, indent=1))
    _histogram(result.latencies_ms, out / 'latency_histogram.png')
    return report


def _histogram(latencies_ms: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(latencies_ms or [0.0], bins=30, color='#3a7bd5')
    ax.set_xlabel('service round trip (ms)')
    ax.set_ylabel('questions')
    ax.set_title('spatial_query latency during replay')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
