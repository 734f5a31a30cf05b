"""Campaigns and journeys: plan, send through `bot/`, measure (issue 6)."""
