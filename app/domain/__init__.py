"""The service's operations, free of any web framework: REST and GraphQL both call these."""
