"""The model machinery: roles, the registry, loaders, the device manager, adapters and model classes."""
