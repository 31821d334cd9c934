"""Case files in, validated cases out: units, field types, sections, the schema, the catalogue of
built-in entries."""
