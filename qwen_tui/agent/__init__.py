"""The agent side of qwen-tui: turning what the model writes into tool calls."""
