"""LiDAR-Vision LLM (system 2): view-aware query transformers over BEV LiDAR and multi-view
camera features feeding a LoRA-tuned causal LLM that answers driving questions."""
