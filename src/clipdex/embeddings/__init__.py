"""The clip-retrieval wing: embedding folders (img_emb/ text_emb/ metadata/), their FAISS indexes, serving them."""

from clipdex.embeddings.embed import EmbedReport, embed_pool, import_embeddings
from clipdex.embeddings.index import EmbeddingIndex, build_index, merge_index, search_index_text
from clipdex.embeddings.layout import read_parts, write_clip_retrieval

__all__ = ["EmbedReport", "EmbeddingIndex", "build_index", "embed_pool", "import_embeddings", "merge_index",
           "read_parts", "search_index_text", "write_clip_retrieval"]
