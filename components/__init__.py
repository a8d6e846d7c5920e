"""Pipeline steps as plain functions. Drivers (Prefect, DVC, BentoML) live elsewhere."""
