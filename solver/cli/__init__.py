"""The perfcost command line: one module per topic, each adding its commands to one app."""
