"""The store from an operator's shell, configured as the services are (config.yaml + environment).

    python -m shared.storage check                 # which store, and can it be used now
    python -m shared.storage create-bucket [URL]   # an s3:// bucket, when it is not there yet
    python -m shared.storage list [originals|outputs]
"""
import argparse
import sys

from shared.config import load_config
from shared.storage import open_store


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m shared.storage")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check", help="connect to the configured store")
    create = commands.add_parser("create-bucket", help="create the bucket of an s3:// store")
    create.add_argument("url", nargs="?", help="s3://bucket (default: STORAGE_URL)")
    listing = commands.add_parser("list", help="what the store holds")
    listing.add_argument("folder", nargs="?", default="outputs", choices=("originals", "outputs"))
    args = parser.parse_args(argv)

    config = load_config()
    store = open_store(config, storage_url=getattr(args, "url", None))
    try:
        run(args, store, parser)
    except Exception as exc:  # noqa: BLE001 - a tool for people: one line, not a traceback
        print(f"{store.describe()}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


def run(args, store, parser):
    if args.command == "check":
        store.check()
        print(f"{store.describe()}: ok")
    elif args.command == "create-bucket":
        if store.kind != "s3":
            parser.error("STORAGE_URL is not an s3:// URL")
        store.ensure_bucket()
        print(f"{store.describe()}: bucket ready")
    else:
        for stored in store.listing(args.folder):
            print(f"{stored.modified:.0f}\t{'partial ' if stored.partial else ''}{stored.name}")


if __name__ == "__main__":
    sys.exit(main())
