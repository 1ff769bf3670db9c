"""Per-target results and "not found" over real DDS: the real node with the embedded model, asked about
a synthetic frame with a red circle on the left and a blue square on the right (known boxes).

* a question about an absent colour is answered from the best view with ``STATUS_NOT_FOUND``,
  ``found`` false, and says why (the best existence confidence and ``search.exist_threshold``);
* a present colour is ``STATUS_OK`` with its target confirmed inside its own box;
* a relation question gives two target results, each with its own box (not the union), and
  ``selected_roi`` is the view the answer was read from: their union;
* a method that does not search per target (vanilla) sends no target results.

The absent colour asked is green, far from both present hues: the embedded model's best existence
confidence for it on this frame is 0.003, far below the default threshold 0.5 (0.99 / 0.97 for the
present red and blue), so the default ``search.exist_threshold`` is used. Hues next to a present
object's are hard negatives for the committed model: purple on the red circle 0.51, orange 0.38,
yellow 0.19 (the seven-stage model before it: 0.07, 0.002, 0.009).
"""

import numpy as np
import pytest
from action_msgs.msg import GoalStatus
from rcl_interfaces.msg import Log
from rclpy.logging import LoggingSeverity
from rclpy.parameter import Parameter
from ros_helpers import NodeHarness

from focus_ros.action import Query
from focus_ros.core.config import default_model_path
from focus_ros.core.geometry import Box
from focus_ros.core.results import TargetOutcome
from focus_ros.eval.scene_draw import draw_texture
from focus_ros.eval.scenes import draw_object
from focus_ros.msg import FocusResult
from focus_ros.ros.results import NOTE_NO_REGION, target_result

WIDTH, HEIGHT = 640, 480
BASE = {"method": "focus", "prefill_on_arrival": False, "max_frame_age": 0.0}


def scene():
    """A textured frame with a red circle (left) and a blue square (right); their tight boxes."""
    rng = np.random.default_rng(3)
    rgb = np.clip(draw_texture(rng, WIDTH, HEIGHT), 0, 255).astype(np.uint8)
    red = draw_object(rgb, "circle", "red", 160, 240, 60)
    blue = draw_object(rgb, "square", "blue", 480, 240, 60)
    return rgb, {"red object": red, "blue object": blue}


@pytest.fixture(scope="module")
def ros():
    # its own namespace: it reads /rosout (see ros_helpers.RosoutLog)
    harness = NodeHarness({"model.path": default_model_path(), **BASE}, namespace="focus_targets")
    harness.node.get_logger().set_level(LoggingSeverity.INFO)  # the per-answer lines
    yield harness
    harness.close()


@pytest.fixture(scope="module")
def frame(ros):
    rgb, boxes = scene()
    header = ros.publish_frame(rgb, frame_id="targets_cam")
    return header, boxes


@pytest.fixture(autouse=True)
def base_settings(ros):
    assert all(r.successful for r in ros.node.set_parameters([Parameter(k, value=v) for k, v in BASE.items()]))
    yield


def corners(roi):
    return roi.x_offset, roi.y_offset, roi.x_offset + roi.width, roi.y_offset + roi.height


def overlaps(roi, box):
    x0, y0, x1, y1 = corners(roi)
    return roi.width > 0 and roi.height > 0 and x0 < box[2] and box[0] < x1 and y0 < box[3] and box[1] < y1


def test_a_question_about_an_absent_colour_is_not_found_and_answered_from_the_best_view(ros, frame, rosout):
    header, _ = frame
    threshold = ros.node.get_parameter("search.exist_threshold").value
    res = ros.ask("What shape is the green object?")
    result = res.result
    assert result.status == FocusResult.STATUS_NOT_FOUND and not result.found
    assert result.answer and result.header == header and not result.error
    (target,) = result.target_results
    assert target.phrase == "green object" and not target.found
    assert 0.0 <= target.confidence < threshold
    assert target.roi.width > 0 and target.roi.height > 0  # the best view it was answered from
    # an answer all the same: Ask succeeds, and its message says that nothing was confirmed, and how sure it was
    assert res.success
    assert res.message.startswith(result.answer) and "no target was confirmed" in res.message
    assert f"{target.confidence:.2f}" in res.message and f"search.exist_threshold {threshold:.2f}" in res.message
    # and the node's log line about it says so, with the request id
    rosout.wait(result.request_id, "no target was confirmed", f"search.exist_threshold {threshold:.2f}", level=Log.INFO)


