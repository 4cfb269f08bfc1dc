"""The PySide6 views, docks and controllers of LesionViewer (imports core and the store)."""
