"""The HATS-compatible on-disk layout: properties, partition list, partition files. No dask."""

from proxcompute.storage.layout import (
    PartitionPixel,
    partition_path,
    read_partition_info,
    write_partition_info,
)
from proxcompute.storage.properties import read_properties, write_collection_properties, write_properties
from proxcompute.storage.reader import (
    CatalogMeta,
    CollectionInfo,
    leaf_columns,
    read_catalog_meta,
    read_collection,
    read_partition,
    resolve_catalog_paths,
    select_row_groups,
)
from proxcompute.storage.writer import (
    DEFAULT_ROW_GROUP_ROWS,
    CatalogBuilder,
    check_destination,
    publish,
    sort_by_index,
    write_partition_file,
)

__all__ = [
    "DEFAULT_ROW_GROUP_ROWS",
    "CatalogBuilder",
    "CatalogMeta",
    "CollectionInfo",
    "PartitionPixel",
    "check_destination",
    "leaf_columns",
    "partition_path",
    "publish",
    "read_catalog_meta",
    "read_collection",
    "read_partition",
    "read_partition_info",
    "read_properties",
    "resolve_catalog_paths",
    "select_row_groups",
    "sort_by_index",
    "write_collection_properties",
    "write_partition_file",
    "write_partition_info",
    "write_properties",
]
