"""The three emails: headers, both parts, and no way for a name or file name to add a header."""
import datetime as dt
import email
import email.policy

import pytest

from notification_service import templates

MAIL_FROM = "Image Service <no-reply@imageproc.example>"
USER = {"id": "0b5e6d4c-3a2b-4c1d-8e9f-1a2b3c4d5e6f", "name": "Ada Lovelace", "email": "ada@example.com"}
IMAGE_ID = "6f1c0f0e-1b2a-4c3d-9e8f-0a1b2c3d4e5f"
COMPLETED = {
    "image_id": IMAGE_ID,
    "user_id": USER["id"],
    "original_filename": "cat.png",
    "output": {"width": 640, "height": 480, "format": "png", "size_bytes": 123456,
               "download_url": f"/api/images/{IMAGE_ID}/download"},
}
FAILED = {
    "image_id": IMAGE_ID,
    "user_id": USER["id"],
    "original_filename": "cat.png",
    "error": {"code": "invalid_crop", "message": "The crop lies outside the image"},
}
DOWNLOAD_URL = f"https://images.example/api/images/{IMAGE_ID}/download"


def reparse(message):
    """What a receiving client sees: the bytes on the wire, parsed again."""
    return email.message_from_bytes(message.as_bytes(), policy=email.policy.default)


def parts(message):
    return {part.get_content_type(): part.get_content() for part in message.iter_parts()}


def all_emails(user=USER, completed=COMPLETED, failed=FAILED):
    return [
        templates.welcome(user, mail_from=MAIL_FROM),
        templates.image_ready(user, completed, DOWNLOAD_URL, mail_from=MAIL_FROM),
        templates.image_failed(user, failed, mail_from=MAIL_FROM),
    ]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_every_email_has_the_headers_and_a_text_and_an_html_part(index):
    message = reparse(all_emails()[index])
    assert message["From"] == MAIL_FROM
    assert [(a.display_name, a.addr_spec) for a in message["To"].addresses] == [("Ada Lovelace", "ada@example.com")]
    assert message["Subject"]
    assert message["Message-ID"].endswith("@imageproc.example>")
    assert message["Date"].datetime.tzinfo is not None
    assert message.get_content_type() == "multipart/alternative"
    assert set(parts(message)) == {"text/plain", "text/html"}
    assert "Ada Lovelace" in parts(message)["text/plain"]


def test_message_ids_are_derived_from_the_event_so_a_redelivery_is_recognisable():
    welcome, ready, failed = all_emails()
    assert welcome["Message-ID"] == f"<welcome.{USER['id']}@imageproc.example>"
    assert ready["Message-ID"] == f"<image-ready.{IMAGE_ID}@imageproc.example>"
    assert failed["Message-ID"] == f"<image-failed.{IMAGE_ID}@imageproc.example>"
    assert templates.welcome(USER, mail_from=MAIL_FROM)["Message-ID"] == welcome["Message-ID"]
    assert [templates.message_kind(m) for m in (welcome, ready, failed)] == ["welcome", "image-ready", "image-failed"]


def test_an_id_that_is_not_a_plain_token_gets_a_random_message_id():
    user = {**USER, "id": "x>\r\nBcc: evil@example.com"}
    message_id = templates.welcome(user, mail_from=MAIL_FROM)["Message-ID"]
    assert "\n" not in message_id and "evil" not in message_id
    assert message_id.endswith("@imageproc.example>")


def test_date_is_the_given_time():
    now = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc)
    assert templates.welcome(USER, mail_from=MAIL_FROM, now=now)["Date"] == "Wed, 01 May 2024 12:30:00 +0000"


def test_subjects_say_what_happened():
    welcome, ready, failed = (reparse(m) for m in all_emails())
    assert welcome["Subject"] == "Welcome to Image Service"
    assert ready["Subject"] == 'Your image "cat.png" is ready'
    assert failed["Subject"] == 'Your image "cat.png" could not be processed'


def test_ready_email_gives_the_output_and_the_link():
    text, html_part = parts(reparse(all_emails()[1])).values()
    assert "640 x 480" in text and "PNG" in text and "120.6 KB" in text and DOWNLOAD_URL in text
    assert f'href="{DOWNLOAD_URL}"' in html_part


