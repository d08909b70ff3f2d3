"""The `imagestore` command: push a folder, pull a dataset, look at and change images, views
and snapshots. Every failure is one sentence on stderr and a non-zero exit status."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import httpx
from rich.filesize import decimal

from imagestore.auth import ClientCredentials
from imagestore.client import DEFAULT_URL, AsyncClient, Client
from imagestore.errors import ImageStoreError, sentence
from imagestore.files import parse_pairs
from imagestore.push import Progress, PushOptions, PushReport, push

FORMATS = ("coco", "yolo", "imagefolder", "hf", "webdataset")
FAILURES_SHOWN = 50


class UsageError(Exception):
    """The command line itself is wrong: exit status 2, as argparse's own errors."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    try:
        return int(arguments.run(arguments) or 0)
    except UsageError as error:
        print(f"imagestore: {sentence(error)}", file=sys.stderr)
        return 2
    except (ImageStoreError, httpx.HTTPError, OSError) as error:
        print(f"imagestore: {sentence(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("imagestore: interrupted; run the same command again to go on where it stopped.", file=sys.stderr)
        return 130


# -- connection --------------------------------------------------------------------------------


def _connection(arguments: argparse.Namespace) -> dict[str, Any]:
    credentials = (arguments.oidc_issuer, arguments.client_id, arguments.client_secret)
    if any(credentials) and not all(credentials):
        raise UsageError("the client-credentials login needs --oidc-issuer, --client-id and --client-secret together")
    if all(credentials) and arguments.token:
        raise UsageError("give either a token or client credentials, not both")
    auth = ClientCredentials(*credentials, scope=arguments.oidc_scope) if all(credentials) else None
    return {"token": arguments.token or None, "auth": auth}


def _client(arguments: argparse.Namespace) -> Client:
    return Client(arguments.url, **_connection(arguments))


def _async_client(arguments: argparse.Namespace) -> AsyncClient:
    return AsyncClient(arguments.url, connections=arguments.jobs, **_connection(arguments))


def _json_object(text: str | None, option: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        parsed = json.loads(text)
    except ValueError as error:
        raise UsageError(f"{option} is not JSON ({error})") from None
    if not isinstance(parsed, dict):
        raise UsageError(f'{option} must be a JSON object, like \'{{"data.label": "cat"}}\'')
    return parsed


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


# -- progress ----------------------------------------------------------------------------------


def _progress(verb: str, *, quiet: bool) -> AbstractContextManager[Progress]:
    """The progress bar (progress.py, imported only when shown: rich takes a while to load)."""
    if quiet:
        return nullcontext(Progress())
    from imagestore.progress import Bar  # noqa: PLC0415

    return Bar(verb)


# -- push and pull -----------------------------------------------------------------------------


def _push(arguments: argparse.Namespace) -> int:
    root = Path(arguments.directory)
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder")
    try:
        meta = dict(parse_pairs(arguments.meta, "--meta"))
    except ValueError as error:
        raise UsageError(str(error)) from None
    options = PushOptions(
        prefix=arguments.prefix,
        meta=meta,
        jobs=arguments.jobs,
        dry_run=arguments.dry_run,
        refuse_duplicates=arguments.refuse_duplicates,
        cache=not arguments.no_cache,
    )

    async def run() -> PushReport:
        async with _async_client(arguments) as client:
            with _progress("push", quiet=arguments.quiet) as bar:
                return await push(client, root, options, bar)

    started = time.monotonic()
    report = asyncio.run(run())
    seconds = time.monotonic() - started
    for path, why in report.would_send:
        print(f"would send {path} ({why})")
    verb = "would send" if options.dry_run else "sent"
    count = len(report.would_send) if options.dry_run else report.sent
    print(
        f"{report.found} images ({decimal(report.found_bytes)}): {verb} {count}"
        + ("" if options.dry_run else f" ({decimal(report.sent_bytes)})")
        + f", already stored {report.stored_already}, not images {report.skipped}, failed {len(report.failures)}"
        + f" in {seconds:.1f} s."
    )
    return _failed(report.failures)


def _pull(arguments: argparse.Namespace) -> int:
    # Loaded when pulling only (tarfile, zipfile): a push starts sooner without them.
    from imagestore.pull import PullReport, Selection, pull, pull_format  # noqa: PLC0415

    given = [name for name in ("filter", "view", "snapshot") if getattr(arguments, name)]
    if len(given) > 1:
        raise UsageError(f"give one of --filter, --view and --snapshot, not --{given[0]} and --{given[1]}")
    selection = Selection(
        filter=_json_object(arguments.filter, "--filter"), view=arguments.view, snapshot=arguments.snapshot
    )
    dest = Path(arguments.destination)
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"{dest} is not a folder")
    started = time.monotonic()

    async def run() -> PullReport | int:
        async with _async_client(arguments) as client:
            with _progress("pull", quiet=arguments.quiet) as bar:
                if arguments.format:
                    return await pull_format(client, dest, selection, arguments.format, bar)
                return await pull(client, dest, selection, jobs=arguments.jobs, progress=bar)

    result = asyncio.run(run())
    seconds = time.monotonic() - started
    if isinstance(result, int):
        print(f"{arguments.format} export of {decimal(result)} unpacked under {dest} in {seconds:.1f} s.")
        return 0
    print(
        f"{result.found} images: received {result.received} ({decimal(result.received_bytes)}),"
        f" already there {result.present_already}, failed {len(result.failures)} in {seconds:.1f} s."
    )
    return _failed(result.failures)


def _failed(failures: list[tuple[str, str]]) -> int:
    if not failures:
        return 0
    print(f"imagestore: {len(failures)} failed:", file=sys.stderr)
    for path, why in failures[:FAILURES_SHOWN]:
        print(f"  {path}: {why}", file=sys.stderr)
    if len(failures) > FAILURES_SHOWN:
        print(f"  … and {len(failures) - FAILURES_SHOWN} more.", file=sys.stderr)
    return 1


# -- images, views, snapshots ------------------------------------------------------------------


def _ls(arguments: argparse.Namespace) -> int:
    selection = {"filter": _json_object(arguments.filter, "--filter"), "view": arguments.view, "sort": arguments.sort}
    with _client(arguments) as client:
        for shown, image in enumerate(client.images(**selection)):
            if arguments.limit is not None and shown >= arguments.limit:
                break
            if arguments.json:
                print(json.dumps(image.document, ensure_ascii=False))
            else:
                print(f"{image.id}\t{image.file}\t{image.size if image.size is not None else '-'}")
    return 0


def _get(arguments: argparse.Namespace) -> int:
    with _client(arguments) as client:
        _print_json(client.get(arguments.id).document)
    return 0


def _edit(arguments: argparse.Namespace) -> int:
    changes: dict[str, Any] = {}
    try:
        for key, value in parse_pairs(arguments.changes, "edit"):
            *parents, last = key.split(".")
            place = changes
            for parent in parents:
                place = place.setdefault(parent, {})
                if not isinstance(place, dict):
                    raise ValueError(f"{key} sets a key inside a value given before")
            place[last] = value
    except ValueError as error:
        raise UsageError(str(error)) from None
    with _client(arguments) as client:
        _print_json(client.patch(arguments.id, changes, revision=arguments.revision).document)
    return 0


def _rm(arguments: argparse.Namespace) -> int:
    selection = _json_object(arguments.filter, "--filter")
    if not arguments.yes:
        raise UsageError("rm deletes images and their files: add --yes to go ahead")
    if not selection and not arguments.view and not arguments.all:
        raise UsageError("rm without --filter or --view deletes every image: say --all --yes to mean it")
    if arguments.all and (selection or arguments.view):
        raise UsageError("--all deletes every image: give it without --filter and --view")
    with _client(arguments) as client:
        deleted = client.delete_many(filter=selection, view=arguments.view)
    print(f"deleted {deleted} images.")
    return 0


def _views(arguments: argparse.Namespace) -> int:
    with _client(arguments) as client:
        if arguments.action == "ls":
            for view in client.views():
                print(f"{view['name']}\t{json.dumps(view.get('filter', {}))}\t{view.get('sort') or ''}")
        elif arguments.action == "show":
            _print_json(client.view(_name(arguments)))
        elif arguments.action == "save":
            filter_ = _json_object(arguments.filter, "--filter")
            _print_json(client.save_view(_name(arguments), filter=filter_, sort=arguments.sort))
        else:
            client.delete_view(_name(arguments))
            print(f"deleted view {arguments.name}.")
    return 0


def _snapshots(arguments: argparse.Namespace) -> int:
    with _client(arguments) as client:
        if arguments.action == "ls":
            for snapshot in client.snapshots():
                columns = ("name", "count", "created", "version", "keptBytes")
                print("\t".join("" if snapshot.get(column) is None else str(snapshot[column]) for column in columns))
        elif arguments.action == "show":
            _print_json(client.snapshot(_name(arguments)))
        elif arguments.action == "create":
            filter_ = _json_object(arguments.filter, "--filter")
            _print_json(client.create_snapshot(_name(arguments), filter=filter_, view=arguments.view))
        elif arguments.action == "diff":
            if not arguments.other:
                raise UsageError("snapshots diff takes two names")
            _print_json(client.diff(_name(arguments), arguments.other))
        else:
            client.delete_snapshot(_name(arguments))
            print(f"deleted snapshot {arguments.name}.")
    return 0


def _name(arguments: argparse.Namespace) -> str:
    if not arguments.name:
        raise UsageError(f"{arguments.command} {arguments.action} takes a name")
    return str(arguments.name)


# -- the command line --------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    environ = os.environ
    parser = argparse.ArgumentParser(
        prog="imagestore",
        description="Push folders of images to an image store, pull datasets from it, and look after its images.",
    )
    parser.add_argument(
        "--url", default=environ.get("IMAGESTORE_URL", DEFAULT_URL), help="the service (IMAGESTORE_URL)"
    )
    parser.add_argument("--token", default=environ.get("IMAGESTORE_TOKEN"), help="a bearer token (IMAGESTORE_TOKEN)")
    parser.add_argument(
        "--oidc-issuer", default=environ.get("IMAGESTORE_OIDC_ISSUER"), help="client credentials: the OIDC issuer"
    )
    parser.add_argument("--client-id", default=environ.get("IMAGESTORE_CLIENT_ID"), help="client credentials: id")
    parser.add_argument(
        "--client-secret", default=environ.get("IMAGESTORE_CLIENT_SECRET"), help="client credentials: secret"
    )
    parser.add_argument("--oidc-scope", default=environ.get("IMAGESTORE_OIDC_SCOPE"), help="scopes to ask for")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub = commands.add_parser("push", help="send a folder's images (only what is not stored yet)")
    sub.add_argument("directory", metavar="DIR")
    sub.add_argument("--prefix", default="", help="a folder on the service to put them under")
    sub.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE", help="metadata for every image")
    sub.add_argument("--jobs", type=_positive, default=8, help="files sent at once (8)")
    sub.add_argument("--dry-run", action="store_true", help="say what would be sent; send nothing")
    sub.add_argument(
        "--refuse-duplicates", action="store_true", help="fail a file another image already holds the bytes of"
    )
    sub.add_argument(
        "--no-cache",
        action="store_true",
        help="hash every stored file again rather than trust checksums kept from earlier runs (IMAGESTORE_CACHE_DIR)",
    )
    sub.set_defaults(run=_push)

    sub = commands.add_parser("pull", help="fetch a selection's files, or an export in a training format")
    sub.add_argument("destination", metavar="DEST")
    _selection_options(sub, snapshot=True)
    sub.add_argument("--format", choices=FORMATS, help="a training format's layout instead of the files")
    sub.add_argument("--jobs", type=_positive, default=8, help="files fetched at once (8)")
    sub.set_defaults(run=_pull)

    sub = commands.add_parser("ls", help="list images: id, path, size")
    _selection_options(sub)
    sub.add_argument("--sort", help="time, file, data.x; -x descends")
    sub.add_argument("--limit", type=_positive, help="at most this many")
    sub.add_argument("--json", action="store_true", help="each image's document as a JSON line")
    sub.set_defaults(run=_ls, jobs=1)

    sub = commands.add_parser("get", help="an image's document")
    sub.add_argument("id")
    sub.set_defaults(run=_get, jobs=1)

    sub = commands.add_parser("edit", help="change an image's metadata (a merge patch; KEY=null removes KEY)")
    sub.add_argument("id")
    sub.add_argument("changes", nargs="+", metavar="KEY=VALUE", help="a.b=1 sets a nested key")
    sub.add_argument("--revision", type=int, help="refuse if the image is no longer at this revision")
    sub.set_defaults(run=_edit, jobs=1)

    sub = commands.add_parser("rm", help="delete the images a filter or view selects")
    _selection_options(sub)
    sub.add_argument("--all", action="store_true", help="every image (with --yes)")
    sub.add_argument("--yes", action="store_true", help="do delete")
    sub.set_defaults(run=_rm, jobs=1)

    sub = commands.add_parser("views", help="saved views: ls, show NAME, save NAME --filter JSON, rm NAME")
    sub.add_argument("action", choices=("ls", "show", "save", "rm"))
    sub.add_argument("name", nargs="?")
    sub.add_argument("--filter", metavar="JSON")
    sub.add_argument("--sort")
    sub.set_defaults(run=_views, jobs=1)

    sub = commands.add_parser(
        "snapshots", help="snapshots: ls, show NAME, create NAME [--filter JSON | --view V], diff A B, rm NAME"
    )
    sub.add_argument("action", choices=("ls", "show", "create", "diff", "rm"))
    sub.add_argument("name", nargs="?")
    sub.add_argument("other", nargs="?")
    sub.add_argument("--filter", metavar="JSON")
    sub.add_argument("--view")
    sub.set_defaults(run=_snapshots, jobs=1)
    return parser


def _selection_options(parser: argparse.ArgumentParser, *, snapshot: bool = False) -> None:
    parser.add_argument("--filter", metavar="JSON", help='e.g. \'{"data.label": "cat"}\'')
    parser.add_argument("--view", metavar="NAME", help="one of your saved views")
    if snapshot:
        parser.add_argument("--snapshot", metavar="NAME", help="a snapshot's frozen images")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


if __name__ == "__main__":
    sys.exit(main())
