"""The IVOA TAP/UWS service: ``proxcompute serve`` or ``create_app(ServiceConfig(...))``."""

from proxcompute.service.access import AccessControl, Quota, hash_password
from proxcompute.service.access_file import AccessFileError
from proxcompute.service.app import create_app
from proxcompute.service.background import BackgroundServer, serve_in_background
from proxcompute.service.config import ServiceConfig

__all__ = [
    "AccessControl",
    "AccessFileError",
    "BackgroundServer",
    "Quota",
    "ServiceConfig",
    "create_app",
    "hash_password",
    "serve_in_background",
]
