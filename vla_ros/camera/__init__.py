"""Camera ingestion: decode any camera's frames, pace them, and shape them for the policy.

convert (raw buffers <-> arrays), preprocess (policy input size), sources (device,
video, image folder), pipeline (throttle, newest-frame worker, stale detection,
statistics) are plain Python; ros_image is the thin ROS message adapter.
"""
