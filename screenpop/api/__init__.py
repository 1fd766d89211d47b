"""The HTTP and websocket API, one module per audience: telephony (the generic webhook), twilio, agents (session
and socket), admin, pages; `deps` holds what they share (services, session, body readers, the JSON error)."""
