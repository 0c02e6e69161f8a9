"""upload_service's DependencyProviders: status in Redis, limits from config (its store: shared/storage)."""
from eventlet.semaphore import Semaphore
from nameko.extensions import DependencyProvider

from imaging.budget import PixelBudget
from imaging.presets import load_presets
from shared.filenames import download_name
from shared.media_urls import media_url, signing_keys
from shared.redis_client import RedisClient, connect
from shared.settings import setting
from upload_service.schemas import primary_output
from upload_service.status import StatusCache, StatusNotifier

REDIS_POOL_SIZE = 20
# How many results from process_service are recorded at once. The AMQP prefetch is MAX_WORKERS
# (1,100, sized for long-polls), so a burst of results would otherwise start a thousand handlers
# that queue for the database pool (30) and time out; beyond this they wait their turn in-process.
RESULT_SLOTS = 16


class ImageStatus(RedisClient):
    """The status cache for workers, and the process's one subscription for long-poll wake-ups."""

    def __init__(self):
        # A thousand long-polls checking at once wait up to 2 s for one of 20 connections.
        super().__init__(max_connections=REDIS_POOL_SIZE, pool_timeout=2)

    def wrap(self, client):
        self.cache = StatusCache(client)
        # The subscriber blocks on reads between messages: no read timeout there.
        self.notifier = StatusNotifier(connect(self.redis_uri, max_connections=2, socket_timeout=None))
        return self

    def start(self):
        self._subscriber = self.container.spawn_managed_thread(self.notifier.run, identifier="status_subscriber")

    def stop(self):
        self.notifier.stop()
        self._subscriber.kill()
        super().stop()

    def kill(self):
        self.notifier.stop()
        super().kill()


class Limits(DependencyProvider):
    def setup(self):
        config = self.container.config
        self.max_upload_bytes = setting(config, "MAX_UPLOAD_BYTES")
        self.max_image_pixels = setting(config, "MAX_IMAGE_PIXELS")
        self.max_operations = setting(config, "MAX_OPERATIONS")
        self.max_wait_seconds = setting(config, "LONG_POLL_MAX_SECONDS")
        self.max_processing_attempts = setting(config, "MAX_PROCESSING_ATTEMPTS")
        self.processing_lease_seconds = setting(config, "PROCESSING_LEASE_SECONDS")
        self.decode_budget = PixelBudget(setting(config, "DECODE_BUDGET_PIXELS"))
        self.result_slots = Semaphore(RESULT_SLOTS)

    def get_dependency(self, worker_ctx):
        return self


class Presets(DependencyProvider):
    """The configuration's named pipelines, validated once at start (imaging/presets.py): a bad
    preset raises InvalidPreset here and the service does not start."""

    def setup(self):
        self.presets = load_presets(self.container.config)

    def get_dependency(self, worker_ctx):
        return self.presets


class MediaUrls(DependencyProvider):
    """Signed URLs of outputs (contract "Delivery", shared/media_urls.py): the gateway verifies them."""

    def setup(self):
        config = self.container.config
        self.keys = signing_keys(config)
        self.ttl = setting(config, "MEDIA_URL_TTL")
        self.email_ttl = setting(config, "EMAIL_LINK_TTL")

    def output_url(self, image, ttl=None):
        """(url, expires_at) of a completed image's primary output, valid `ttl` seconds
        (MEDIA_URL_TTL)."""
        return self.variant_url(image, primary_output(image), ttl)

    def variant_url(self, image, output, ttl=None):
        """(url, expires_at) of one output ({"path", "format"[, "formats"]},
        upload_service.schemas.variant_outputs). An "auto" output's URL lists its formats,
        smallest first, for the gateway to choose by the request's Accept header."""
        filename = download_name(image.original_filename, output["format"])
        by_size = [each["format"] for each in sorted(output.get("formats", ()), key=lambda each: each["size_bytes"])]
        return media_url(self.keys, output["path"], filename, ttl or self.ttl, formats=by_size)

    def get_dependency(self, worker_ctx):
        return self
