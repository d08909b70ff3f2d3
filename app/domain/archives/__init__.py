"""Whole datasets in and out as `.zip`: export (streamed) and import (legacy archives too)."""
