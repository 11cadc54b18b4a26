"""HTTP in, topic writes out; reads served from the workers' tables."""
