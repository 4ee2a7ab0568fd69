"""A fleet of devices on existing MQTT brokers: bridge configuration, signed gallery updates.

``bridge`` writes a Mosquitto bridge snippet (site broker -> central broker); ``signing`` holds
the ed25519 keys; ``package`` builds and opens a signed, versioned, encrypted gallery update;
``device`` is the daemon's side: subscribe, verify, import atomically, report the version.
The modules that need ``cryptography`` are imported only by the fleet commands and by a daemon
whose ``[fleet]`` is enabled.
"""
