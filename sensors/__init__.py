"""Sensor drivers behind one small async interface, plus simulated sensors."""
