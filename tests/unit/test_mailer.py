"""SMTP_URL parsing, the SMTP conversation (against a stand-in for smtplib), and the .eml outbox."""
import email
import email.policy
import os
import smtplib
from unittest import mock

import pytest

from notification_service import mailer, templates
from notification_service.mailer import (
    MailClient,
    MailDeliveryError,
    MailFolderTransport,
    SmtpSettings,
    SmtpTransport,
    parse_smtp_url,
    transport_from_config,
)
from shared.config import REPO_ROOT

USER = {"id": "0b5e6d4c-3a2b-4c1d-8e9f-1a2b3c4d5e6f", "name": "Ada", "email": "ada@example.com"}


def welcome_message(user=USER):
    return templates.welcome(user, mail_from="Image Service <no-reply@imageproc.example>")


# -- SMTP_URL ------------------------------------------------------------------------------------

@pytest.mark.parametrize("url", [None, "", "   "])
def test_no_url_means_outbox(url):
    assert parse_smtp_url(url) is None


@pytest.mark.parametrize("url, expected", [
    ("smtp://mail.example.com", SmtpSettings("mail.example.com", 25)),
    ("smtp://mail.example.com:2525", SmtpSettings("mail.example.com", 2525)),
    ("smtps://mail.example.com", SmtpSettings("mail.example.com", 465, implicit_tls=True)),
    ("SMTPS://mail.example.com:4650/", SmtpSettings("mail.example.com", 4650, implicit_tls=True)),
    ("smtp://[::1]:2525", SmtpSettings("::1", 2525)),
    ("smtp://bob:secret@mail.example.com:587", SmtpSettings("mail.example.com", 587, username="bob", password="secret")),
    ("smtp://bob%40example.com:p%3As%2Fw%40rd%25@mail.example.com:587",
     SmtpSettings("mail.example.com", 587, username="bob@example.com", password="p:s/w@rd%")),
    ("smtp://bob@mail.example.com", SmtpSettings("mail.example.com", 25, username="bob")),
    ("smtp://bob:@mail.example.com", SmtpSettings("mail.example.com", 25, username="bob", password="")),
])
def test_urls_are_parsed(url, expected):
    assert parse_smtp_url(url) == expected


def test_timeout_is_carried():
    assert parse_smtp_url("smtp://h:25", timeout=3).timeout == 3.0


@pytest.mark.parametrize("url", ["http://mail.example.com", "mail.example.com:25", "smtp://", "smtp://:25",
                                 "smtp://host:notaport", "smtp://host:99999"])
def test_bad_urls_are_refused_at_startup(url):
    with pytest.raises(ValueError):
        parse_smtp_url(url)


def test_the_password_never_shows_in_a_repr():
    settings = parse_smtp_url("smtp://bob:hunter2@mail.example.com")
    assert "hunter2" not in repr(settings) and "hunter2" not in repr(SmtpTransport(settings))


def test_transport_follows_the_config(tmp_path):
    assert isinstance(transport_from_config({"SMTP_URL": "smtp://h:2525"}), SmtpTransport)
    outbox = transport_from_config({"SMTP_URL": None, "MAIL_OUTBOX_DIR": str(tmp_path)})
    assert isinstance(outbox, MailFolderTransport) and outbox.folder == tmp_path
    default = transport_from_config({"SMTP_URL": ""})
    assert default.folder == REPO_ROOT / "var" / "outbox", "relative to the repository root"


# -- the SMTP conversation -------------------------------------------------------------------------

def fake_smtp(extensions=("starttls",)):
    server = mock.MagicMock(name="smtp")
    server.__enter__.return_value = server
    server.has_extn.side_effect = lambda name: name in extensions
    server.noop.return_value = (250, b"OK")
    return server


def deliver(url, server, message=None):
    transport = SmtpTransport(parse_smtp_url(url))
    with mock.patch.object(smtplib, "SMTP", return_value=server) as plain, \
            mock.patch.object(smtplib, "SMTP_SSL", return_value=server) as implicit:
        transport.deliver(message or welcome_message())
    return plain, implicit


def test_plain_smtp_upgrades_with_starttls_when_offered_and_logs_in():
    server = fake_smtp(extensions=("starttls", "auth"))
    plain, implicit = deliver("smtp://bob%40x:p%40ss@mail.example.com:587", server)
    assert plain.call_args.args == ("mail.example.com", 587) and plain.call_args.kwargs["timeout"] == 10
    assert not implicit.called
    server.starttls.assert_called_once()
    assert server.method_calls.index(mock.call.starttls(context=mock.ANY)) < [c[0] for c in server.method_calls].index("login")
    server.login.assert_called_once_with("bob@x", "p@ss")
    server.send_message.assert_called_once_with(mock.ANY, from_addr="no-reply@imageproc.example", to_addrs=["ada@example.com"])


def test_plain_smtp_stays_plain_when_starttls_is_not_offered():
    server = fake_smtp(extensions=())
    deliver("smtp://127.0.0.1:2525", server)
    server.starttls.assert_not_called()
    server.login.assert_not_called()
    server.send_message.assert_called_once()


