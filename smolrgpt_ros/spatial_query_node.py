"""spatial_query_node: answers spatial questions about synchronised RGB-D frames.

A lifecycle node (configure = load the model, activate = subscribe and serve, cleanup = free
memory); with ``autostart`` (default) it configures and activates itself, so it also runs as
a plain node. The work lives in ``SpatialQueryEngine``; the node only adapts ROS to it:

* RGB, depth and the regions (``regions.form``: a RegionMaskArray, or an instance-label image
  and a RegionArray) are matched by approximate time; the callback only stores the messages
  (cheap). ``conversions.frame_from_msgs`` turns them into the engine's Frame once per frame,
  on the first question about it (or on arrival in a worker thread with ``encode.eager``).
* Questions come over the ``spatial_query`` service and action (``queries.QueryFront``) and are
  answered in batches per frame by one worker thread (``batcher.QuestionBatcher``).
* ``/diagnostics`` reports the model, the inputs, the queue, batch sizes, latencies and errors
  every ``diagnostics.period_s``, in every lifecycle state.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
import gc
import sys
import time
from types import SimpleNamespace
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image

from smolrgpt_core.geometry import CameraModel
from smolrgpt_core.inference.engine import Answer, EngineError, Frame, SpatialQueryEngine
from smolrgpt_core.paths import embedded_model_dir
from smolrgpt_core.settings import InferenceSettings
from smolrgpt_ros import conversions, region_forms, sync
from smolrgpt_ros.batcher import QuestionBatcher
from smolrgpt_ros.camera_info_cache import CameraInfoCache
from smolrgpt_ros.diagnostics import EngineInfo, NodeStats
from smolrgpt_ros.frame_cache import FrameCache, FrameNotFoundError
from smolrgpt_ros.msg import RegionArray, RegionMaskArray
from smolrgpt_ros.node_config import NodeConfig, NodeConfigError, declare_and_read
from smolrgpt_ros.queries import QueryFront, executor_threads

NODE_NAME = 'spatial_query_node'
DIAGNOSTIC_TYPES = SimpleNamespace(DiagnosticStatus=DiagnosticStatus, KeyValue=KeyValue)


def _guarded(subscriber: type, node: SpatialQueryNode) -> type:
    """The sync's Subscriber class, refusing oversized messages before they are queued for
    matching (a synchronizer queue of 8000x8000 frames would hold gigabytes)."""

    class GuardedSubscriber(subscriber):  # type: ignore[misc, valid-type]
        def callback(self, msg: Any) -> None:
            topic = self.getTopic()
            node.stats.receive(topic)
            limits = node.settings.limits
            if topic == node.config.topics_instances:
                problem = region_forms.instances_problem(msg, limits)
            else:
                problem = conversions.message_problem(msg, limits)
            if problem:
                node.bad_frame(f'{topic}: {problem}')
                return
            super().callback(msg)

    return GuardedSubscriber


class SpatialQueryNode(LifecycleNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.config: NodeConfig | None = None
        self.config_error = ''
        self.problem = ''  # why no model is loaded, for /diagnostics
        try:
            self.config = declare_and_read(self)
        except Exception as exc:  # a bad override (type or value) must not kill the node silently
            self.config_error = str(exc)
            self.get_logger().error(f'parameters: {exc}')  # configure fails with the same reason
        self._warn_unknown_parameters()
        self.engine: SpatialQueryEngine | None = None
        self.engine_info: EngineInfo | None = None
        self.frames: FrameCache[conversions.StoredFrame] = FrameCache(1)
        self.stats = NodeStats()
        self.state = 'unconfigured'
        self._batcher: QuestionBatcher | None = None
        self._front: QueryFront | None = None
        self._entities: list[Any] = []
        self._encoder: ThreadPoolExecutor | None = None
        self._camera_infos = CameraInfoCache()
        self._cameras: dict[int, CameraModel] = {}  # the last converted CameraInfo
        self._said: set[str] = set()  # reasons logged once
        self._sensor_group = MutuallyExclusiveCallbackGroup()
        self.service_group = ReentrantCallbackGroup()  # waiting questions hold no sensor thread
        # diagnostics run in every state: an unconfigured node says why it serves nothing
        self._diagnostics = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        period = self.config.diagnostics_period_s if self.config else 1.0
        self.create_timer(period, self._report, callback_group=MutuallyExclusiveCallbackGroup())

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
        count = self.stats.count('frames refused')
        self.stats.error(reason)
        self.get_logger().warning(
            f'dropped input ({count} so far): {reason}', throttle_duration_sec=5.0
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
            self.problem = f'configure failed: {exc}'
            self.stats.error(self.problem)
            self.get_logger().error(self.problem)
            return TransitionCallbackReturn.FAILURE
        self.problem = ''
        self.frames = FrameCache(cfg.inference.cache.frames, cfg.inference.cache.max_bytes)
        m = cfg.inference.model
        self.engine_info = EngineInfo(checkpoint, m.backend, m.device, m.dtype)
        self.state = 'inactive'
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
        inputs = [(Image, cfg.topics_rgb), (Image, cfg.topics_depth)]
        if cfg.regions_form == 'instances':
            inputs += [(Image, cfg.topics_instances), (RegionArray, cfg.topics_regions)]
        else:
            inputs += [(RegionMaskArray, cfg.topics_regions)]
        subs = [
            subscriber(self, kind, topic, qos_profile=qos, callback_group=self._sensor_group)
            for kind, topic in inputs
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
        self._entities = [s.sub for s in subs] + [camera_info]
        self._batcher = QuestionBatcher(
            self.engine,
            window_s=cfg.requests_batch_window_s,
            max_batch=cfg.requests_batch_max,
            backlog=cfg.requests_queue_limit,
            on_batch=lambda jobs, timings: self.stats.batch(len(jobs), timings),
        )
        self._front = QueryFront(self, self._batcher)
        if cfg.encode_eager:
            self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix='encoder')
        self.stats.since_active()
        self.state = 'active'
        self.get_logger().info(
            f'active: {" + ".join(topic for _, topic in inputs)} + {cfg.topics_camera_info} '
            f'(regions.form {cfg.regions_form}, answer.mode {cfg.inference.answer.mode}, '
            f'sync: {source}, slop {cfg.sync_slop_s} s), service and action spatial_query '
            f'(batches of up to {cfg.requests_batch_max})'
        )
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._destroy_entities()
        self.state = 'inactive'
        self.get_logger().info('deactivated')
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._destroy_entities()
        self.engine = self.engine_info = None
        self.frames.clear()
        self.state = 'unconfigured'
        gc.collect()
        if sys.modules.get('torch') is not None and sys.modules['torch'].cuda.is_available():
            sys.modules['torch'].cuda.empty_cache()
        self.get_logger().info('cleaned up: model released')
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._destroy_entities()
        self.state = 'finalized'
        return TransitionCallbackReturn.SUCCESS

    def _destroy_entities(self) -> None:
        if self._encoder is not None:
            self._encoder.shutdown(wait=True, cancel_futures=True)
            self._encoder = None
        if self._batcher is not None:
            self._batcher.stop()  # waiting questions end with the reason
            self._batcher = None
        if self._front is not None:
            self._front.destroy()
            self._front = None
        for entity in self._entities:
            self.destroy_subscription(entity)
        self._entities = []

    # sensors -------------------------------------------------------------------------------
    def _on_frame(self, rgb: Image, depth: Image, *regions: Any) -> None:
        stamp_ns = sync.stamp_to_ns(rgb.header.stamp)
        if len(regions) == 2:  # instances form: the label image, then the RegionArray
            stored = conversions.StoredFrame(
                rgb, depth, regions[1], self.settings.limits, instances_msg=regions[0]
            )
        else:
            stored = conversions.StoredFrame(rgb, depth, regions[0], self.settings.limits)
        if stored.nbytes > self.settings.cache.max_bytes:
            self.bad_frame(
                f'frame {stamp_ns}: {stored.nbytes} bytes do not fit cache.max_bytes '
                f'{self.settings.cache.max_bytes}'
            )
            return
        self.stats.synchronised()
        self.frames.put(stamp_ns, stored, stored.nbytes)
        if self._encoder is not None:
            self._encoder.submit(self._encode_eagerly, stamp_ns)

    def _encode_eagerly(self, stamp_ns: int) -> None:
        try:
            _, stored = self.frames.get(stamp_ns)
            self.engine.encode(stored.frame())
        except (EngineError, FrameNotFoundError) as exc:
            self.bad_frame(f'frame {stamp_ns}: {exc}')

    # camera intrinsics ---------------------------------------------------------------------
    def _on_camera_info(self, msg: CameraInfo) -> None:
        self.stats.receive(self.config.topics_camera_info)
        self._camera_infos.put(sync.stamp_to_ns(msg.header.stamp), msg)

    def frame_with_camera(self, stamp_ns: int, stored: conversions.StoredFrame) -> Frame:
        """The stored frame as the engine takes it, with the intrinsics for its stamp."""
        frame = stored.frame()
        frame.camera = self._camera_for(stamp_ns)
        return frame

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

    def note_geometry(self, answer: Answer, had_camera: bool) -> None:
        """Say why geometry did not answer: once for a missing CameraInfo (the cause is the
        topic, not the question), at debug level otherwise."""
        if not answer.geometry_reason or answer.source == 'geometry':
            return
        if not had_camera:
            self._say_once(
                f'no CameraInfo on {self.config.topics_camera_info}: answers fall back to '
                'image-plane geometry (left/right, extremes) and the model'
            )
        else:
            self.get_logger().debug(f'geometry did not answer: {answer.geometry_reason}')

    def _say_once(self, text: str) -> None:
        if text not in self._said:
            self._said.add(text)
            self.get_logger().warning(text)

    # diagnostics ---------------------------------------------------------------------------
    def _report(self) -> None:
        batcher = self._batcher
        status = self.stats.report(
            DIAGNOSTIC_TYPES,
            f'{self.get_fully_qualified_name()}: spatial query',
            self.engine_info,
            self.state,
            batcher.depth() if batcher is not None else (0, 0),
            self.config.diagnostics_stale_s if self.config else 5.0,
            problem=self.problem or self.config_error,
        )
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics.publish(msg)


def main(argv: Sequence[str] | None = None) -> int:
    rclpy.init(args=argv)
    node = SpatialQueryNode()
    executor = MultiThreadedExecutor(
        num_threads=executor_threads(node.config) if node.config else 8
    )
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
