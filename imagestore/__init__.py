"""A client for the image dataset storage service: `Client`, `AsyncClient` and the `imagestore`
command (cli.py). It imports nothing from the service (`app/`): it speaks only its REST API."""

from imagestore.auth import ClientCredentials
from imagestore.calls import Image, Page, StoredFile
from imagestore.client import AsyncClient, Client
from imagestore.errors import ImageStoreError

__all__ = ["AsyncClient", "Client", "ClientCredentials", "Image", "ImageStoreError", "Page", "StoredFile"]
