"""Bolt listeners: parse, check permission, call a service, render, reply."""
