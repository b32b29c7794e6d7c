"""medspa-jobs helper package, vendored into every function's deployed source as `shared`."""
