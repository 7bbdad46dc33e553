"""Every word the bot says: `messages/<locale>/<name>.j2` (jinja2), zh first, en complete."""
