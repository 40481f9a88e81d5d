"""The multimodal modality: several inputs, each a branch of its own modality, fused."""
