"""All SQL lives here: one module per resource, functions taking a Session."""
