"""instruction_node: typed and spoken commands -> one validated instruction stream.

A thin wrapper over vla_ros/intake/text.py (InstructionFilter): every input is
normalised and judged the same way, whether typed or recognised by speech_node.
docs/INTAKE.md describes the rules.

Subscribes
  /voice_command             std_msgs/String              RELIABLE  typed text (volatile: matches any publisher)
  /speech/transcript         vla_ros/InstructionFeedback  RELIABLE  speech_node's recognised text + confidence
Publishes
  /vla/instruction           vla_ros/Instruction          LATCHED   each accepted instruction
  /vla/instruction_feedback  vla_ros/InstructionFeedback  RELIABLE  one per input: understood, accepted or why not
  /safety/estop              std_msgs/Bool                LATCHED   true when a stop phrase is heard (never false:
                                                                    the e-stop is reset by /safety/reset_estop)
  /diagnostics               counters, last instruction, 1 Hz
"""
from __future__ import annotations

import sys
import time
import uuid

from rclpy.node import Node
from std_msgs.msg import Bool, String

from vla_ros import qos
from vla_ros.intake.text import Decision, InstructionFilter
from vla_ros.msg import Instruction, InstructionFeedback
from vla_ros.node_common import DIAG_OK, DIAG_WARN, Diagnostics, Param, declare_parameters, positive, run_node

VOICE_COMMAND_TOPIC = "/voice_command"
TRANSCRIPT_TOPIC = "/speech/transcript"
INSTRUCTION_TOPIC = "/vla/instruction"
FEEDBACK_TOPIC = "/vla/instruction_feedback"
ESTOP_TOPIC = "/safety/estop"

PARAMS = [
    Param("max_length", 256, "longest accepted instruction, in characters (longer ones are rejected)", positive),
    Param("rate_limit", 2.0, "sustained instructions per second; faster input is rejected as flooding", positive),
    Param("rate_burst", 3, "instructions accepted back to back before the rate limit applies", positive),
    Param("log_throttle", 2.0, "s between repeated rejection log lines", positive),
]


class InstructionNode(Node):
    def __init__(self):
        super().__init__("instruction_node")
        self.params = declare_parameters(self, PARAMS)
        self.filter = InstructionFilter(self.params.max_length, self.params.rate_limit, self.params.rate_burst)
        self.counts = {"accepted": 0, "rejected": 0, "stops": 0}
        self.last_instruction = ""
        self.last_rejection = ""

        self.instruction_pub = self.create_publisher(Instruction, INSTRUCTION_TOPIC, qos.LATCHED)
        self.feedback_pub = self.create_publisher(InstructionFeedback, FEEDBACK_TOPIC, qos.RELIABLE)
        self.estop_pub = self.create_publisher(Bool, ESTOP_TOPIC, qos.LATCHED)
        # Volatile on purpose: a transient-local subscription would not match the
        # volatile publishers that `ros2 topic pub` and most UIs create.
        self.create_subscription(String, VOICE_COMMAND_TOPIC, self._on_text, qos.RELIABLE)
        self.create_subscription(InstructionFeedback, TRANSCRIPT_TOPIC, self._on_transcript, qos.RELIABLE)
        self.diagnostics = Diagnostics(self, self._diagnostics)
        self.get_logger().info(f"listening on {VOICE_COMMAND_TOPIC} and {TRANSCRIPT_TOPIC}")

    def _on_text(self, msg: String) -> None:
        self._handle(self.filter.process(msg.data, time.monotonic()), Instruction.SOURCE_TEXT, 1.0)

    def _on_transcript(self, msg: InstructionFeedback) -> None:
        # speech_node already rejected what it could not hear well (garbage audio, low
        # confidence); those are passed on unchanged. What it heard goes through the same
        # filter as typed text.
        if not msg.accepted:
            self._handle(Decision(msg.raw_text, "", accepted=False, is_stop=False, reason=msg.reason),
                         Instruction.SOURCE_SPEECH, msg.confidence)
            return
        self._handle(self.filter.process(msg.raw_text, time.monotonic()), Instruction.SOURCE_SPEECH, msg.confidence)

    def _handle(self, decision: Decision, source: int, confidence: float) -> None:
        now = self.get_clock().now().to_msg()
        feedback = InstructionFeedback(raw_text=decision.raw_text, text=decision.text, source=source,
                                       confidence=float(confidence), accepted=decision.accepted,
                                       is_stop=decision.is_stop, reason=decision.reason)
        feedback.header.stamp = now
        if decision.is_stop:
            # Straight to the safety filter, before anything else: the policy is bypassed.
            self.estop_pub.publish(Bool(data=True))
            self.counts["stops"] += 1
            self.get_logger().warning(f"stop phrase heard in '{decision.text}': emergency stop triggered")
        elif decision.accepted:
            instruction = Instruction(id=uuid.uuid4().hex[:12], text=decision.text, source=source,
                                      confidence=float(confidence))
            instruction.header.stamp = now
            self.instruction_pub.publish(instruction)
            feedback.id = instruction.id
            self.counts["accepted"] += 1
            self.last_instruction = decision.text
            self.get_logger().info(f"instruction {instruction.id}: '{decision.text}'")
        else:
            self.counts["rejected"] += 1
            self.last_rejection = decision.reason
            self.get_logger().warning(f"rejected {decision.raw_text[:80]!r}: {decision.reason}",
                                      throttle_duration_sec=self.params.log_throttle)
        self.feedback_pub.publish(feedback)

    def _diagnostics(self):
        level = DIAG_WARN if self.counts["stops"] else DIAG_OK
        message = "stop phrase heard: e-stop requested" if self.counts["stops"] else "ok"
        return [("intake", level, message, {**self.counts, "last_instruction": self.last_instruction,
                                             "last_rejection": self.last_rejection})]


def main(args=None):
    return run_node(InstructionNode, args)


if __name__ == "__main__":
    sys.exit(main())