def test_smtps_uses_implicit_tls_and_no_starttls():
    server = fake_smtp()
    plain, implicit = deliver("smtps://mail.example.com", server)
    assert not plain.called
    assert implicit.call_args.args == ("mail.example.com", 465) and implicit.call_args.kwargs["context"] is not None
    server.starttls.assert_not_called()


def test_the_envelope_comes_from_the_structured_headers_not_the_display_name():
    server = fake_smtp(extensions=())
    deliver("smtp://h:25", server, welcome_message({**USER, "name": "Zoë, Mallory <victim@example.com>"}))
    assert server.send_message.call_args.kwargs["to_addrs"] == ["ada@example.com"]


def test_health_check_is_a_noop_without_login():
    server = fake_smtp()
    with mock.patch.object(smtplib, "SMTP", return_value=server):
        SmtpTransport(parse_smtp_url("smtp://bob:pw@h:25")).check()
    server.noop.assert_called_once()
    server.login.assert_not_called()
    server.send_message.assert_not_called()


# -- failures ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("error, permanent", [
    (smtplib.SMTPRecipientsRefused({"ada@example.com": (550, b"<ada@example.com> no such user")}), True),
    (smtplib.SMTPRecipientsRefused({"ada@example.com": (451, b"try later")}), False),
    (smtplib.SMTPSenderRefused(553, b"no", "no-reply@imageproc.example"), True),
    (smtplib.SMTPDataError(421, b"busy"), False),
    (smtplib.SMTPServerDisconnected("gone"), False),
    (ConnectionRefusedError(111, "Connection refused"), False),
])
def test_a_failed_delivery_raises_without_addresses(error, permanent, caplog):
    transport = mock.Mock(name="transport")
    transport.name = "smtp"
    transport.deliver.side_effect = error
    with pytest.raises(MailDeliveryError) as raised:
        MailClient(transport).send(welcome_message())
    assert raised.value.permanent is permanent
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert "welcome" in str(raised.value)
    logged = caplog.text + str(raised.value)
    assert "ada@example.com" not in logged and "no-reply@" not in logged
    assert "<welcome." in caplog.text


def test_a_sent_message_is_logged_by_kind_and_id_only(caplog, tmp_path):
    caplog.set_level("INFO", logger=mailer.__name__)
    MailClient(MailFolderTransport(tmp_path)).send(welcome_message())
    assert "sent welcome mail <welcome." in caplog.text
    assert "ada@example.com" not in caplog.text and "Ada" not in caplog.text


# -- the mail folder -------------------------------------------------------------------------------

def test_outbox_writes_one_parseable_eml_named_after_the_message_id(tmp_path):
    folder = tmp_path / "not" / "yet" / "there"
    message = welcome_message()
    path = MailFolderTransport(folder).deliver(message)
    assert path.parent == folder and path.name == f"welcome.{USER['id']}_imageproc.example.eml"
    assert os.listdir(folder) == [path.name], "no temporary file left behind"
    parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert parsed["Message-ID"] == message["Message-ID"]
    assert parsed["To"].addresses[0].addr_spec == "ada@example.com"
    assert {part.get_content_type() for part in parsed.iter_parts()} == {"text/plain", "text/html"}


def test_a_redelivered_message_overwrites_its_own_file(tmp_path):
    outbox = MailFolderTransport(tmp_path)
    outbox.deliver(welcome_message())
    outbox.deliver(welcome_message())
    assert len(list(tmp_path.glob("*.eml"))) == 1


def test_a_message_without_an_id_gets_a_unique_file(tmp_path):
    outbox = MailFolderTransport(tmp_path)
    for _ in range(2):
        message = welcome_message()
        del message["Message-ID"]
        outbox.deliver(message)
    assert len(list(tmp_path.glob("*.eml"))) == 2


def test_a_failed_write_leaves_neither_a_partial_eml_nor_a_temporary_file(tmp_path):
    with mock.patch.object(mailer.os, "replace", side_effect=OSError(28, "No space left on device")):
        with pytest.raises(OSError):
            MailFolderTransport(tmp_path).deliver(welcome_message())
    assert os.listdir(tmp_path) == []


def test_the_file_appears_only_complete(tmp_path):
    """Until os.replace, the bytes sit in a dot-file that a `*.eml` reader never picks up."""
    seen = []
    real_replace = os.replace

    def replace(source, target):
        seen.append((sorted(p.name for p in tmp_path.glob("*.eml")), os.path.basename(source)))
        real_replace(source, target)

    with mock.patch.object(mailer.os, "replace", side_effect=replace):
        MailFolderTransport(tmp_path).deliver(welcome_message())
    (emls, temporary), = seen
    assert emls == [] and temporary.startswith(".") and temporary.endswith(".tmp")


def test_outbox_health_needs_a_writable_folder(tmp_path):
    MailFolderTransport(tmp_path / "new").check()
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError):
        MailFolderTransport(blocker / "outbox").check()
