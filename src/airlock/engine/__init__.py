"""The embedded engine: llama.cpp chat/completions and the packaged embedding model."""
