"""waitlist"""
