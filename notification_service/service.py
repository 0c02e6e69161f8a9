"""notification_service: turns user and image events into emails.

- `user_service.user_registered` -> a welcome email to the new address.
- `upload_service.image_completed` / `image_failed` -> one email to the image's owner, whose address
  comes with the event (`owner`, shared/owner.py), or else from `user_service.get_user` over RPC.

Events are delivered at least once. Each email's Message-ID is derived from its event
(`<image-ready.{image_id}@domain>`), so a redelivery produces the same message: the mail folder
overwrites its own file, and a mail server or client that deduplicates by Message-ID sees one message.
An owner that no longer exists is logged and the event dropped; a failed delivery raises
`MailDeliveryError` (logged without addresses) and the event is not retried yet.
"""
import logging

from notification_service import templates
from notification_service.dependencies import SentMail
from notification_service.mailer import MailDeliveryError, Mailer
from shared import errors, logs, owner
from shared.delivery import Delivery, retrying_event_handler, retry_when_unavailable
from shared.health import check_amqp
from shared.service import Service
from shared.settings import setting
from shared.tracing import TracedRpcProxy

log = logging.getLogger(__name__)


def public_base_url(config):
    """Where a reader's browser reaches the gateway: `PUBLIC_BASE_URL`, else the local gateway."""
    base_url = setting(config, "PUBLIC_BASE_URL") or f"http://127.0.0.1:{setting(config, 'GATEWAY_PORT')}"
    return base_url.rstrip("/")


def absolute_url(config, path):
    """upload_service gives a path (`/api/images/<id>/download`); a reader needs a full URL."""
    path = str(path or "")
    return path if path.startswith(("http://", "https://")) else public_base_url(config) + "/" + path.lstrip("/")


class NotificationService(Service):
    name = "notification_service"

    mailer = Mailer()
    users = TracedRpcProxy("user_service")  # timeout: RPC_TIMEOUT_SECONDS
    sent = SentMail()
    delivery = Delivery()

    @retrying_event_handler("user_service", "user_registered")
    def send_welcome(self, payload):
        user_id = payload.get("user_id") or payload.get("id")
        logs.bind(user_id=user_id)
        if not payload.get("email"):
            log.error("user_registered event without an email address: dropped")
            return
        user = {"id": user_id, "name": payload.get("name"), "email": payload["email"]}
        with retry_when_unavailable(self.delivery, payload):
            self._send(templates.welcome, user)

    @retrying_event_handler("upload_service", "image_completed")
    def send_image_ready(self, payload):
        with retry_when_unavailable(self.delivery, payload):
            user = self._owner(payload)
            if user is None:
                return
            output = payload.get("output") or {}
            # The signed link (contract "Delivery") opens in a browser as it is; events recorded
            # before signed links existed carry only the API's download path.
            link = output.get("email_url") or output.get("download_url")
            link_days = max(1, round(output.get("email_url_ttl", 0) / 86400)) if output.get("email_url") else 7
            self._send(templates.image_ready, user, payload, absolute_url(self.config, link), link_days=link_days)

    @retrying_event_handler("upload_service", "image_failed")
    def send_image_failed(self, payload):
        with retry_when_unavailable(self.delivery, payload):
            user = self._owner(payload)
            if user is None:
                return
            self._send(templates.image_failed, user, payload)

    def _owner(self, payload):
        """The image owner's {id, name, email}, or None (logged) when there is no one to write to."""
        logs.bind(user_id=payload.get("user_id"), image_id=payload.get("image_id"))
        if not payload.get("user_id") or not payload.get("image_id"):
            log.error("image event without user_id or image_id: dropped")
            return None
        contact = owner.contact(payload.get("owner"))
        if contact:
            return {"id": payload["user_id"], **contact}  # brought by the event (shared/owner.py)
        try:
            return self.users.get_user(payload["user_id"])
        except (errors.NotFound, errors.ValidationError):
            log.warning("the image's owner no longer exists: no email sent")
            return None

    def _send(self, template, *args, **options):
        mail_from = setting(self.config, "MAIL_FROM")
        try:
            message = template(*args, mail_from=mail_from, **options)
        except ValueError as exc:  # e.g. an address that is not exactly one valid mailbox
            log.error("cannot build the %s email (%s): dropped", template.__name__, type(exc).__name__)
            return
        message_id = str(message["Message-ID"])
        reservation = self.sent.reserve(message_id)
        if reservation.state == "sent":
            log.info("%s already sent: not sent again", message_id)
            return
        if reservation.state == "elsewhere":
            # The same event delivered twice at once: the other worker sends; this delivery comes
            # back later and finds the email sent (or the reservation given up, and sends it).
            raise errors.ServiceUnavailable(f"{message_id} is being sent by another worker")
        try:
            self.mailer.send(message)
        except BaseException as exc:
            self.sent.release(message_id, reservation)
            if isinstance(exc, MailDeliveryError) and not exc.permanent:
                raise errors.ServiceUnavailable(f"mail server unavailable: {exc}") from exc
            raise  # refused for good (dead-lettered for a person to see), or not a delivery failure
        self.sent.mark_sent(message_id)

    def _checks(self):
        return {"amqp": check_amqp(setting(self.config, "AMQP_URI")), "smtp": self.mailer.check}
