"""The sources: parsers of store listings, GBFS feeds and charger feeds into entities.

Parsing here is pure: nothing in this package imports PostGIS, Redis or Flask.
"""
