"""mailwright: a mail transfer agent for organisations that send and receive at volume."""

__version__ = "0.1.0"
