"""Telephony adapters: one module per protocol, each turning its wire format into CallEvents."""
