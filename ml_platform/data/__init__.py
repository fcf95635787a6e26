"""Data versioning: the DataStore interface, the embedded store and the lakeFS backend."""