def test_ready_email_names_the_variants_and_an_older_event_still_reads():
    with_variants = {**COMPLETED, "variants": ["thumb", "big<b>"]}
    text, html_part = parts(reparse(templates.image_ready(USER, with_variants, DOWNLOAD_URL, mail_from=MAIL_FROM))).values()
    assert "Variants: thumb, big<b>." in text
    assert "Variants: thumb, big&lt;b&gt;." in html_part
    old_text = parts(reparse(all_emails()[1]))["text/plain"]
    only_default = {**COMPLETED, "variants": ["default"]}
    default_text = parts(reparse(templates.image_ready(USER, only_default, DOWNLOAD_URL, mail_from=MAIL_FROM)))["text/plain"]
    assert "Variants" not in old_text and default_text == old_text


def test_failed_email_gives_the_reason():
    text = parts(reparse(all_emails()[2]))["text/plain"]
    assert "The crop lies outside the image" in text and "invalid_crop" in text


INJECTIONS = [
    "Eve\r\nBcc: victim@example.com",
    "Eve\nBcc: victim@example.com",
    "Eve\rBcc: victim@example.com",
    "Eve\x00\x0bBcc: victim@example.com",
    "Eve\u2028Bcc: victim@example.com",
    # formataddr would write this one as an unquoted encoded word, read back as a second recipient
    "Zoë, Mallory <victim@example.com>",
    'Eve" <victim@example.com>, "x',
]


@pytest.mark.parametrize("name", INJECTIONS)
def test_a_name_cannot_add_a_header_or_a_recipient(name):
    for message in all_emails(user={**USER, "name": name}):
        wire = message.as_bytes()
        received = reparse(message)
        assert received["Bcc"] is None and received["Cc"] is None
        assert [a.addr_spec for a in received["To"].addresses] == ["ada@example.com"]
        assert not any(line.lower().startswith(b"bcc:") for line in wire.split(b"\r\n"))
        display_name = received["To"].addresses[0].display_name
        assert not any(char in display_name for char in "\r\n\x00\x0b\u2028")


@pytest.mark.parametrize("filename", ["cat\r\nBcc: victim@example.com.png", "cat\nX-Evil: 1\n\n<b>.png", "\u202egnp.exe"])
def test_a_file_name_cannot_add_a_header(filename):
    emails = all_emails(completed={**COMPLETED, "original_filename": filename},
                        failed={**FAILED, "original_filename": filename})
    for message in emails[1:]:
        received = reparse(message)
        assert received["Bcc"] is None and received["X-Evil"] is None
        assert not any(char in received["Subject"] for char in "\r\n\u202e")
        assert [a.addr_spec for a in received["To"].addresses] == ["ada@example.com"]


def test_html_parts_escape_everything_user_supplied():
    user = {**USER, "name": "<script>alert(1)</script>"}
    completed = {**COMPLETED, "original_filename": '"><img src=x onerror=alert(2)>.png'}
    failed = {**FAILED, "original_filename": "<i>x</i>.png", "error": {"code": "<c>", "message": "<b>bad</b> & worse"}}
    welcome, ready, failed_email = (reparse(m) for m in all_emails(user, completed, failed))
    welcome_html, ready_html, failed_html = (parts(m)["text/html"] for m in (welcome, ready, failed_email))
    for html_part in (welcome_html, ready_html, failed_html):
        assert "<script>" not in html_part and "&lt;script&gt;alert(1)&lt;/script&gt;" in html_part
    assert "<img" not in ready_html and "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;.png" in ready_html
    assert "<i>" not in failed_html and "&lt;b&gt;bad&lt;/b&gt; &amp; worse" in failed_html and "&lt;c&gt;" in failed_html


def test_an_empty_or_unprintable_name_is_left_out_of_the_display_name():
    message = reparse(templates.welcome({**USER, "name": "\r\n\t"}, mail_from=MAIL_FROM))
    assert message["To"].addresses[0].display_name == ""
    assert str(message["To"]) == "ada@example.com"
    assert "Hello there" in parts(message)["text/plain"]


@pytest.mark.parametrize("address", ["not-an-address", "a@example.com, b@example.com", "a@example.com\r\nBcc: b@x", ""])
def test_anything_but_one_valid_address_is_refused(address):
    with pytest.raises(ValueError):
        templates.welcome({**USER, "email": address}, mail_from=MAIL_FROM)


def test_the_download_link_must_be_absolute_http():
    with pytest.raises(ValueError):
        templates.image_ready(USER, COMPLETED, "javascript:alert(1)", mail_from=MAIL_FROM)


def test_clean_text_keeps_printable_unicode_and_cuts_long_text():
    assert templates.clean_text("  Zoë \t Ångström  ") == "Zoë Ångström"
    assert templates.clean_text("x" * 500, max_length=10) == "x" * 9 + "…"
    assert templates.clean_text(None) == ""
