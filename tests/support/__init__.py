"""Test helpers shared across the suite (real servers, spec validation)."""
