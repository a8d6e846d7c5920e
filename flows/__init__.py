"""Drivers over the components: Prefect flows and the `mlops` command line."""
