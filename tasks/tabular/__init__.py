"""The tabular modality: tables (CSV, Parquet) through a scikit-learn / imbalanced-learn pipeline."""
