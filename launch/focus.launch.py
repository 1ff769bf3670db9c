"""Start the FOCUS lifecycle node (and optionally RViz).

    ros2 launch focus_ros focus.launch.py model:=llava-hf/llava-1.5-7b-hf image_topic:=/camera/image_raw
    ros2 launch focus_ros focus.launch.py params_file:=my_focus.yaml rviz:=true

Arguments: params_file, namespace, image_topic (remapped onto the node's ``image`` and
``image/compressed``), model (overrides model.path), device (overrides model.device),
use_sim_time, autostart (configure + activate through lifecycle events), rviz, log_level.
Empty ``model`` / ``device`` keep the values of the parameter file.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition

PACKAGE = "focus_ros"


def _truthy(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def _focus_node(context, *args, **kwargs):
    """The node and its auto-activation; resolved at launch time so empty overrides can be left out."""
    model = LaunchConfiguration("model").perform(context).strip()
    device = LaunchConfiguration("device").perform(context).strip()
    image_topic = LaunchConfiguration("image_topic").perform(context).strip()
    overrides = {
        "use_sim_time": _truthy(LaunchConfiguration("use_sim_time").perform(context)),
        "autostart": False,        # the lifecycle events below drive the transitions
    }
    if model:
        overrides["model.path"] = model
    if device:
        overrides["model.device"] = device
    remappings = []
    if image_topic and image_topic != "image":
        remappings = [("image", image_topic), ("image/compressed", image_topic.rstrip("/") + "/compressed")]

    node = LifecycleNode(
        package=PACKAGE,
        executable="focus_node",
        name="focus_node",
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("params_file"), overrides],
        remappings=remappings,
        ros_arguments=["--log-level", LaunchConfiguration("log_level")],
        output="screen",
        emulate_tty=True,
    )
    autostart = IfCondition(LaunchConfiguration("autostart"))
    configure = EmitEvent(
        event=ChangeState(lifecycle_node_matcher=matches_action(node),
                          transition_id=Transition.TRANSITION_CONFIGURE),
        condition=autostart,
    )
    activate_when_configured = RegisterEventHandler(
        OnStateTransition(
            target_lifecycle_node=node,
            start_state="configuring",
            goal_state="inactive",
            entities=[EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                                  transition_id=Transition.TRANSITION_ACTIVATE))],
        ),
        condition=autostart,
    )
    return [node, activate_when_configured, configure]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "focus.yaml"]),
                              description="parameter file (/**: ros__parameters:)"),
        DeclareLaunchArgument("namespace", default_value="focus", description="namespace of the node and its topics"),
        DeclareLaunchArgument("image_topic", default_value="image",
                              description="camera topic remapped onto the node's 'image' (its /compressed too)"),
        DeclareLaunchArgument("model", default_value="",
                              description="model directory or hub id (model.path); empty: the parameter file's"),
        DeclareLaunchArgument("device", default_value="",
                              description="auto | cpu | cuda (model.device); empty: the parameter file's"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (bag replay)"),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="configure and activate the lifecycle node automatically"),
        DeclareLaunchArgument("rviz", default_value="false",
                              description="start RViz with config/focus.rviz (relevance overlay and map)"),
        DeclareLaunchArgument("log_level", default_value="info", description="debug | info | warn | error"),
        OpaqueFunction(function=_focus_node),
        Node(
            package="rviz2",
            executable="rviz2",
            name="rviz2",
            arguments=["-d", PathJoinSubstitution([share, "config", "focus.rviz"])],
            parameters=[{"use_sim_time": LaunchConfiguration("use_sim_time")}],
            condition=IfCondition(LaunchConfiguration("rviz")),
            output="screen",
        ),
    ])
