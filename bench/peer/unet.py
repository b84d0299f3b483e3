"""The paper's U-Net in PyTorch, module for module the same as src/models/unet.ts (same parameter names)."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class FiLM(nn.Module):
    def __init__(self, context_size, channels):
        super().__init__()
        self.channels = channels
        self.fc1 = nn.Linear(context_size, channels)
        self.fc2 = nn.Linear(channels, 2 * channels)

    def forward(self, x, context):
        gb = self.fc2(F.gelu(self.fc1(context)))
        gamma, beta = gb.reshape(gb.shape[0], 2 * self.channels, 1, 1).split(self.channels, 1)
        return x * gamma + beta


class DoubleConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x):
        x = self.bn1(F.gelu(self.conv1(x)))
        return self.bn2(F.gelu(self.conv2(x)))


class EncoderBlock(nn.Module):
    def __init__(self, context_size, cin, cout, pool):
        super().__init__()
        self.pool = pool
        self.film = FiLM(context_size, cin)
        self.conv = DoubleConv(cin, cout)

    def forward(self, x, context):
        if self.pool:
            x = F.max_pool2d(x, 2)
        return self.conv(self.film(x, context))


class DecoderBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = DoubleConv(cin, cout)

    def forward(self, x, size=None):
        h = self.conv(x)
        if size is None or tuple(h.shape[2:]) == tuple(size):
            return h
        return F.interpolate(h, size=size, mode="bilinear", align_corners=True)


class UNet(nn.Module):
    def __init__(self, in_channels=1, out_channels=1, base_channels=16, depth=3, num_classes=10, extra_context=0):
        super().__init__()
        ctx = 1 + num_classes + extra_context
        width = lambda i: base_channels * 2 ** i
        self.depth = depth
        for i in range(depth):
            self.add_module(f"enc{i}", EncoderBlock(ctx, in_channels if i == 0 else width(i - 1), width(i), i > 0))
        for i in range(depth):
            level = depth - 1 - i
            cin = width(level) if i == 0 else 2 * width(level)
            self.add_module(f"dec{i}", DecoderBlock(cin, width(max(level - 1, 0))))
        self.out = nn.Conv2d(base_channels, out_channels, 3, padding=1)

    def forward(self, x, context):
        skips = []
        h = x
        for i in range(self.depth):
            h = getattr(self, f"enc{i}")(h, context)
            skips.append(h)
        d = None
        for i in range(self.depth):
            level = self.depth - 1 - i
            inp = skips[level] if d is None else torch.cat([d, skips[level]], 1)
            size = tuple(skips[level - 1].shape[2:]) if level > 0 else None
            d = getattr(self, f"dec{i}")(inp, size)
        return self.out(d)
