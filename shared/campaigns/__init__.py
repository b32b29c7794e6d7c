"""SMS campaigns: a clinic's marketing message to a filtered audience, sent once per recipient (docs/campaigns.md)."""
