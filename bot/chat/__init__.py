"""The conversation runtime: context, router, keywords, replies and their rendering."""
