"""The agents, one module per algorithm: its update, its schema, its checks and its builder (`ALGORITHM`)."""
