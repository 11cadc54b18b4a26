"""Faust agents, one module per context; each binds a topic and a table to a pure decision."""
