"""The image domain: what the suite does to an image, apart from how the services move it around.

    operations.py   the catalogue: each operation of the contract, its parameters, as data
    validation.py   an upload's operations checked against the catalogue (upload_service)
    schema.py       the catalogue as JSON Schema; openapi.py writes it into openapi.yaml
    failures.py     why an image fails: the contract's error codes (ImageFailure)
    formats.py      the formats read and written
    decoding.py     safe decoding of untrusted files: allow-list, pixel limit, EXIF orientation
    pipeline.py     one image through its operations: one decode, the steps, one encode
    transforms/     the Pillow/OpenCV side of each operation, one module per operation or family
    modes.py        any decoded image into the working modes the transforms expect
    encoding.py     the one encode: mode, metadata, ICC profile, quality, atomic write
    png.py          the fast PNG writer (libpng) for the default PNG output
    budget.py       a per-process pixel budget bounding decode memory

upload_service imports the catalogue, validation, formats and decoding; process_service the
pipeline. Nothing here knows about Nameko, the broker or the database.
"""
