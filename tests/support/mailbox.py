"""Reads the messages an SMTP sink (or the .eml outbox) has received."""
import email
import email.policy
import time
from pathlib import Path


class Mailbox:
    def __init__(self, folder):
        self.folder = Path(folder)

    def messages(self):
        return [
            email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            for path in sorted(self.folder.glob("*.eml"), key=lambda p: p.stat().st_mtime)
        ]

    def to(self, address):
        return [message for message in self.messages() if address.lower() in str(message["To"]).lower()]

    def wait_for(self, address, count=1, timeout=20, sleep=time.sleep):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.to(address)
            if len(found) >= count:
                return found
            sleep(0.1)
        raise AssertionError(f"expected {count} message(s) to {address}, got {len(self.to(address))}")
