"""Thin views: validate, authorize, write an event or read a table, answer JSON."""
