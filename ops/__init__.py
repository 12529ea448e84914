"""Orchestration at the top of the house: the ``learnflow`` command and the local platform.

This package may import every other one (the kernel ``learnflow``, ``actors``, ``ingest``,
``serve``, ``jobs``); none of them imports it.
"""
