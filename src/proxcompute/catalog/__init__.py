"""The lazy, user-facing Catalog: each method adds one plan node."""

from proxcompute.catalog._catalog import Catalog
from proxcompute.catalog._crossmatch import crossmatch
from proxcompute.catalog._open import from_dataframe, open_catalog
from proxcompute.catalog._skymap import SkyMap

__all__ = ["Catalog", "SkyMap", "crossmatch", "from_dataframe", "open_catalog"]
