"""Function approximators: torsos (MLP, Nature CNN), Q-networks, actors and critics, target updates."""
