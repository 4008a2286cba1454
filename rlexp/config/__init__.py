"""The config: its typed schema, the checks run before anything is built, the algorithm registry, the device."""
