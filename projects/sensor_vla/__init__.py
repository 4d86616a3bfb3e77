"""Sensor VLA (system 4): vision-language-action policy with an optional force / OCT sensor
encoder, fusion strategies, a VL feature cache and a leak-free action expert."""
