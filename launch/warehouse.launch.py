"""`ros2 launch smolrgpt_ros warehouse.launch.py`: the spatial-query node with its parameters."""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    default_params = os.path.join(
        get_package_share_directory('smolrgpt_ros'), 'config', 'warehouse.yaml'
    )
    return LaunchDescription([
        DeclareLaunchArgument('namespace', default_value='', description='node namespace'),
        DeclareLaunchArgument('params_file', default_value=default_params,
                              description='ROS parameters YAML'),
        Node(
            package='smolrgpt_ros',
            executable='spatial_query_node',
            name='spatial_query_node',
            namespace=LaunchConfiguration('namespace'),
            parameters=[LaunchConfiguration('params_file')],
            output='screen',
        ),
    ])
