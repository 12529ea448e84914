"""The Ray Serve application: HTTP API (FastAPI) and its deployments.

Import Ray's Serve as ``from ray import serve as ray_serve`` wherever both meet.
"""
