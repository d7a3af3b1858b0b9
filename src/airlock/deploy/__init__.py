"""Deployment kit: model/GPU catalogs, the vLLM planner and launcher, sealed weights."""
