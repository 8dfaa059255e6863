"""A reference-style subscriber: SUB socket, prefix filters, two frames per message.

Usage: sub.py ENDPOINT COUNT FILTER [FILTER ...]

Prints READY once connected, PROBE the first time a probe message (key starting with
"EVENT API one.probe.") arrives, then one JSON line {"key", "content"} per other message.
Exits after COUNT such messages, or with status 1 after 30 s without a message. CURVE keys as
curve_keys.py describes.
"""
import json
import sys

import zmq

import curve_keys

PROBE = b"EVENT API one.probe."


def main():
    endpoint, count, filters = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    curve_keys.apply(sub)
    for f in filters:
        sub.setsockopt(zmq.SUBSCRIBE, f.encode())
    sub.setsockopt(zmq.SUBSCRIBE, PROBE)
    sub.connect(endpoint)
    print("READY", flush=True)
    probed = False
    received = 0
    while received < count:
        if not sub.poll(30000):
            print("TIMEOUT", flush=True)
            sys.exit(1)
        key, content = sub.recv_multipart()
        if key.startswith(PROBE):
            if not probed:
                probed = True
                print("PROBE", flush=True)
            continue
        print(json.dumps({"key": key.decode("utf-8", "replace"),
                          "content": content.decode("utf-8", "replace")}), flush=True)
        received += 1


main()
