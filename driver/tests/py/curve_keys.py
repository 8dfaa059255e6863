"""CURVE keys for the test peers, read with pyzmq's own certificate reader (zmq.auth), so the
driver's key files are checked against a reader nobody here wrote.

CURVE_SERVER_KEY names the driver's public certificate and CURVE_CLIENT_KEY the peer's secret
one; with neither, a socket stays on ZeroMQ's NULL mechanism. REPLY_TIMEOUT_MS shortens the
wait for a reply that is expected never to come.
"""
import os

import zmq.auth


def apply(sock):
    server = os.environ.get("CURVE_SERVER_KEY")
    client = os.environ.get("CURVE_CLIENT_KEY")
    if server:
        sock.curve_serverkey = zmq.auth.load_certificate(server)[0]
    if client:
        public, secret = zmq.auth.load_certificate(client)
        sock.curve_publickey = public
        sock.curve_secretkey = secret


def reply_timeout_ms(default):
    return int(os.environ.get("REPLY_TIMEOUT_MS", default))
