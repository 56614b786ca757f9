"""`vla-ros record --out FILE.mcap [--topics T ...] [--duration S]`: record the pipeline's topics to MCAP."""
from __future__ import annotations

import argparse
import signal
import sys
import threading


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from vla_ros.recording import DEFAULT_TOPICS

    parser.add_argument("--out", required=True, help="MCAP file to write (replaced when it exists)")
    parser.add_argument("--topics", nargs="+", default=list(DEFAULT_TOPICS), metavar="TOPIC",
                        help=f"topics to record (default: {' '.join(DEFAULT_TOPICS)})")
    parser.add_argument("--duration", type=float, default=0.0,
                        help="stop after this many seconds (default 0: until Ctrl-C)")


def run(args: argparse.Namespace) -> int:
    from vla_ros.recording import RecordingError, record

    if args.duration < 0:
        print("error: --duration must be >= 0", file=sys.stderr)
        return 2
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda _signum, _frame: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    print(f"recording {len(args.topics)} topic(s) to {args.out}" +
          (f" for {args.duration:g} s" if args.duration else "; Ctrl-C stops"), flush=True)
    try:
        recorder = record(args.out, args.topics, args.duration, stop,
                          on_subscribed=lambda topic, type_name: print(f"  subscribed {topic} ({type_name})", flush=True))
    except (RecordingError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    width = max(len(topic) for topic in recorder.counts)
    print(f"wrote {recorder.path}:")
    for topic, count in recorder.counts.items():
        print(f"  {topic:<{width}}  {count:>7} message(s)" + ("" if topic in recorder.types else "  (never published)"))
    return 0
