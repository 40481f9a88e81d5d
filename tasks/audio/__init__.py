"""The audio modality: loaders, features (log-mel, MFCC), networks (CNN, GRU/LSTM, autoencoder)."""
