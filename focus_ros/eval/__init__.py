"""Evaluation of focus_ros (ROS-free): the synthetic scenes and their renderers, the benchmark behind
``focus-bench`` and the readers of published benchmarks. Imports the runtime (:mod:`focus_ros.core`);
the runtime never imports this package. Modules load on first use: importing this package costs nothing.
"""
