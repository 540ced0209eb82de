"""Collect: validate what users log, record predictions and outcomes, group single writes."""
