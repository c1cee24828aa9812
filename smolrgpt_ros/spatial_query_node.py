"""spatial_query_node: answers spatial questions about synchronised RGB-D frames.

A lifecycle node (configure = load the model, activate = subscribe and serve, cleanup = free
memory); with ``autostart`` (default) it configures and activates itself, so it also runs as
a plain node. The work lives in ``SpatialQueryEngine``; this file only adapts ROS to it:

* RGB, depth and RegionMaskArray are matched by approximate time; the callback only stores
  the message triple (cheap). Conversion and the vision encoder run once per frame, on the
  first question about it (or on arrival in a worker thread with ``encode.eager``), never in
  a subscription callback.
* ``spatial_query`` answers from the frame with the requested stamp (zero = latest). Every
  bad request gets ``success: false`` with a reason; beyond ``requests.queue_limit`` waiting
  requests, calls are rejected as busy, never dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
import gc
import sys
import threading
import time
from types import SimpleNamespace
from typing import Any

from geometry_msgs.msg import Point
import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from visualization_msgs.msg import Marker, MarkerArray

from smolrgpt_core.geometry import CameraModel
from smolrgpt_core.inference.engine import EngineError, Query, SpatialQueryEngine
from smolrgpt_core.paths import embedded_model_dir
from smolrgpt_core.settings import InferenceSettings
from smolrgpt_ros import conversions, sync
from smolrgpt_ros.annotate import annotate
from smolrgpt_ros.camera_info_cache import CameraInfoCache
from smolrgpt_ros.frame_cache import FrameCache, FrameNotFoundError
from smolrgpt_ros.image_conversion import numpy_to_imgmsg
from smolrgpt_ros.markers import answer_markers
from smolrgpt_ros.msg import RegionGeometry, RegionMaskArray, SpatialAnswer
from smolrgpt_ros.node_config import NodeConfig, NodeConfigError, declare_and_read
from smolrgpt_ros.srv import SpatialQuery

NODE_NAME = 'spatial_query_node'


def _guarded(subscriber: type, node: SpatialQueryNode) -> type:
    """The sync's Subscriber class, refusing oversized messages before they are queued for
    matching (a synchronizer queue of 8000x8000 frames would hold gigabytes)."""

    class GuardedSubscriber(subscriber):  # type: ignore[misc, valid-type]
        def callback(self, msg: Any) -> None:
            problem = conversions.message_problem(msg, node.settings.limits)
            if problem:
                node.bad_frame(f'{self.getTopic()}: {problem}')
                return
            super().callback(msg)

    return GuardedSubscriber


class SpatialQueryNode(LifecycleNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.config: NodeConfig | None = None
        self.config_error = ''
        try:
            self.config = declare_and_read(self)
        except Exception as exc:  # a bad override (type or value) must not kill the node silently
            self.config_error = str(exc)
            self.get_logger().error(f'parameters: {exc}')  # configure fails with the same reason
        self._warn_unknown_parameters()
        self.engine: SpatialQueryEngine | None = None
        self.frames: FrameCache[conversions.StoredFrame] = FrameCache(1)
        self._entities: list[Any] = []
        self._pending = 0  # requests accepted and not yet answered
        self._pending_lock = threading.Lock()
        self.counts = {'busy': 0, 'bad_frames': 0, 'frames': 0, 'answered': 0, 'failed': 0}
        self._encoder: ThreadPoolExecutor | None = None
        self._camera_infos = CameraInfoCache()
        self._cameras: dict[int, CameraModel] = {}  # the last converted CameraInfo
        self._said: set[str] = set()  # reasons logged once
        self._sensor_group = MutuallyExclusiveCallbackGroup()
        self._service_group = ReentrantCallbackGroup()  # waiting requests hold no sensor thread

    @property
    def settings(self) -> InferenceSettings:
        return self.config.inference if self.config else InferenceSettings()

    def _warn_unknown_parameters(self) -> None:
        # rclpy keeps overrides (-p, params files) for undeclared names without a word
        overrides = getattr(self, '_parameter_overrides', {}) or {}
        declared = set(NodeConfig().to_params()) | {'use_sim_time'}
        for name in sorted(set(overrides) - declared):
            if not name.startswith('qos_overrides.'):
                self.get_logger().warning(f'parameter {name} is not a parameter of this node')

    def bad_frame(self, reason: str) -> None:
        self.counts['bad_frames'] += 1
        self.get_logger().warning(
            f'dropped input ({self.counts["bad_frames"]} so far): {reason}',
            throttle_duration_sec=5.0,
        )

    # lifecycle ---------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        # rclpy swallows exceptions raised here: every failure is logged with its reason
        try:
            if self.config_error:
                raise NodeConfigError(self.config_error)
            self.config = NodeConfig.from_params(
                {name: self.get_parameter(name).value for name in NodeConfig().to_params()}
            )
            cfg = self.config
            checkpoint = cfg.model_checkpoint_dir or str(embedded_model_dir())
            start = time.perf_counter()
            self.engine = SpatialQueryEngine.from_checkpoint(checkpoint, cfg.inference)
        except Exception as exc:
            self.get_logger().error(f'configure failed: {exc}')
            return TransitionCallbackReturn.FAILURE
        self.frames = FrameCache(cfg.inference.cache.frames, cfg.inference.cache.max_bytes)
        m = cfg.inference.model
        self.get_logger().info(
            f'configured: {checkpoint} on {m.backend}/{m.device}/{m.dtype} in '
            f'{time.perf_counter() - start:.1f} s'
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        cfg = self.config
        subscriber, synchronizer, source = sync.load()
        # best effort matches every publisher, but loses fragments of big messages over UDP
        qos = (
            QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
            if cfg.qos_reliable
            else qos_profile_sensor_data
        )
        subscriber = _guarded(subscriber, self)
        subs = [
            subscriber(
                self, Image, cfg.topics_rgb, qos_profile=qos, callback_group=self._sensor_group
            ),
            subscriber(
                self, Image, cfg.topics_depth, qos_profile=qos, callback_group=self._sensor_group
            ),
            subscriber(
                self,
                RegionMaskArray,
                cfg.topics_regions,
                qos_profile=qos,
                callback_group=self._sensor_group,
            ),
        ]
        self._sync = synchronizer(subs, cfg.sync_queue_size, cfg.sync_slop_s)
        self._sync.registerCallback(self._on_frame)
        camera_info = self.create_subscription(
            CameraInfo,
            cfg.topics_camera_info,
            self._on_camera_info,
            qos,
            callback_group=self._sensor_group,
        )
        self._answers = self.create_publisher(SpatialAnswer, '~/answers', 10)
        self._annotated = self.create_publisher(Image, '~/annotated', 1)
        self._markers = self.create_publisher(MarkerArray, '~/markers', 1)
        self._service = self.create_service(
            SpatialQuery, 'spatial_query', self._on_query, callback_group=self._service_group
        )
        self._entities = [s.sub for s in subs] + [
            camera_info,
            self._answers,
            self._annotated,
            self._markers,
            self._service,
        ]
        if cfg.encode_eager:
            self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix='encoder')
        self.get_logger().info(
            f'active: {cfg.topics_rgb} + {cfg.topics_depth} + {cfg.topics_regions} '
            f'+ {cfg.topics_camera_info} (answer.mode {cfg.inference.answer.mode}) '
            f'(sync: {source}, slop {cfg.sync_slop_s} s), service spatial_query'
        )
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._destroy_entities()
        self.get_logger().info('deactivated')
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._destroy_entities()
        self.engine = None
        self.frames.clear()
        gc.collect()
        if sys.modules.get('torch') is not None and sys.modules['torch'].cuda.is_available():
            sys.modules['torch'].cuda.empty_cache()
        self.get_logger().info('cleaned up: model released')
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._destroy_entities()
        return TransitionCallbackReturn.SUCCESS

    def _destroy_entities(self) -> None:
        if self._encoder is not None:
            self._encoder.shutdown(wait=True, cancel_futures=True)
            self._encoder = None
        for entity in self._entities:
            if hasattr(entity, 'srv_type'):
                self.destroy_service(entity)
            elif hasattr(entity, 'msg_type') and hasattr(entity, 'publish'):
                self.destroy_publisher(entity)
            else:
                self.destroy_subscription(entity)
        self._entities = []

    # sensors -------------------------------------------------------------------------------
    def _on_frame(self, rgb: Image, depth: Image, regions: RegionMaskArray) -> None:
        stamp_ns = sync.stamp_to_ns(rgb.header.stamp)
        stored = conversions.StoredFrame(rgb, depth, regions, self.settings.limits)
        if stored.nbytes > self.settings.cache.max_bytes:
            self.bad_frame(
                f'frame {stamp_ns}: {stored.nbytes} bytes do not fit cache.max_bytes '
                f'{self.settings.cache.max_bytes}'
            )
            return
        self.counts['frames'] += 1
        self.frames.put(stamp_ns, stored, stored.nbytes)
        if self._encoder is not None:
            self._encoder.submit(self._encode_eagerly, stamp_ns)

    def _encode_eagerly(self, stamp_ns: int) -> None:
        try:
            _, stored = self.frames.get(stamp_ns)
            self.engine.encode(stored.frame())
        except (EngineError, FrameNotFoundError) as exc:
            self.bad_frame(f'frame {stamp_ns}: {exc}')

    # service -------------------------------------------------------------------------------
    def _on_query(
        self, request: SpatialQuery.Request, response: SpatialQuery.Response
    ) -> SpatialQuery.Response:
        start = time.perf_counter()
        limit = self.config.requests_queue_limit if self.config else 1
        with self._pending_lock:
            busy = self._pending >= limit
            if busy:
                self.counts['busy'] += 1
            else:
                self._pending += 1
        if busy:
            self.get_logger().warning(
                f'busy: rejected a request ({self.counts["busy"]} so far; '
                f'requests.queue_limit = {limit})',
                throttle_duration_sec=2.0,
            )
            return conversions.fail_response(
                response, f'busy: {limit} requests are already waiting (requests.queue_limit)'
            )
        try:
            self._answer(request, response)
            self.counts['answered'] += 1
        except EngineError as exc:
            self.counts['failed'] += 1
            conversions.fail_response(response, str(exc))
        except Exception as exc:  # the service must answer and the node live on, whatever failed
            self.counts['failed'] += 1
            self.get_logger().error(f'spatial_query failed: {type(exc).__name__}: {exc}')
            conversions.fail_response(
                response, 'internal error while answering; the node log has the details'
            )
        finally:
            with self._pending_lock:
                self._pending -= 1
        response.latency_ms = float((time.perf_counter() - start) * 1e3)
        question = (
            request.question
            if len(request.question) <= 200
            else (f'{request.question[:200]}... ({len(request.question)} characters)')
        )
        self.get_logger().info(
            f'{question!r} {list(request.region_ids)} -> '
            f'{response.answer if response.success else "error: " + response.error!r} '
            f'({response.latency_ms:.0f} ms)'
        )
        return response

    def _answer(self, request: SpatialQuery.Request, response: SpatialQuery.Response) -> None:
        if self.engine is None:
            raise EngineError('the node is not configured')
        stamp_ns = sync.stamp_to_ns(request.stamp)
        try:
            stamp_ns, stored = self.frames.get(stamp_ns)
        except FrameNotFoundError as exc:
            raise EngineError(str(exc)) from exc
        frame = stored.frame()
        frame.camera = self._camera_for(stamp_ns)
        query = Query(
            request.question,
            list(request.region_ids),
            int(request.max_new_tokens),
            request.mode,
        )
        answer = self.engine.ask_many(frame, [query])[0]
        if answer.geometry_reason and answer.source != 'geometry':
            if frame.camera is None:  # once, not per question: the cause is the missing topic
                self._say_once(
                    f'no CameraInfo on {self.config.topics_camera_info}: answers fall back to '
                    'image-plane geometry (left/right, extremes) and the model'
                )
            else:
                self.get_logger().debug(f'geometry did not answer: {answer.geometry_reason}')
        conversions.fill_response(response, answer, type(request.stamp), RegionGeometry)
        header = stored.header
        self._answers.publish(
            conversions.answer_message(SpatialAnswer(), request, response, header)
        )
        if self._markers.get_subscription_count() > 0 and answer.regions_3d:
            types = SimpleNamespace(MarkerArray=MarkerArray, Marker=Marker, Point=Point)
            self._markers.publish(
                answer_markers(types, header, answer, answer.question_region_ids, answer.floor)
            )
        if self._annotated.get_subscription_count() > 0:
            caption = f'{request.question} -> {answer.text} [{answer.source}]'
            image = annotate(frame.rgb, frame.masks, frame.region_ids, caption)
            self._annotated.publish(numpy_to_imgmsg(image, 'rgb8', header=header))

    # camera intrinsics ---------------------------------------------------------------------
    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_infos.put(sync.stamp_to_ns(msg.header.stamp), msg)

    def _camera_for(self, stamp_ns: int) -> CameraModel | None:
        """The frame's intrinsics: CameraInfo with the frame's stamp, else the latest one."""
        found = self._camera_infos.match(stamp_ns)
        if found is None:
            return None
        msg, how = found
        if how == 'latest':
            self._say_once('camera_info stamps differ from the frames: using the latest')
        key = id(msg)
        if key not in self._cameras:
            try:
                self._cameras = {key: CameraModel.from_camera_info(msg)}
            except ValueError as exc:
                self._say_once(f'camera_info is unusable: {exc}')
                return None
        return self._cameras[key]

    def _say_once(self, text: str) -> None:
        if text not in self._said:
            self._said.add(text)
            self.get_logger().warning(text)


def main(argv: Sequence[str] | None = None) -> int:
    rclpy.init(args=argv)
    node = SpatialQueryNode()
    limit = node.config.requests_queue_limit if node.config else 4
    executor = MultiThreadedExecutor(num_threads=limit + 2)
    executor.add_node(node)
    autostart = node.config.autostart if node.config else True
    if autostart:
        if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            # started by hand or by a launch file without a lifecycle manager: nobody would
            # retry, so stop with the reason (logged by on_configure) instead of idling
            node.get_logger().error('not configured; exiting (autostart)')
            node.destroy_node()
            rclpy.try_shutdown()
            return 1
        node.trigger_activate()
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # Ctrl-C or ros2 lifecycle shutdown: leave quietly
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
