"""The catalog: products and variants, reading, staff edits, CSV, inventory, search and the demo seed."""
