"""Instruction intake: typed and spoken commands -> one validated instruction stream.

Plain Python (no ROS): text.py (normalise, validate, stop words, rate limit),
grammar.py (speech grammar generated from vla_ros.vocabulary), audio.py (PCM
decoding, resampling, voice activity detection), speech.py (offline
recognisers). The ROS side is vla_ros/nodes/instruction_node.py and
speech_node.py; see docs/INTAKE.md.
"""
