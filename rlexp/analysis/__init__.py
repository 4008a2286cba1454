"""The DQN paper's instruments that look inside a trained agent: the t-SNE map of its representation (embedding)."""
