"""LesionViewer, the clinician application: store, views, workers, reports, command line."""

__version__ = "0.1.0"
