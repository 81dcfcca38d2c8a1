"""How the two servers start: the action server, and the Rasa server with its patches."""
