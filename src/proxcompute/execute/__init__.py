"""The only package that builds Dask graphs (public Dask API only)."""

from proxcompute.execute.progress import progress_bar
from proxcompute.execute.scheduler import current_client, local_client
from proxcompute.execute.tasks import map_tasks

__all__ = ["current_client", "local_client", "map_tasks", "progress_bar"]
