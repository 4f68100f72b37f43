"""The IVOA TAP/UWS service: ``proxcompute serve`` or ``create_app(ServiceConfig(...))``."""

from proxcompute.service.app import create_app
from proxcompute.service.background import BackgroundServer, serve_in_background
from proxcompute.service.config import ServiceConfig

__all__ = ["BackgroundServer", "ServiceConfig", "create_app", "serve_in_background"]
