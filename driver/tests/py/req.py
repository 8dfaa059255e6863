"""A REQ client: sends requests and prints the replies.

Usage: req.py ENDPOINT < requests

Each input line is a JSON list of frames; a frame is a string (sent as UTF-8) or {"hex": "..."}
(raw bytes). For each request, one JSON line with the list of reply frames (decoded as UTF-8 with
replacement) is printed. A reply that does not come within 20 s (or REPLY_TIMEOUT_MS) ends the
script with status 1 after printing TIMEOUT. CURVE keys as curve_keys.py describes.
"""
import json
import sys

import zmq

import curve_keys


def frame(f):
    return bytes.fromhex(f["hex"]) if isinstance(f, dict) else f.encode()


def main():
    ctx = zmq.Context()
    req = ctx.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.setsockopt(zmq.RCVTIMEO, curve_keys.reply_timeout_ms(20000))
    curve_keys.apply(req)
    req.connect(sys.argv[1])
    for line in sys.stdin:
        if not line.strip():
            continue
        req.send_multipart([frame(f) for f in json.loads(line)])
        try:
            reply = req.recv_multipart()
        except zmq.Again:
            print("TIMEOUT", flush=True)
            sys.exit(1)
        print(json.dumps([r.decode("utf-8", "replace") for r in reply]), flush=True)


main()
