"""Fixtures of the imaging unit tests: the shared corpus of real and malformed images, and small
synthetic images made on the fly.

The corpus is `tests/data/corpus` (or `$CORPUS_DIR`, see tests/conftest.py). Each
folder's index.json names every file's expected outcome; a test that asks for `corpus_entry` runs
once per file of both folders (`accepted_corpus_entry`: once per file an upload accepts).
"""
import json
import re
from dataclasses import dataclass

import pytest
from PIL import Image, ImageChops, ImageStat

from tests.conftest import CORPUS_DIR

CORPUS_FOLDERS = ("good-images", "bad-images")


@dataclass(frozen=True)
class CorpusEntry:
    folder: str
    file: str
    expected: str  # the index's own words

    @property
    def path(self):
        return CORPUS_DIR / self.folder / self.file

    @property
    def outcome(self):
        """accept, too_large or unsupported: the first status code the index names (none: accept)."""
        match = re.match(r"\s*(\d{3})", self.expected)
        code = match.group(1) if match else "202"
        return {"202": "accept", "413": "too_large", "415": "unsupported"}[code]

    def __str__(self):
        return f"{self.folder}/{self.file}"


def corpus_entries():
    entries = []
    for folder in CORPUS_FOLDERS:
        index = CORPUS_DIR / folder / "index.json"
        if index.exists():
            entries += [CorpusEntry(folder, item["file"], item["expected"]) for item in json.loads(index.read_text())]
    return entries


def pytest_generate_tests(metafunc):
    """`corpus_entry`: every file of the corpus; `accepted_corpus_entry`: those an upload accepts."""
    selections = {"corpus_entry": lambda entry: True, "accepted_corpus_entry": lambda entry: entry.outcome == "accept"}
    for name, keep in selections.items():
        if name in metafunc.fixturenames:
            entries = [entry for entry in corpus_entries() if keep(entry)]
            metafunc.parametrize(name, entries, ids=[entry.file for entry in entries])


@pytest.fixture(scope="session")
def corpus_dir():
    if not CORPUS_DIR.is_dir():
        pytest.skip(f"no image corpus at {CORPUS_DIR} (set CORPUS_DIR)")
    return CORPUS_DIR


@pytest.fixture(scope="session")
def all_corpus_entries(corpus_dir):
    return corpus_entries()


@pytest.fixture
def good_image(corpus_dir):
    """The path of a file of the good corpus."""
    return lambda name: corpus_dir / "good-images" / name


@pytest.fixture
def bad_image(corpus_dir):
    return lambda name: corpus_dir / "bad-images" / name


@pytest.fixture
def out_stem(tmp_path):
    """Where process_image writes: `<tmp>/out/result` + its extension."""
    folder = tmp_path / "out"
    folder.mkdir()
    return str(folder / "result")


@pytest.fixture
def make_image(tmp_path):
    """Saves a synthetic image and returns its path: make_image(image, "png", **save_options)."""
    counter = iter(range(1_000_000))

    def make(image, extension="png", **options):
        path = tmp_path / f"input-{next(counter)}.{extension}"
        image.save(path, **options)
        return path

    return make


@pytest.fixture
def quadrants():
    """quadrants(size, mode): an image whose four quadrants are red, green, blue and white
    (top-left, top-right, bottom-left, bottom-right): where each ends up tells how it was turned."""

    def make(size=(64, 48), mode="RGB"):
        width, height = size
        image = Image.new("RGB", size)
        for (left, top), colour in zip(
            [(0, 0), (width // 2, 0), (0, height // 2), (width // 2, height // 2)],
            [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)],
        ):
            image.paste(colour, (left, top, left + width // 2, top + height // 2))
        return image.convert(mode) if mode != "RGB" else image

    return make


@pytest.fixture
def mean_abs_diff():
    """mean_abs_diff(a, b): mean absolute difference per RGB value (0..255) of same-sized images."""

    def diff(first, second):
        assert first.size == second.size, (first.size, second.size)
        stat = ImageStat.Stat(ImageChops.difference(first.convert("RGB"), second.convert("RGB")))
        return sum(stat.mean) / 3

    return diff
