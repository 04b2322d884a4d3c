"""Runs moto's server like `.venv/bin/moto_server`, with the same arguments
(e.g. `-H 127.0.0.1 -p PORT`), and also exits when stdin reaches EOF if
SHARDLINE_EXIT_ON_STDIN_EOF=1, so a server whose test process died without
cleaning up does not outlive it (the test holds the write end of the pipe)."""

import os
import sys
import threading

if os.environ.get("SHARDLINE_EXIT_ON_STDIN_EOF") == "1":

    def _watch_stdin() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            os._exit(0)

    threading.Thread(target=_watch_stdin, name="stdin-eof", daemon=True).start()

from moto.server import main  # noqa: E402

main(sys.argv[1:])
