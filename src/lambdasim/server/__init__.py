"""The HTTP shell around the library: one AWS-compatible endpoint."""
