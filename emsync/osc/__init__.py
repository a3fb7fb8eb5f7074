"""The OSC service DAW/NLE plugins talk to (docs/osc.md): the wire format, the address table
over the scoring service, clip transfers, pushes to AbletonOSC and REAPER, the UDP loop."""
