"""ROS 2 side of focus_ros: the lifecycle node, its parameters, and replaying bags over DDS.

``focus_node`` is the node (lifecycle and wiring); ``intake``, ``requests`` and ``worker`` do its
work (frames in, questions in and answered, inference), ``params`` declares its parameters and
reads them into a settings snapshot, ``results`` and ``image_msgs`` build its messages.
``frame_store`` and ``visualization`` are plain Python (numpy/OpenCV) and never import rclpy; the
ROS-free image conversions are :mod:`focus_ros.io.images`.
"""
