"""LearnFlow: learning analytics for programming courses.

The modules directly in this package are the pure domain kernel (event schema, settings, time
budgets); they import no Ray, Kafka, Redis or PostgreSQL client. ``ops.platform`` and
``learnflow.migrations`` are the command line's adapters to the local services.
"""

__version__ = "0.1.0"
