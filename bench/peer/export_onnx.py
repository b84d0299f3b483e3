"""PyTorch's own ONNX export of a trained run's U-Net, the way a PyTorch user would make one.

    /usr/bin/python3 bench/peer/export_onnx.py CONFIG_JSON CHECKPOINT OUT.onnx [model|ema]

Loads the checkpoint's weights (or its moving average, `ema`) into bench/peer/unet.py's U-Net and exports, with
torch.onnx.export (opset 17), a graph that predicts the noise with our input and output names: sample
[N,1,S,S], timestep and label (int64 [N]), for upscalers conditioning [N,1,S,S] and, with conditioning
augmentation, conditioning_level [N]; output eps. The FiLM context [t/(T-1), one-hot label (, level)] is
computed in the graph, as the PyTorch peer of the benchmark computes it.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.append(os.path.join(HERE, '..', '..', 'scripts', 'fixtures'))
from checkpoint import read_safetensors  # noqa: E402
from unet import UNet  # noqa: E402


class NoisePredictor(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        u = model['unet']
        self.T = model['schedule']['numTimesteps']
        self.K = u['numClasses']
        self.upscaler = 'lowResSize' in model
        self.augmented = 'conditioningNoise' in model
        self.net = UNet(u['inChannels'], u['outChannels'], u['baseChannels'], u['depth'], u['numClasses'], u.get('extraContext', 0))

    def forward(self, sample, timestep, label, conditioning=None, conditioning_level=None):
        parts = [(timestep.float() / max(self.T - 1, 1)).unsqueeze(1), F.one_hot(label, self.K).float()]
        if conditioning_level is not None:
            parts.append(conditioning_level.unsqueeze(1))
        x = sample if conditioning is None else torch.cat([sample, conditioning], 1)
        return self.net(x, torch.cat(parts, 1))


def main():
    config_path, checkpoint, out = sys.argv[1:4]
    weights = sys.argv[4] if len(sys.argv) > 4 else 'model'
    with open(config_path) as f:
        model = json.load(f)['model']
    m = NoisePredictor(model)
    tensors, _ = read_safetensors(checkpoint)
    prefix = 'ema.' if weights == 'ema' else ''
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix) and not k.startswith('optimizer.') and (prefix or not k.startswith('ema.'))}
    m.net.load_state_dict(state, strict=True)
    m.eval()
    s = model['imageSize']
    n = 2
    args = [torch.randn(n, 1, s, s), torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long)]
    names = ['sample', 'timestep', 'label']
    if m.upscaler:
        args.append(torch.randn(n, 1, s, s))
        names.append('conditioning')
    if m.augmented:
        args.append(torch.zeros(n))
        names.append('conditioning_level')
    torch.onnx.export(m, tuple(args), out, opset_version=17, input_names=names, output_names=['eps'],
                      dynamic_axes={k: {0: 'batch'} for k in names + ['eps']})


if __name__ == '__main__':
    main()
