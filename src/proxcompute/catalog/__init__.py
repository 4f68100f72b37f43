"""The lazy, user-facing Catalog: each method adds one plan node."""

from proxcompute.catalog._catalog import Catalog
from proxcompute.catalog._crossmatch import crossmatch
from proxcompute.catalog._open import from_dataframe, open_catalog

__all__ = ["Catalog", "crossmatch", "from_dataframe", "open_catalog"]
