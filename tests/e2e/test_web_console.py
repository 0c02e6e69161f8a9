"""The web console (GET / on the gateway) in a real browser: Debian's Chromium, driven by Playwright,
against the whole suite. Each page is watched from start to end: no console error, no CSP
violation, no request beyond the gateway; the gallery's screenshot is left in the test's folder.
"""
import base64
import mimetypes
import re
import uuid
from pathlib import Path

import pytest
import requests

from tests.conftest import CORPUS_DIR
from tests.support.clients import ACCOUNT_PASSWORD, ImagesClient, sign_up_and_log_in

CHROMIUM = Path("/usr/bin/chromium")
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.lock)")
expect = playwright_api.expect

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian's chromium is not installed (scripts/test installs it when run as root: apt-get install chromium)",
    ),
]

PHOTO = CORPUS_DIR / "good-images" / "Landscape_1.jpg"
FLOWER = CORPUS_DIR / "good-images" / "flower.jpg"
SMALL = CORPUS_DIR / "good-images" / "hopper.png"
PROCESSING_TIMEOUT_MS = 60_000
# Listens from the first byte of every page: the CSP violations the page itself would not log.
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.effectiveDirective} blocked ${event.blockedURI}`);
});
"""


@pytest.fixture(scope="module")
def browser():
    playwright = playwright_api.sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
    yield browser
    browser.close()
    # Not playwright.stop(): under the test process's eventlet monkey-patching
    # (tests/eventlet_first.py) it waits forever for its driver to exit. The driver, idle once the
    # browser is closed, ends when this process does (its stdin closes).


# Chromium logs every answer of 400 or more as a console error; such an answer is the test's to
# expect (allow_failure), and this line of the log is then no error of the console's.
FAILED_RESOURCE = "Failed to load resource: the server responded with a status of"


class WatchedPage:
    """A page of the console, with everything it said and asked for while the test ran."""

    def __init__(self, page, gateway):
        self.page = page
        self.gateway = gateway
        self.console_errors = []
        self.foreign_requests = []
        self.failed_answers = []
        self.allowed_failures = set()
        page.on("console", self.on_console)
        page.on("pageerror", lambda error: self.console_errors.append(f"uncaught: {error}"))
        page.on("request", self.on_request)
        page.on("response", self.on_response)
        page.add_init_script(RECORD_CSP_VIOLATIONS)

    def allow_failure(self, status, method, path):
        """An API error the test provokes on purpose (and checks the console shows)."""
        self.allowed_failures.add((status, method, path))

    def on_console(self, message):
        if message.type in ("error", "warning") and not message.text.startswith(FAILED_RESOURCE):
            self.console_errors.append(f"{message.type}: {message.text}")

    def on_request(self, request):
        if not request.url.startswith((self.gateway + "/", "blob:", "data:")):
            self.foreign_requests.append(request.url)

    def on_response(self, response):
        if response.status >= 400:
            path = response.url.removeprefix(self.gateway).split("?")[0]
            self.failed_answers.append((response.status, response.request.method, path))

    def csp_violations(self):
        return self.page.evaluate("window.__cspViolations")

    def assert_clean(self):
        assert self.console_errors == []
        assert self.csp_violations() == []
        assert self.foreign_requests == []
        assert [answer for answer in self.failed_answers if answer not in self.allowed_failures] == []


@pytest.fixture
def open_console(browser, suite):
    """open_console(width=1280): a WatchedPage of the console in a fresh browser context (its own
    sessionStorage), checked for errors, CSP violations and foreign requests when the test ends."""
    contexts, watched = [], []

    def open_page(width=1280, height=900):
        context = browser.new_context(base_url=suite.url, viewport={"width": width, "height": height},
                                      permissions=["clipboard-read", "clipboard-write"])
        contexts.append(context)
        page = WatchedPage(context.new_page(), suite.url)
        watched.append(page)
        page.page.goto("/")
        expect(page.page.get_by_role("button", name="Log in")).to_be_visible()
        return page

    yield open_page
    try:
        for page in watched:
            page.assert_clean()
    finally:
        for context in contexts:
            context.close()


def log_in(page, email, password=ACCOUNT_PASSWORD):
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


@pytest.fixture
def account(suite):
    """(user, token) of a new account, signed up through the API; its password is ACCOUNT_PASSWORD."""
    return sign_up_and_log_in(suite.url, "Console")


def gallery_image(page, filename):
    return page.locator("#gallery-list").get_by_role("img", name=filename, exact=True)


def drop_file(page, target, path):
    """What a person's drag and drop from the desktop delivers: a drop event carrying the file."""
    page.locator(target).evaluate(
        """(zone, [name, type, encoded]) => {
            const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type }));
            zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
            zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
        }""",
        [path.name, mimetypes.guess_type(path.name)[0], base64.b64encode(path.read_bytes()).decode()],
    )


def wait_until_rendered(image):
    """An <img> that is loaded and decoded: the signed URL answered with a real picture."""
    expect(image).to_be_visible(timeout=PROCESSING_TIMEOUT_MS)
    image.scroll_into_view_if_needed()  # thumbnails load lazily, once near the viewport
    image.page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    return image.evaluate("img => img.naturalWidth")


def test_the_page_is_served_with_a_strict_content_security_policy(suite):
    page = requests.get(f"{suite.url}/", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe" not in policy and "http" not in policy  # no inline code, eval or other origin
    assert "<script>" not in page.text and " style=" not in page.text
    assert page.headers["X-Frame-Options"] == "DENY" and "Set-Cookie" not in page.headers
    script = requests.get(f"{suite.url}/console/js/main.js", timeout=10)
    assert script.status_code == 200 and script.headers["Content-Type"] == "text/javascript"
    assert requests.get(f"{suite.url}/console/nothing.js", timeout=10).json()["error"]["code"] == "not_found"
    assert requests.get(f"{suite.url}/api/openapi.json", timeout=10).json()["openapi"] == "3.1.0"


def test_sign_up_log_out_and_log_in_again(open_console, suite):
    console = open_console()
    page = console.page
    email = f"ada.{uuid.uuid4().hex[:10]}@example.com"
    page.get_by_label("Name").fill("Ada Console")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(ACCOUNT_PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    expect(page.get_by_text("Ada Console")).to_be_visible()
    expect(page.get_by_text("No images yet.")).to_be_visible()
    # The token is in this tab's sessionStorage, never in a cookie.
    assert page.evaluate("Object.keys(sessionStorage)") == ["imageproc.accessToken"]
    assert page.context.cookies() == []

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0

    # A wrong password: the API's own message, as its JSON says it.
    wrong = requests.post(f"{suite.url}/api/users/login", json={"email": email, "password": "not the password"},
                          timeout=10).json()["error"]["message"]
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("not the password")
    console.allow_failure(401, "POST", "/api/users/login")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text(wrong)

    log_in(page, email)
    expect(page.get_by_role("alert")).to_be_hidden()


def test_upload_with_a_pipeline_completes_and_its_thumbnail_renders(open_console, account, suite, tmp_path):
    user, _ = account
    page = open_console().page
    served_media_types = []
    page.on("response", lambda answer: served_media_types.append(answer.headers.get("content-type"))
            if "/media/" in answer.url else None)
    log_in(page, user["email"])

    page.get_by_label("Image").set_input_files([PHOTO, FLOWER])  # several at once
    page.get_by_label("Operation").select_option("resize")
    page.get_by_role("button", name="Add step").click()
    step = page.get_by_role("group", name="Step 1: resize")
    step.get_by_label("width", exact=True).fill("320")
    step.get_by_label("fit", exact=True).select_option("inside")
    page.get_by_label("Operation").select_option("convert")
    page.get_by_role("button", name="Add step").click()
    page.get_by_role("group", name="Step 2: convert").get_by_label("format", exact=True).select_option("auto")
    page.get_by_label("Variant").fill("web")
    page.get_by_label("thumbnail", exact=True).check()
    page.get_by_role("button", name="Upload").click()

    for path in (PHOTO, FLOWER):
        upload = page.get_by_role("progressbar", name=f"Upload of {path.name}")
        expect(upload).to_be_visible()
        expect(page.locator("#queue li", has=upload)).to_contain_text("completed", timeout=PROCESSING_TIMEOUT_MS)
        assert upload.evaluate("bar => bar.value === bar.max && bar.max > 0")  # every byte sent
        assert wait_until_rendered(gallery_image(page, path.name)) > 0

    page.locator("#gallery").screenshot(path=tmp_path / "gallery.png")
    assert (tmp_path / "gallery.png").stat().st_size > 0

    gallery_image(page, PHOTO.name).click()
    details = page.get_by_role("dialog", name=PHOTO.name)
    expect(details).to_be_visible()
    expect(details.get_by_role("heading", name="web")).to_be_visible()
    expect(details.get_by_text(re.compile(r"^320 × \d+, jpeg, "))).to_be_visible()  # jpeg: the fallback
    expect(details.get_by_text("Served as the smallest the browser accepts of: ")).to_be_visible()
    expect(details.get_by_text(re.compile(r"^256 × 256, jpeg, "))).to_be_visible()
    signed = details.get_by_label("Signed URL of thumbnail", exact=True).input_value()
    assert signed.startswith(f"{suite.url}/media/")
    details.get_by_role("button", name="Copy the signed URL of thumbnail").click()
    assert page.evaluate("navigator.clipboard.readText()") == signed
    assert requests.get(signed, timeout=10).headers["Content-Type"] == "image/jpeg"  # no token needed
    for variant in details.get_by_role("img").all():
        wait_until_rendered(variant)
    # Chromium names AVIF and WebP in its Accept header: the "auto" variant came in one of them.
    assert {"image/avif", "image/webp"} & set(served_media_types), served_media_types
    page.screenshot(path=tmp_path / "details.png")


def test_an_invalid_pipeline_shows_the_apis_message(open_console, account, suite):
    user, token = account
    operations = [{"type": "resize", "width": 0}]
    refused = ImagesClient(suite.url, token).upload(PHOTO, operations, filename=PHOTO.name)
    assert refused.status_code == 400
    message = refused.json()["error"]["message"]

    console = open_console()
    page = console.page
    log_in(page, user["email"])
    drop_file(page, "#drop", PHOTO)
    assert page.get_by_label("Image").evaluate("input => input.files[0].name") == PHOTO.name
    page.get_by_label("Operation").select_option("resize")
    page.get_by_role("button", name="Add step").click()
    page.get_by_role("group", name="Step 1: resize").get_by_label("width", exact=True).fill("0")
    console.allow_failure(400, "POST", "/api/images/upload")
    page.get_by_role("button", name="Upload").click()

    expect(page.get_by_role("alert")).to_have_text(message)
    expect(page.locator("#queue li").first).to_contain_text(f"refused: {message}")
    expect(page.get_by_text("No images yet.")).to_be_visible()


def test_delete_asks_then_removes_the_image_from_the_gallery(open_console, account, suite):
    user, token = account
    images = ImagesClient(suite.url, token)
    accepted = images.upload(PHOTO, [{"type": "resize", "width": 200}], filename="unwanted.jpg")
    image_id = accepted.json()["image"]["id"]
    assert images.wait_until_done(image_id)["status"] == "completed"

    page = open_console().page
    log_in(page, user["email"])
    wait_until_rendered(gallery_image(page, "unwanted.jpg"))
    gallery_image(page, "unwanted.jpg").click()

    page.get_by_role("button", name="Delete", exact=True).click()
    question = page.get_by_role("group", name="Delete unwanted.jpg and all its variants? This cannot be undone.")
    expect(question.get_by_role("button", name="Keep it")).to_be_focused()  # the safe answer first
    question.get_by_role("button", name="Keep it").click()
    expect(question).to_be_hidden()
    expect(page.get_by_role("button", name="Delete", exact=True)).to_be_focused()

    page.get_by_role("button", name="Delete", exact=True).click()
    page.get_by_role("button", name="Yes, delete it").click()
    expect(page.get_by_role("dialog")).to_be_hidden()
    expect(gallery_image(page, "unwanted.jpg")).to_have_count(0)
    expect(page.get_by_label("Image")).to_be_focused()  # its card is gone; nothing else in the gallery
    assert images.get(image_id).status_code == 404


def test_works_with_the_keyboard_alone_on_a_narrow_phone(open_console, account, suite):
    user, token = account
    images = ImagesClient(suite.url, token)
    image_id = images.upload(PHOTO, [{"type": "resize", "width": 200}], filename="phone.jpg").json()["image"]["id"]
    assert images.wait_until_done(image_id)["status"] == "completed"

    page = open_console(width=390, height=844).page
    page.get_by_label("Email").focus()
    page.keyboard.type(user["email"])
    page.keyboard.press("Tab")
    page.keyboard.type(ACCOUNT_PASSWORD)
    page.keyboard.press("Enter")  # the form's first button: Log in
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    expect(page.get_by_label("Image")).to_be_focused()
    wait_until_rendered(gallery_image(page, "phone.jpg"))

    for _ in range(40):  # from the file input, through the form, to the gallery
        if page.evaluate("document.activeElement.matches('#gallery-list button')"):
            break
        page.keyboard.press("Tab")
    expect(page.locator("#gallery-list button").first).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog", name="phone.jpg")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_the_gallery_is_newest_first_a_page_at_a_time(open_console, account, suite):
    user, token = account
    images = ImagesClient(suite.url, token)
    names = [f"small {number:02}.png" for number in range(13)]  # a page is 12
    for name in names:
        accepted = images.upload(SMALL, filename=name, content_type="image/png")
        assert accepted.status_code == 202, accepted.text
        assert images.wait_until_done(accepted.json()["image"]["id"])["status"] == "completed"

    page = open_console().page
    log_in(page, user["email"])
    cards = page.locator("#gallery-list li")
    expect(cards).to_have_count(12)
    expect(cards.first).to_contain_text("small 12.png")
    page.get_by_role("button", name="Show more").focus()
    page.keyboard.press("Enter")
    expect(cards).to_have_count(13)
    expect(cards.last).to_contain_text("small 00.png")
    expect(cards.last.get_by_role("button")).to_be_focused()  # the keyboard goes on from the new card
    expect(page.get_by_role("button", name="Show more")).to_be_hidden()
