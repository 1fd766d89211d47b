"""screenpop: the caller's customer card in the agent's browser before the phone is picked up."""

__version__ = "0.1.0"
