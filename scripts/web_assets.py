"""Fetch the third-party files the service's pages load into app/static/: GraphiQL's (the
versions Strawberry's page names) into graphiql/, Swagger UI's and ReDoc's (the versions
app/rest/docs.py pins) into docs/, the gallery's (app/rest/gallery.py) into gallery/vendor/.

    python -m scripts.web_assets          # (re)write them: `make web-assets`
    python -m scripts.web_assets --check  # only check the committed ones

The files are committed, so neither the service nor its Docker image needs this script or the
internet; run it when a Strawberry upgrade changes the versions its page names, or after a
version in app/rest/docs.py changes. Each package version is downloaded with `npm pack` (the npm
registry is reachable where unpkg.com and jsDelivr may not be; npm checks the tarball against
the registry's own hash). GraphiQL's files are also checked against the integrity hashes in
Strawberry's page, which the browser checks again. Each directory's LICENSES.txt collects its
packages' licenses.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from strawberry.http.ides import get_graphql_ide_html

from app.graphql import ide
from app.rest import docs, gallery

# A <script src=...> or <link href=...> tag of the page, with its Subresource Integrity hash.
TAG = re.compile(r"<(?:script|link)\b[^>]*>")
INTEGRITY = re.compile(r'integrity="(?P<algorithm>sha256|sha384|sha512)-(?P<digest>[^"]+)"')


@dataclass(frozen=True)
class Asset:
    package: str  # as npm names it: react, @graphiql/plugin-explorer
    version: str
    path: str  # inside the package
    integrity: tuple[str, str] | None  # (algorithm, base64 digest) the page pins, if it does
    name: str  # in its directory

    def matches(self, content: bytes) -> bool:
        if self.integrity is None:
            return True
        algorithm, digest = self.integrity
        return base64.b64encode(hashlib.new(algorithm, content).digest()).decode() == digest


@dataclass(frozen=True)
class Page:
    """A page's vendored files and where they go."""

    title: str  # for LICENSES.txt
    directory: Path
    assets: list[Asset]


def graphiql_assets() -> list[Asset]:
    assets = []
    for tag in TAG.findall(get_graphql_ide_html("graphiql")):
        url = ide.UNPKG_URL.search(tag)
        if url is None:
            continue
        integrity = INTEGRITY.search(tag)
        if integrity is None:
            raise SystemExit(f"{url[0]} has no integrity hash in Strawberry's page: nothing to check the file against")
        assets.append(
            Asset(
                package=f"@{url['scope']}/{url['name']}" if url["scope"] else url["name"],
                version=url["version"],
                path=url["path"],
                integrity=(integrity["algorithm"], integrity["digest"]),
                name=ide.local_name(url),
            )
        )
    names = [asset.name for asset in assets]
    if len(set(names)) != len(names):
        raise SystemExit(f"two URLs share a local file name: {names}")
    return assets


def pages() -> list[Page]:
    def vendored(files: tuple[docs.Vendored, ...]) -> list[Asset]:
        return [
            Asset(package=file.package, version=file.version, path=file.path, integrity=None, name=file.name)
            for file in files
        ]

    return [
        Page("GraphiQL (app/graphql/ide.py)", ide.STATIC_DIR, graphiql_assets()),
        Page("/docs and /redoc (app/rest/docs.py)", docs.STATIC_DIR, vendored(docs.ASSETS)),
        # Its own directory: fetching empties the directory of every file it did not write.
        Page("/gallery (app/rest/gallery.py)", gallery.VENDOR_DIR, vendored(gallery.ASSETS)),
    ]


def fetch(page: Page) -> None:
    assets = page.assets
    page.directory.mkdir(parents=True, exist_ok=True)
    licenses = [
        f"Third-party files served with {page.title}, fetched from the npm registry\n"
        "by scripts/web_assets.py. Each package's license follows."
    ]
    with tempfile.TemporaryDirectory() as scratch:
        packages = sorted({(asset.package, asset.version) for asset in assets})
        for package, version in packages:
            tarball = Path(scratch) / unpack(package, version, Path(scratch))
            with tarfile.open(tarball) as archive:
                for asset in assets:
                    if (asset.package, asset.version) != (package, version):
                        continue
                    content = read(archive, f"package/{asset.path}")
                    if not asset.matches(content):
                        raise SystemExit(f"{package}@{version}/{asset.path} does not match the page's integrity hash")
                    (page.directory / asset.name).write_bytes(content)
                    print(f"{asset.name}: {len(content):,} bytes")
                licenses.append(license_text(archive, package, version))
    (page.directory / "LICENSES.txt").write_text("\n\n".join(licenses) + "\n")
    # Files of earlier versions: nothing names them any more.
    keep = {asset.name for asset in assets} | {"LICENSES.txt"}
    for stale in page.directory.iterdir():
        if stale.name not in keep:
            stale.unlink()
            print(f"removed {stale.name}")


def unpack(package: str, version: str, directory: Path) -> str:
    """`npm pack` downloads a package's tarball from the registry; it prints the file name."""
    result = subprocess.run(
        ["npm", "pack", "--silent", f"{package}@{version}"], cwd=directory, capture_output=True, text=True, check=True
    )
    return result.stdout.strip().splitlines()[-1]


def read(archive: tarfile.TarFile, member: str) -> bytes:
    file = archive.extractfile(member)
    if file is None:
        raise SystemExit(f"{member} is not a file")
    return file.read()


def license_text(archive: tarfile.TarFile, package: str, version: str) -> str:
    header = f"==== {package}@{version} ===="
    for member in ("package/LICENSE", "package/LICENSE.md", "package/LICENSE.txt"):
        if member in archive.getnames():
            return f"{header}\n\n{read(archive, member).decode().strip()}"
    manifest = json.loads(read(archive, "package/package.json"))
    # Some packages (@graphiql/plugin-explorer) ship no license file, only the field.
    return f"{header}\n\nLicense: {manifest.get('license')} (package.json; the package has no license file)"


def check(page: Page) -> list[str]:
    problems = []
    for asset in page.assets:
        path = page.directory / asset.name
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif not asset.matches(path.read_bytes()):
            problems.append(f"{path} does not match the integrity hash of {asset.package}@{asset.version}/{asset.path}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check the files in app/static/")
    arguments = parser.parse_args()
    problems = []
    for page in pages():
        if not arguments.check:
            fetch(page)
        problems += check(page)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print("Run `make web-assets` to fetch them.", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
