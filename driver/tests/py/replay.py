"""Reads the whole journal through the replay endpoint.

Usage: replay.py ENDPOINT AFTER MAX [--wait-oldest N]

Sends REPLAY <after> <MAX> until the reply reaches head, and prints one JSON line per event:
{"seq", "keys", "content"}, then a last line {"oldest", "head"}. Checks that every reply is in
order and that pairs carry the sequence token of their event. A reply that does not come
within 20 s (or REPLY_TIMEOUT_MS) ends it with {"error": "TIMEOUT"} and status 1. CURVE keys as
curve_keys.py describes. With --wait-oldest, it first asks
for the header (REPLAY 0 0) until the oldest retained event is at least N (for at most 30 s).
"""
import json
import sys
import time

import zmq

import curve_keys


def main():
    endpoint, after, page = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ctx = zmq.Context()
    req = ctx.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.setsockopt(zmq.RCVTIMEO, curve_keys.reply_timeout_ms(20000))
    curve_keys.apply(req)
    req.connect(endpoint)
    if len(sys.argv) > 5 and sys.argv[4] == "--wait-oldest":
        wanted = int(sys.argv[5])
        for _ in range(300):
            req.send(b"REPLAY 0 0")
            if int(req.recv().decode().split()[1]) >= wanted:
                break
            time.sleep(0.1)
    oldest = head = None
    while True:
        req.send(b"REPLAY %d %d" % (after, page))
        try:
            frames = req.recv_multipart()
        except zmq.Again:
            print(json.dumps({"error": "TIMEOUT"}), flush=True)
            sys.exit(1)
        words = frames[0].decode().split()
        if words[0] != "OK":
            print(json.dumps({"error": frames[0].decode()}), flush=True)
            sys.exit(1)
        oldest, head, n = int(words[1]), int(words[2]), int(words[3])
        events = []
        for i in range(1, len(frames), 2):
            key = frames[i].decode("utf-8", "replace")
            body, token = key.rsplit(" ", 1)
            seq = int(token.lstrip("#"))
            if not events or events[-1]["seq"] != seq:
                events.append({"seq": seq, "keys": [], "content": frames[i + 1].decode()})
            events[-1]["keys"].append(key)
        assert len(events) == n, (len(events), n)
        for e in events:
            assert e["seq"] > after, (e["seq"], after)
            after = e["seq"]
            print(json.dumps(e), flush=True)
        if n == 0 or after >= head:
            break
    print(json.dumps({"oldest": oldest, "head": head}), flush=True)


main()
