"""A stand-in for Mailpit where its image cannot be pulled: an SMTP server on :1025 that keeps
every message in memory and answers the part of Mailpit's HTTP API (on :8025) that a client
checking delivered mail reads, in Mailpit's JSON shape:

    GET    /readyz                 200 when both servers run
    GET    /api/v1/messages        {"total", "messages": [{"ID", "MessageID", "From", "To",
                                    "Subject", "Created", "Size", "Snippet"}]}, newest first
    GET    /api/v1/message/<ID>    the summary plus "Text" and "HTML"
    DELETE /api/v1/messages        every message deleted

No web UI, no search, no persistence. Debian's python3-aiosmtpd and the standard library only.
"""
import email
import email.policy
import json
import signal
import sys
import threading
import uuid
from datetime import datetime, timezone
from email.utils import getaddresses
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

SMTP_PORT = 1025
HTTP_PORT = 8025

messages = []  # newest last; guarded by lock
lock = threading.Lock()


def addresses(value):
    return [{"Name": name, "Address": address} for name, address in getaddresses([value or ""]) if address]


def part_text(message, subtype):
    part = message.get_body(preferencelist=(subtype,))
    return part.get_content() if part is not None else ""


def summary(stored):
    message = stored["message"]
    sender = addresses(message.get("From"))
    return {
        "ID": stored["id"],
        "MessageID": (message.get("Message-ID") or "").strip("<>"),
        "From": sender[0] if sender else {"Name": "", "Address": stored["envelope_from"]},
        "To": addresses(message.get("To")),
        "Subject": str(message.get("Subject") or ""),
        "Created": stored["created"],
        "Size": stored["size"],
        "Snippet": " ".join(part_text(message, "plain").split())[:250],
    }


class Handler:
    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with lock:
            messages.append({
                "id": uuid.uuid4().hex,
                "envelope_from": envelope.mail_from,
                "message": message,
                "size": len(envelope.content),
                "created": datetime.now(timezone.utc).isoformat(),
            })
        return "250 Message accepted for delivery"


class Api(BaseHTTPRequestHandler):
    def send_json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/readyz":
            return self.send_json(200, {"status": "ok"})
        if self.path.split("?")[0] == "/api/v1/messages":
            with lock:
                listed = [summary(stored) for stored in reversed(messages)]
            return self.send_json(200, {"total": len(listed), "count": len(listed), "messages": listed})
        if self.path.startswith("/api/v1/message/"):
            wanted = self.path.rsplit("/", 1)[1]
            with lock:
                found = next((stored for stored in messages if stored["id"] == wanted), None)
            if found is None:
                return self.send_json(404, {"error": "message not found"})
            body = summary(found)
            body.update(Text=part_text(found["message"], "plain"), HTML=part_text(found["message"], "html"))
            return self.send_json(200, body)
        return self.send_json(404, {"error": "not found"})

    def do_DELETE(self):
        if self.path == "/api/v1/messages":
            with lock:
                messages.clear()
            return self.send_json(200, {})
        return self.send_json(404, {"error": "not found"})

    def log_message(self, format, *args):  # one line per request is noise in a container log
        pass


def main():
    # PID 1 of its container: without a handler SIGTERM would be ignored and `stop` would wait to kill.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    smtp = Controller(Handler(), hostname="0.0.0.0", port=SMTP_PORT)
    smtp.start()
    print(f"mailcatcher: SMTP on :{SMTP_PORT}, API on :{HTTP_PORT}", flush=True)
    try:
        ThreadingHTTPServer(("0.0.0.0", HTTP_PORT), Api).serve_forever()
    finally:
        smtp.stop()


if __name__ == "__main__":
    main()
