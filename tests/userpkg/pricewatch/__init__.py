"""pricewatch: a user's package with tables of its own next to myapp's (docs/your-own-tables.md)."""
