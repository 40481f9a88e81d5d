"""The text modality: documents (a text column of a table, or a folder of .txt files per class)."""
