"""Dependencies, declared once as `Annotated` aliases; route functions just use the names."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.domain.images import ImageService
from app.domain.scope import EVERYONE, Scope
from app.services import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_images(request: Request) -> ImageService:
    return get_services(request).images


def get_scope() -> Scope:
    # Until authentication is configured every caller sees every image.
    return EVERYONE


ServicesDep = Annotated[Services, Depends(get_services)]
ImagesDep = Annotated[ImageService, Depends(get_images)]
ScopeDep = Annotated[Scope, Depends(get_scope)]
