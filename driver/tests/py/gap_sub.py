"""A subscriber that recovers what the high-water mark dropped, by replay.

Usage: gap_sub.py PUB_ENDPOINT REPLAY_ENDPOINT

Subscribes to everything with a tiny receive queue and prints READY, then SYNCED once a first
message arrived. It then stops reading until a line "GO <expected>" arrives on stdin (so the
driver's queues overflow). Then it processes events in sequence order:
a message whose sequence number jumps past the next expected one triggers a replay of the
missing range; when the socket is quiet it asks the replay endpoint for the head and replays up
to it. It stops once EXPECTED events are processed and prints one JSON line per event
{"seq", "content", "via"} and a summary {"live", "replayed", "gaps"}.
"""
import json
import sys

import zmq


def main():
    pub_ep, replay_ep = sys.argv[1], sys.argv[2]
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVHWM, 1)
    sub.setsockopt(zmq.RCVBUF, 4096)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(pub_ep)
    req = ctx.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.setsockopt(zmq.RCVTIMEO, 20000)
    req.connect(replay_ep)
    print("READY", flush=True)

    state = {"last": 0, "live": 0, "replayed": 0, "gaps": 0}
    out = []

    def take(seq, content, via):
        out.append({"seq": seq, "content": content, "via": via})
        state["last"] = seq
        state[via] += 1

    def replay_until(target):
        # Replays (last, target]; target None means up to the head.
        while target is None or state["last"] < target:
            req.send(b"REPLAY %d 100" % state["last"])
            frames = req.recv_multipart()
            words = frames[0].decode().split()
            assert words[0] == "OK", frames[0]
            head = int(words[2])
            if target is None:
                target = head
            seen = None
            for i in range(1, len(frames), 2):
                seq = int(frames[i].decode().rsplit("#", 1)[1])
                if seq != seen and seq <= target:
                    assert seq == state["last"] + 1, (seq, state["last"])
                    take(seq, frames[i + 1].decode(), "replayed")
                seen = seq
            if int(words[3]) == 0:
                break

    def receive():
        key, content = sub.recv_multipart()
        seq = int(key.decode().rsplit("#", 1)[1])
        if seq <= state["last"]:
            return  # another key of an event already taken, or replayed already
        if seq > state["last"] + 1:
            state["gaps"] += 1
            replay_until(seq - 1)
        take(seq, content.decode(), "live")

    if not sub.poll(30000):
        print(json.dumps({"error": "no first message"}), flush=True)
        sys.exit(1)
    receive()
    print("SYNCED", flush=True)
    expected = int(sys.stdin.readline().split()[1])

    quiet = 0
    while state["last"] < expected:
        if sub.poll(300):
            quiet = 0
            receive()
        else:
            quiet += 1
            if quiet > 100:
                print(json.dumps({"error": "stalled", **state}), flush=True)
                sys.exit(1)
            replay_until(None)
    for e in out:
        print(json.dumps(e))
    print(json.dumps({"live": state["live"], "replayed": state["replayed"],
                      "gaps": state["gaps"]}), flush=True)


main()
