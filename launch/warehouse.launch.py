"""`ros2 launch smolrgpt_ros warehouse.launch.py`: the spatial-query node on a camera.

Parameters come from `params_file`; a launch argument overrides its parameter only when it is
given (its default is empty), so a custom YAML is never overwritten by the launch defaults.
Topics are remapped onto the camera's. Example:
  ros2 launch smolrgpt_ros warehouse.launch.py params_file:=robot.yaml backend:=onnxruntime \
      rgb_topic:=/camera/color/image_raw depth_topic:=/camera/aligned_depth/image_raw
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from smolrgpt_core.inference.backends import BACKENDS, DTYPE_CHOICES

# launch argument -> node parameter it sets (checked against NodeConfig by the tests)
PARAMETER_ARGUMENTS = {
    'model': 'model.checkpoint_dir',
    'backend': 'model.backend',
    'device': 'model.device',
    'dtype': 'model.dtype',
    'regions_form': 'regions.form',
    'use_sim_time': 'use_sim_time',
}
# node topic -> launch argument naming the topic it is remapped to
TOPIC_ARGUMENTS = {
    'rgb/image': 'rgb_topic',
    'depth/image': 'depth_topic',
    'regions': 'regions_topic',
    'instances': 'instances_topic',
}
UNSET = ''  # a parameter argument left at this keeps the params file's value


def node_parameters(params_file, given, value_of=LaunchConfiguration):
    """The node's `parameters`: the params file, then only the launch arguments that were
    given (later entries win in launch_ros). `given` maps each argument to its resolved text;
    the override keeps the substitution (`value_of(arg)`), so launch_ros types it as YAML."""
    overrides = {
        PARAMETER_ARGUMENTS[arg]: value_of(arg) for arg, text in given.items() if text != UNSET
    }
    return [params_file, overrides] if overrides else [params_file]


def _node(context, *args, **kwargs):
    given = {arg: LaunchConfiguration(arg).perform(context) for arg in PARAMETER_ARGUMENTS}
    return [
        Node(
            package='smolrgpt_ros',
            executable='spatial_query_node',
            name='spatial_query_node',
            namespace=LaunchConfiguration('namespace'),
            parameters=node_parameters(LaunchConfiguration('params_file'), given),
            remappings=[
                (topic, LaunchConfiguration(arg)) for topic, arg in TOPIC_ARGUMENTS.items()
            ],
            output='screen',
            emulate_tty=True,
        )
    ]


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory('smolrgpt_ros')
    keep = ' (default: the params file)'
    arguments = [
        DeclareLaunchArgument('namespace', default_value='', description='node namespace'),
        DeclareLaunchArgument(
            'params_file',
            default_value=os.path.join(share, 'config', 'warehouse.yaml'),
            description='ROS 2 parameters YAML of the node',
        ),
        DeclareLaunchArgument(
            'model',
            default_value=UNSET,
            description='checkpoint directory or hf://org/name' + keep,
        ),
        DeclareLaunchArgument(
            'backend', default_value=UNSET, description=' | '.join(BACKENDS) + keep
        ),
        DeclareLaunchArgument(
            'device', default_value=UNSET, description='cpu | cuda | cuda:N | auto' + keep
        ),
        DeclareLaunchArgument(
            'dtype', default_value=UNSET, description=' | '.join(DTYPE_CHOICES) + keep
        ),
        DeclareLaunchArgument(
            'regions_form',
            default_value=UNSET,
            description='masks (RegionMaskArray) | instances (label image + RegionArray)' + keep,
        ),
        DeclareLaunchArgument(
            'use_sim_time', default_value=UNSET, description='follow /clock (rosbag replay)'
        ),
        DeclareLaunchArgument(
            'rgb_topic',
            default_value='/camera/color/image_raw',
            description='sensor_msgs/Image, rgb8 or bgr8',
        ),
        DeclareLaunchArgument(
            'depth_topic',
            default_value='/camera/depth/image_rect_raw',
            description='sensor_msgs/Image, 16UC1 mm, 32FC1 m or mono8',
        ),
        DeclareLaunchArgument(
            'regions_topic',
            default_value='/regions',
            description='smolrgpt_ros/RegionMaskArray, or RegionArray with regions_form instances',
        ),
        DeclareLaunchArgument(
            'instances_topic',
            default_value='/instances',
            description='instance-label image (mono8, mono16, 32SC1), regions_form instances',
        ),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_node)])
