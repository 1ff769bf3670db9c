r"""Start the FOCUS lifecycle node (and optionally RViz).

    ros2 launch focus_ros focus.launch.py model:=/models/llava-1.5-7b-hf image_topic:=/camera/image_raw
    ros2 launch focus_ros focus.launch.py image_topic:=/camera/image_raw \
        depth_topic:=/camera/depth/image_raw camera_info_topic:=/camera/camera_info      # the demo bag's
    ros2 launch focus_ros focus.launch.py params_file:=my_focus.yaml rviz:=true
    ros2 launch focus_ros focus.launch.py model_params:=qwen2.5-vl-7b allow_download:=true   # from the hub

Arguments: params_file, model_params (a per-model file layered over params_file: a name in
config/models/ or a path), namespace, image_topic (remapped onto the node's ``image`` and
``image/compressed``), depth_topic and camera_info_topic (remapped onto ``depth/image`` and
``camera_info``), model (overrides model.path), device (overrides model.device), use_sim_time,
autostart (configure + activate through lifecycle events), rviz (RViz: the overlay as a camera
view with the 3-D markers over it, fixed frame ``camera_optical_frame``, no TF needed), log_level,
allow_model_change (sets the node's ``allow_model_change``: ``ros2 param set`` may change
``model.*`` while unconfigured) and allow_download (sets ``model.allow_download``: a hub id as the
model may be downloaded). Empty ``model`` / ``device`` keep the values of the parameter file.

Both are the launch's decision: they override the parameter files' ``allow_model_change`` and
``model.allow_download``, and unless ``allow_download`` is true the node runs with
``HF_HUB_OFFLINE=1``, so no model hub is contacted even by a later ``model.*`` change. With
``allow_download:=true`` the environment is left as it is (an ``HF_HUB_OFFLINE=1`` of your own
still blocks the download).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition

from launch import LaunchDescription

PACKAGE = "focus_ros"


def _truthy(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def model_params_file(value: str) -> str | None:
    """A per-model parameter file: a path as given, or a name of the package's config/models/*.yaml."""
    value = value.strip()
    if not value:
        return None
    if value.endswith((".yaml", ".yml")) or os.sep in value:
        path = os.path.expanduser(value)
    else:
        folder = os.path.join(get_package_share_directory(PACKAGE), "config", "models")
        path = os.path.join(folder, value + ".yaml")
        if not os.path.isfile(path):
            known = sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".yaml"))
            raise RuntimeError(f"model_params {value!r}: no config/models/{value}.yaml (known: {known})")
    if not os.path.isfile(path):
        raise RuntimeError(f"model_params: no such file {path!r}")
    return path


def _focus_node(context, *args, **kwargs):
    """The node and its auto-activation; resolved at launch time so empty overrides can be left out."""
    model = LaunchConfiguration("model").perform(context).strip()
    device = LaunchConfiguration("device").perform(context).strip()
    image_topic = LaunchConfiguration("image_topic").perform(context).strip()
    allow_download = _truthy(LaunchConfiguration("allow_download").perform(context))
    overrides = {
        "use_sim_time": _truthy(LaunchConfiguration("use_sim_time").perform(context)),
        "autostart": False,  # the lifecycle events below drive the transitions
        "allow_model_change": _truthy(LaunchConfiguration("allow_model_change").perform(context)),
        "model.allow_download": allow_download,
    }
    if model:
        overrides["model.path"] = model
    if device:
        overrides["model.device"] = device
    parameters = [LaunchConfiguration("params_file")]
    per_model = model_params_file(LaunchConfiguration("model_params").perform(context))
    if per_model:
        parameters.append(per_model)
    parameters.append(overrides)
    remappings = []
    if image_topic and image_topic != "image":
        remappings = [("image", image_topic), ("image/compressed", image_topic.rstrip("/") + "/compressed")]
    for argument, name in (("depth_topic", "depth/image"), ("camera_info_topic", "camera_info")):
        topic = LaunchConfiguration(argument).perform(context).strip()
        if topic and topic != name:
            remappings.append((name, topic))

    node = LifecycleNode(
        package=PACKAGE,
        executable="focus_node",
        name="focus_node",
        namespace=LaunchConfiguration("namespace"),
        parameters=parameters,
        remappings=remappings,
        ros_arguments=["--log-level", LaunchConfiguration("log_level")],
        # no hub is contacted unless downloads were allowed here (transformers reads this too)
        additional_env=None if allow_download else {"HF_HUB_OFFLINE": "1"},
        output="screen",
        emulate_tty=True,
    )
    autostart = IfCondition(LaunchConfiguration("autostart"))
    configure = EmitEvent(
        event=ChangeState(lifecycle_node_matcher=matches_action(node), transition_id=Transition.TRANSITION_CONFIGURE),
        condition=autostart,
    )
    activate_when_configured = RegisterEventHandler(
        OnStateTransition(
            target_lifecycle_node=node,
            start_state="configuring",
            goal_state="inactive",
            entities=[
                EmitEvent(
                    event=ChangeState(
                        lifecycle_node_matcher=matches_action(node), transition_id=Transition.TRANSITION_ACTIVATE
                    )
                )
            ],
        ),
        condition=autostart,
    )
    return [node, activate_when_configured, configure]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "params_file",
                default_value=PathJoinSubstitution([share, "config", "focus.yaml"]),
                description="parameter file (/**: ros__parameters:)",
            ),
            DeclareLaunchArgument(
                "model_params",
                default_value="",
                description="per-model parameters layered over params_file: a name in "
                "config/models (llava-1.5-7b, llava-onevision-7b, qwen2.5-vl-7b) or a path",
            ),
            DeclareLaunchArgument(
                "namespace", default_value="focus", description="namespace of the node and its topics"
            ),
            DeclareLaunchArgument(
                "image_topic",
                default_value="image",
                description="camera topic remapped onto the node's 'image' (its /compressed too)",
            ),
            DeclareLaunchArgument(
                "depth_topic",
                default_value="depth/image",
                description="registered depth image (16UC1 mm | 32FC1 m) remapped onto the node's 'depth/image'",
            ),
            DeclareLaunchArgument(
                "camera_info_topic",
                default_value="camera_info",
                description="the colour camera's CameraInfo remapped onto the node's 'camera_info'",
            ),
            DeclareLaunchArgument(
                "model",
                default_value="",
                description="model directory or hub id (model.path); empty: the parameter file's",
            ),
            DeclareLaunchArgument(
                "device", default_value="", description="auto | cpu | cuda (model.device); empty: the parameter file's"
            ),
            DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (bag replay)"),
            DeclareLaunchArgument(
                "autostart", default_value="true", description="configure and activate the lifecycle node automatically"
            ),
            DeclareLaunchArgument(
                "rviz",
                default_value="false",
                description="start RViz with config/focus.rviz: the relevance overlay as a camera view (through "
                "its camera_info) with the target markers over it, the markers in 3-D, and both images; "
                "fixed frame camera_optical_frame (no TF needed)",
            ),
            DeclareLaunchArgument("log_level", default_value="info", description="debug | info | warn | error"),
            DeclareLaunchArgument(
                "allow_model_change",
                default_value="false",
                description="let 'ros2 param set' change model.* while the node is unconfigured (false: the "
                "model is fixed at start)",
            ),
            DeclareLaunchArgument(
                "allow_download",
                default_value="false",
                description="allow a hub id as the model (model.allow_download; pin model.revision); false: "
                "HF_HUB_OFFLINE=1 and a hub id fails configure",
            ),
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
        ]
    )
