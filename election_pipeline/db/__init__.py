"""The operational database: models, Pydantic schemas, CRUD and the pipeline's bulk writers."""
