"""Errors of the local platform."""

from learnflow.exceptions import LearnFlowError


class ServiceStartError(LearnFlowError):
    """A local service did not come up in time.

    The message names the service, the time budget and the last lines of its log under ``.run/``.
    """


class MissingDependencyError(LearnFlowError):
    """A binary or download the platform needs is absent.

    Run ``make bootstrap`` (``make up`` does it too), which installs it.
    """


class PlatformError(LearnFlowError):
    """The local platform cannot do what was asked in its present state; the message says
    what to do first."""
