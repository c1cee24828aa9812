"""The node's question front: the ``spatial_query`` service and action, over one batcher.

Both take the same request fields and end in the same response fields. A question is
admitted here (the node is configured, its frame is cached, "the latest frame" is fresh, the
backlog has room) and then waits for its batch; every refusal is an answer with
``success: false`` and the reason. The action adds feedback (the partial answer after every
token), cancel (the goal ends at once, its generation at the next token) and a per-goal
deadline (``timeout_s``). A goal the node cannot take is accepted and aborted at once with
the reason: the action protocol's rejection carries none.

Waiting callbacks block one executor thread each (rclpy's coroutine callbacks would poll);
the executor has a thread for every question the backlog can hold (``executor_threads``).
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from geometry_msgs.msg import Point
from rclpy.action import ActionServer, CancelResponse
from rclpy.exceptions import InvalidHandle
from sensor_msgs.msg import Image
from visualization_msgs.msg import Marker, MarkerArray

from smolrgpt_core.inference.engine import EngineError, Query
from smolrgpt_ros import conversions, sync
from smolrgpt_ros.action import SpatialQuery as SpatialQueryAction
from smolrgpt_ros.annotate import annotate
from smolrgpt_ros.batcher import ANSWERED, CANCELED, EXPIRED, BusyError, Job, QuestionBatcher
from smolrgpt_ros.frame_cache import FrameNotFoundError
from smolrgpt_ros.image_conversion import numpy_to_imgmsg
from smolrgpt_ros.markers import answer_markers
from smolrgpt_ros.msg import RegionGeometry, SpatialAnswer
from smolrgpt_ros.srv import SpatialQuery

if TYPE_CHECKING:
    from smolrgpt_ros.node_config import NodeConfig
    from smolrgpt_ros.spatial_query_node import SpatialQueryNode

SERVICE_NAME = ACTION_NAME = 'spatial_query'
RESULT_TIMEOUT_S = 60  # how long the action server keeps a finished goal's result


def executor_threads(config: NodeConfig) -> int:
    """One thread per question the backlog and the running batch can hold, plus the sensor,
    timer, lifecycle and cancel callbacks (a full pool would delay, not refuse, a call)."""
    return min(512, (config.requests_queue_limit + 1) * config.requests_batch_max + 6)


class QueryFront:
    def __init__(self, node: SpatialQueryNode, batcher: QuestionBatcher) -> None:
        self.node = node
        self.batcher = batcher
        self.tokenizer = node.engine.tokenizer
        self._goals: dict[bytes, Job] = {}
        self._goals_lock = threading.Lock()
        group = node.service_group
        self.answers = node.create_publisher(SpatialAnswer, '~/answers', 10)
        self.annotated = node.create_publisher(Image, '~/annotated', 1)
        self.markers = node.create_publisher(MarkerArray, '~/markers', 1)
        self.service = node.create_service(
            SpatialQuery, SERVICE_NAME, self._on_service, callback_group=group
        )
        self.action = ActionServer(
            node,
            SpatialQueryAction,
            ACTION_NAME,
            execute_callback=self._on_goal,
            cancel_callback=self._on_cancel,
            callback_group=group,
            result_timeout=RESULT_TIMEOUT_S,
        )

    def destroy(self) -> None:
        self.action.destroy()
        self.node.destroy_service(self.service)
        for publisher in (self.answers, self.annotated, self.markers):
            self.node.destroy_publisher(publisher)

    # admission ------------------------------------------------------------------------------
    def _admit(self, request: Any, on_tokens: Any = None) -> Job:
        """A queued job for the request; EngineError or BusyError says why not."""
        node = self.node
        stats = node.stats
        stamp_ns = sync.stamp_to_ns(request.stamp)
        try:
            stamp_ns, stored = node.frames.get(stamp_ns)
        except FrameNotFoundError as exc:
            raise EngineError(str(exc)) from exc
        max_age = node.config.sync_max_age_s
        if sync.stamp_to_ns(request.stamp) == 0 and max_age > 0:
            age_s = (node.get_clock().now().nanoseconds - stamp_ns) / 1e9
            if age_s > max_age:
                stats.count('stale')
                raise EngineError(
                    f'the latest frame is {age_s:.2f} s old, above sync.max_age_s {max_age} '
                    "(by the node's clock; set use_sim_time for bag replays)"
                )
        query = Query(
            request.question, list(request.region_ids), int(request.max_new_tokens), request.mode
        )
        limit = query.max_new_tokens or node.settings.generation.max_new_tokens
        job = Job(
            query,
            stamp_ns,
            frame=lambda: node.frame_with_camera(stamp_ns, stored),
            token_limit=limit,
            on_tokens=on_tokens,
            tag=stored,
        )
        try:
            self.batcher.submit(job)
        except BusyError:
            count = stats.count('busy')
            node.get_logger().warning(
                f'busy: refused a question ({count} so far)', throttle_duration_sec=2.0
            )
            raise
        return job

    # service --------------------------------------------------------------------------------
    def _on_service(
        self, request: SpatialQuery.Request, response: SpatialQuery.Response
    ) -> SpatialQuery.Response:
        start = time.perf_counter()
        try:
            job = self._admit(request)
        except (EngineError, BusyError) as exc:
            conversions.fail_response(response, str(exc))
        else:
            job.wait()
            self._fill(job, request, response)
        response.latency_ms = float((time.perf_counter() - start) * 1e3)
        self._log(request, response)
        return response

    # action ---------------------------------------------------------------------------------
    def _on_goal(self, goal_handle: Any) -> SpatialQueryAction.Result:
        start = time.perf_counter()
        request = goal_handle.request
        result = SpatialQueryAction.Result()
        key = bytes(goal_handle.goal_id.uuid)

        def feedback(tokens: list[int]) -> None:
            text = self.tokenizer.decode(tokens).strip()
            goal_handle.publish_feedback(
                SpatialQueryAction.Feedback(partial_answer=text, tokens=len(tokens))
            )

        try:
            job = self._admit(request, on_tokens=feedback)
        except (EngineError, BusyError) as exc:
            conversions.fail_response(result, str(exc))
            goal_handle.abort()
        else:
            with self._goals_lock:
                self._goals[key] = job
            if goal_handle.is_cancel_requested:  # canceled before it was registered
                job.cancel()
            try:
                timeout_s = float(request.timeout_s)
                if timeout_s > 0:
                    left = timeout_s - (time.perf_counter() - start)
                    if not job.wait(max(0.0, left)):
                        job.finish(EXPIRED, error=f'no answer within timeout_s {timeout_s:g} s')
                else:
                    job.wait()
            finally:
                with self._goals_lock:
                    self._goals.pop(key, None)
            self._fill(job, request, result)
            if job.status == ANSWERED and result.success:
                goal_handle.succeed()
            elif job.status == CANCELED:
                goal_handle.canceled()
            else:
                goal_handle.abort()
        result.latency_ms = float((time.perf_counter() - start) * 1e3)
        self._log(request, result)
        return result

    def _on_cancel(self, goal_handle: Any) -> CancelResponse:
        with self._goals_lock:
            job = self._goals.get(bytes(goal_handle.goal_id.uuid))
        if job is not None:
            job.cancel()
        return CancelResponse.ACCEPT

    # answers --------------------------------------------------------------------------------
    def _fill(self, job: Job, request: Any, response: Any) -> None:
        stats = self.node.stats
        if job.status != ANSWERED:
            stats.count(job.status)
            if job.status != CANCELED:
                stats.error(job.error)
            conversions.fail_response(response, job.error)
            return
        answer = job.answer
        conversions.fill_response(response, answer, type(request.stamp), RegionGeometry)
        response.batch_size = job.batch_size
        stats.count('answered' if response.success else 'failed')
        self.node.note_geometry(answer, job.frame().camera is not None)
        try:
            self._publish(job, request, response)
        except InvalidHandle:  # deactivated meanwhile: the caller still gets its answer
            self.node.get_logger().warning('deactivated: an answer was not published')

    def _publish(self, job: Job, request: Any, response: Any) -> None:
        answer, stored_header = job.answer, job.tag.header
        self.answers.publish(
            conversions.answer_message(SpatialAnswer(), request, response, stored_header)
        )
        if self.markers.get_subscription_count() > 0 and answer.regions_3d:
            types = SimpleNamespace(MarkerArray=MarkerArray, Marker=Marker, Point=Point)
            self.markers.publish(
                answer_markers(
                    types, stored_header, answer, answer.question_region_ids, answer.floor
                )
            )
        if self.annotated.get_subscription_count() > 0:
            frame = job.frame()
            caption = f'{request.question} -> {answer.text} [{answer.source}]'
            image = annotate(frame.rgb, frame.masks, frame.region_ids, caption)
            self.annotated.publish(numpy_to_imgmsg(image, 'rgb8', header=stored_header))

    def _log(self, request: Any, response: Any) -> None:
        question = request.question
        if len(question) > 200:
            question = f'{question[:200]}... ({len(question)} characters)'
        outcome = response.answer if response.success else 'error: ' + response.error
        self.node.get_logger().info(
            f'{question!r} {list(request.region_ids)} -> {outcome!r} '
            f'({response.latency_ms:.0f} ms, batch of {response.batch_size})'
        )
