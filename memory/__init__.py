"""Memory of generative agents: the stream, embeddings and the paper's retrieval score."""

from memory.embeddings import Embedder, HashEmbedder, MiniLMEmbedder, load_embedder
from memory.retrieval import RetrievalWeights, minmax, recency, score, top_k
from memory.stream import KINDS, MemoryRecord, MemoryStream, Scored

__all__ = [
    "KINDS",
    "Embedder",
    "HashEmbedder",
    "MemoryRecord",
    "MemoryStream",
    "MiniLMEmbedder",
    "RetrievalWeights",
    "Scored",
    "load_embedder",
    "minmax",
    "recency",
    "score",
    "top_k",
]
