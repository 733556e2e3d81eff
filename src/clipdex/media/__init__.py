"""Media: safe image decoding and the sources that list items to index."""

from clipdex.media.decode import DecodeOptions, decode_image, to_rgb
from clipdex.media.pipeline import Decoded, decode_stream, default_workers
from clipdex.media.pools import iter_source
from clipdex.media.sources import (
    IMAGE_EXTENSIONS,
    Item,
    SourceOptions,
    display_path,
    iter_folder,
    iter_karpathy,
    iter_table,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "DecodeOptions",
    "Decoded",
    "Item",
    "SourceOptions",
    "decode_image",
    "decode_stream",
    "default_workers",
    "display_path",
    "iter_folder",
    "iter_karpathy",
    "iter_source",
    "iter_table",
    "to_rgb",
]
