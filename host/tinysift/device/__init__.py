"""Talking to the device: the TSP/1 serial protocol, serial links, the QEMU runner, energy."""
