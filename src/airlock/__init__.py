"""airlock: a privacy-first, OpenAI-compatible gateway for self-hosted LLMs."""

__all__ = ["__version__"]

__version__ = "0.1.0"
