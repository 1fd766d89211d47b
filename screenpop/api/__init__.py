"""The HTTP and websocket API, one module per audience: telephony, agents (session + socket), pages."""
