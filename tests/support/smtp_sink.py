"""A real SMTP server for the tests: accepts every message and writes it as a .eml file.

Run as a separate process (aiosmtpd's asyncio loop must not share the tests' eventlet hub):
    python -m tests.support.smtp_sink --port 2525 --dir /tmp/mail
"""
import argparse
import os
import signal
import threading
import uuid

from aiosmtpd.controller import Controller


class SaveToFolder:
    def __init__(self, folder):
        self.folder = folder

    async def handle_DATA(self, server, session, envelope):
        name = f"{uuid.uuid4().hex}.eml"
        temporary = os.path.join(self.folder, f".{name}.tmp")
        with open(temporary, "wb") as message_file:
            message_file.write(envelope.original_content or envelope.content)
        os.replace(temporary, os.path.join(self.folder, name))
        return "250 Message accepted for delivery"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    controller = Controller(SaveToFolder(args.dir), hostname=args.host, port=args.port)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"smtp sink listening on {args.host}:{args.port}", flush=True)
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
