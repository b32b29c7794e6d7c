"""groups: group bookings (docs/groups.md)"""
