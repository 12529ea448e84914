"""The root of every error LearnFlow raises on purpose."""


class LearnFlowError(Exception):
    """Base class of all LearnFlow errors; catch this to handle any of them."""


class ConfigurationError(LearnFlowError):
    """The settings are inconsistent or unsafe for the environment.

    Fix the named ``LEARNFLOW_…`` variable; dev defaults are refused outside ``environment=dev``.
    """


class InvalidEventError(LearnFlowError):
    """An event value failed validation.

    ``fields`` names every offending field (dotted path), ``reason`` is the human-readable
    summary. Such events belong on the dead-letter topic, never in a student's state.
    """

    def __init__(self, reason: str, fields: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fields = fields
