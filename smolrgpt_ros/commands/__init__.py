"""`smolrgpt` subcommands that need ROS 2 at run time (rclpy is imported only in run())."""
