"""Request and response models (pydantic v2), with examples for the OpenAPI page."""
