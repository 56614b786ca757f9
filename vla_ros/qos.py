"""QoS profiles, chosen once for the whole graph (docs/ARCHITECTURE.md lists them per topic)."""
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

# Camera frames, joint states as consumed by the pipeline: the newest sample wins,
# a lost one is replaced by the next.
SENSOR = qos_profile_sensor_data

# Streams whose every message matters while the graph runs: joint commands,
# joint states as published (rviz and robot_state_publisher subscribe reliable),
# action chunks, status.
RELIABLE = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)

# Instructions and latched state (e-stop): a node that starts late still gets the
# current value.
LATCHED = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)

# Raw audio: every block of an utterance is needed for recognition.
AUDIO = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=200,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
