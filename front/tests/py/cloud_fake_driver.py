"""A stand-in for the HM_MAD driver, for the oned-lite tests.

Usage: cloud_fake_driver.py --dir DIR

It speaks the MAD line protocol on stdin/stdout and works in DIR:

- DIR/record: every line received is appended as "<pid> <line>", plus "<pid> START" when the
  process starts and "<pid> EXIT <code>" when it leaves. Flushed after every line.
- DIR/refuse: while this file exists the driver exits with status 3 at once, without answering
  INIT (a driver that keeps crashing).
- DIR/init_failure: while this file exists the driver answers INIT with "INIT FAILURE - -"
  (recorded as "<pid> ANSWERED INIT FAILURE") and keeps running.
- DIR/control: polled every 20 ms; every new line is a command:
    SEND <text>   writes <text> as one line to stdout (a result line, a LOG line, anything)
    EXIT <code>   exits at once with that status (a crash)
    HOLD          stops reading stdin (a driver that does not read its input)
    READ          reads stdin again

It answers INIT with "INIT SUCCESS - -" (recorded as "<pid> ANSWERED INIT SUCCESS") and exits 0
on FINALIZE or at the end of stdin.
"""

import os
import select
import sys

PID = os.getpid()


def main():
    args = sys.argv[1:]
    if len(args) != 2 or args[0] != "--dir":
        sys.stderr.write("usage: cloud_fake_driver.py --dir DIR\n")
        return 2
    work = args[1]
    record = open(os.path.join(work, "record"), "a", encoding="utf-8")

    def note(text):
        record.write("%d %s\n" % (PID, text))
        record.flush()

    def leave(code):
        note("EXIT %d" % code)
        record.close()
        sys.stdout.flush()
        os._exit(code)

    note("START")
    if os.path.exists(os.path.join(work, "refuse")):
        leave(3)

    control_path = os.path.join(work, "control")
    control_offset = 0
    if os.path.exists(control_path):
        # Commands written for an earlier incarnation are not replayed.
        control_offset = os.path.getsize(control_path)

    out = sys.stdout
    pending = b""
    holding = False
    while True:
        ready, _, _ = select.select([] if holding else [0], [], [], 0.02)
        if ready:
            chunk = os.read(0, 65536)
            if not chunk:
                leave(0)
            pending += chunk
            while b"\n" in pending:
                raw, pending = pending.split(b"\n", 1)
                line = raw.decode("utf-8", "replace")
                note(line)
                word = line.split(" ", 1)[0]
                if word == "INIT":
                    if os.path.exists(os.path.join(work, "init_failure")):
                        note("ANSWERED INIT FAILURE")
                        out.write("INIT FAILURE - -\n")
                    else:
                        note("ANSWERED INIT SUCCESS")
                        out.write("INIT SUCCESS - -\n")
                    out.flush()
                elif word == "FINALIZE":
                    leave(0)
        if os.path.exists(control_path):
            with open(control_path, "rb") as f:
                f.seek(control_offset)
                data = f.read()
            # Only whole lines are commands.
            end = data.rfind(b"\n")
            if end >= 0:
                control_offset += end + 1
                for command in data[: end + 1].decode("utf-8").splitlines():
                    verb, _, rest = command.partition(" ")
                    if verb == "SEND":
                        out.write(rest + "\n")
                        out.flush()
                    elif verb == "EXIT":
                        leave(int(rest or "1"))
                    elif verb == "HOLD":
                        holding = True
                    elif verb == "READ":
                        holding = False


if __name__ == "__main__":
    sys.exit(main())
