"""Development tools: the terminal and browser chat simulators."""
