"""The image owner's address on the events an upload causes, so that its email needs no RPC.

Asking user_service for the address of every finished image cost an RPC per image (two broker
messages, a worker in each service, a database read: ~10 ms of CPU of the suite's ~200 ms per image,
bench/README.md "Suite CPU per image"). Instead the address travels with the image:
- user_service puts the user's `name` and `email` into the access token as claims;
- upload_service copies them into `image_uploaded` as `owner`;
- process_service hands `owner` back on `image_processed` and `image_processing_failed`;
- upload_service puts it on `image_completed` and `image_failed`, and notification_service writes to it.
An event without it (a token or a message from before, a failure upload_service decides itself)
makes notification_service ask user_service, as it always did.
"""


def contact(values):
    """`{"name", "email"}` from token claims or an event's `owner`; None without an email address."""
    if not isinstance(values, dict):
        return None
    email = values.get("email")
    if not isinstance(email, str) or not email:
        return None
    name = values.get("name")
    return {"name": name if isinstance(name, str) else None, "email": email}
