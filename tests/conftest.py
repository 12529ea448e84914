"""Suite-wide settings."""

from hypothesis import settings

# Time is measured by the benchmarks, never asserted by tests: no per-example deadline.
settings.register_profile("learnflow", deadline=None, print_blob=True)
settings.load_profile("learnflow")
