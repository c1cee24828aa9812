"""`ros2 launch smolrgpt_ros warehouse.launch.py`: the spatial-query node on a camera.

Arguments override the parameters file; topics are remapped onto the camera's. Example:
  ros2 launch smolrgpt_ros warehouse.launch.py backend:=onnxruntime \
      rgb_topic:=/camera/color/image_raw depth_topic:=/camera/aligned_depth/image_raw
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

# launch argument -> node parameter it sets (checked against NodeConfig by the tests)
PARAMETER_ARGUMENTS = {
    'model': 'model.checkpoint_dir',
    'backend': 'model.backend',
    'device': 'model.device',
    'dtype': 'model.dtype',
    'use_sim_time': 'use_sim_time',
}
# node topic -> launch argument naming the topic it is remapped to
TOPIC_ARGUMENTS = {
    'rgb/image': 'rgb_topic',
    'depth/image': 'depth_topic',
    'regions': 'regions_topic',
}


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory('smolrgpt_ros')
    arguments = [
        DeclareLaunchArgument('namespace', default_value='', description='node namespace'),
        DeclareLaunchArgument(
            'params_file',
            default_value=os.path.join(share, 'config', 'warehouse.yaml'),
            description='ROS 2 parameters YAML of the node',
        ),
        DeclareLaunchArgument(
            'model', default_value='', description='checkpoint directory; empty = embedded model'
        ),
        DeclareLaunchArgument(
            'backend', default_value='torch', description='torch | onnxruntime | tensorrt'
        ),
        DeclareLaunchArgument('device', default_value='cpu', description='cpu | cuda | cuda:N'),
        DeclareLaunchArgument(
            'dtype', default_value='float32', description='float32 | float16 | bfloat16'
        ),
        DeclareLaunchArgument(
            'use_sim_time', default_value='false', description='follow /clock (rosbag replay)'
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
            'regions_topic', default_value='/regions', description='smolrgpt_ros/RegionMaskArray'
        ),
    ]
    node = Node(
        package='smolrgpt_ros',
        executable='spatial_query_node',
        name='spatial_query_node',
        namespace=LaunchConfiguration('namespace'),
        parameters=[
            LaunchConfiguration('params_file'),
            {param: LaunchConfiguration(arg) for arg, param in PARAMETER_ARGUMENTS.items()},
        ],
        remappings=[(topic, LaunchConfiguration(arg)) for topic, arg in TOPIC_ARGUMENTS.items()],
        output='screen',
        emulate_tty=True,
    )
    return LaunchDescription([*arguments, node])
