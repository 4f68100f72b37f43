"""The IVOA TAP/UWS service: ``proxcompute serve`` or ``create_app(ServiceConfig(...))``."""

from proxcompute.service.app import create_app
from proxcompute.service.config import ServiceConfig

__all__ = ["ServiceConfig", "create_app"]