def test_an_absent_colour_through_the_action_succeeds_with_status_not_found(ros, frame):
    handle = ros.result_of(
        ros.action_client().send_goal_async(Query.Goal(question="What shape is the green object?")), 10.0
    )
    response = ros.result_of(handle.get_result_async())
    assert response.status == GoalStatus.STATUS_SUCCEEDED  # answered (from the best view)
    result = response.result.result
    assert result.status == FocusResult.STATUS_NOT_FOUND and not result.found and result.answer
    assert [t.found for t in result.target_results] == [False]


def test_a_present_colour_is_confirmed_in_its_own_box(ros, frame):
    header, boxes = frame
    threshold = ros.node.get_parameter("search.exist_threshold").value
    res = ros.ask("What shape is the red object?")
    result = res.result
    assert res.success and res.message == result.answer
    assert result.status == FocusResult.STATUS_OK and result.found
    (target,) = result.target_results
    assert target.phrase == "red object" and target.found and target.confidence >= threshold
    assert overlaps(target.roi, boxes["red object"]) and not overlaps(target.roi, boxes["blue object"])
    # no depth here: no point, and a note why (not "no region kept": it has one); the point's header is the frame's
    assert not target.has_point and target.point.header == header and target.note not in ("", NOTE_NO_REGION)


def test_a_relation_question_gives_each_target_its_own_box_and_the_view_is_their_union(ros, frame):
    _, boxes = frame
    result = ros.ask("Is the red object to the left or right of the blue object?").result
    assert result.status == FocusResult.STATUS_OK and result.found
    assert [t.phrase for t in result.target_results] == ["red object", "blue object"]
    red, blue = result.target_results
    assert red.found and blue.found
    assert overlaps(red.roi, boxes["red object"]) and not overlaps(red.roi, boxes["blue object"])
    assert overlaps(blue.roi, boxes["blue object"]) and not overlaps(blue.roi, boxes["red object"])
    # selected_roi is the view the answer was read from: both boxes, so neither target's own
    r, b = corners(red.roi), corners(blue.roi)
    union = (min(r[0], b[0]), min(r[1], b[1]), max(r[2], b[2]), max(r[3], b[3]))
    assert corners(result.selected_roi) == union
    assert corners(result.selected_roi) not in (r, b)


def test_a_method_that_does_not_search_per_target_sends_no_target_results_and_is_ok(ros, frame):
    ros.set_params({"method": "vanilla"})
    result = ros.ask("What shape is the green object?").result
    assert result.status == FocusResult.STATUS_OK and result.answer
    assert list(result.target_results) == [] and not result.found


def test_a_target_without_a_kept_region_has_a_zero_roi_and_says_so():
    """The conversion of a target for which the search kept nothing (e.g. a degenerate relevance map)."""
    from std_msgs.msg import Header

    header = Header(frame_id="cam")
    header.stamp.sec = 7
    none = target_result(TargetOutcome("cup"), WIDTH, HEIGHT, header)
    assert (none.phrase, none.found, none.has_point, none.note) == ("cup", False, False, NOTE_NO_REGION)
    assert corners(none.roi) == (0, 0, 0, 0) and none.confidence == -1.0 and none.point.header == header
    kept = target_result(TargetOutcome("cup", Box(10.4, 20.0, 30.0, 640.0), 0.75, True), WIDTH, HEIGHT, header)
    assert corners(kept.roi) == (10, 20, 30, HEIGHT) and kept.found and kept.confidence == 0.75 and kept.note == ""
