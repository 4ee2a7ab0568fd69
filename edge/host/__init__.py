"""What the runtime needs from the host: state paths, file modes, memory, systemd."""
