"""The CAS classifier in PyTorch, layer for layer the same as src/models/classifier.ts."""
import torch.nn as nn


def Classifier(image_size=28, in_channels=1, num_classes=10):
    side = image_size // 4 - 1
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1),
        nn.GELU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3),
        nn.GELU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * side * side, 128),
        nn.GELU(),
        nn.Linear(128, num_classes),
    )
