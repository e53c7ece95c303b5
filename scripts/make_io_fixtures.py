"""Writes Tests/CollieIOTests/Fixtures/reference.safetensors with the reference `safetensors`
library (run by hand: pip install torch safetensors). The Swift tests read it back."""
from pathlib import Path

import torch
from safetensors.torch import save_file

out = Path(__file__).resolve().parent.parent / "Tests/CollieIOTests/Fixtures/reference.safetensors"
tensors = {
    "f32": torch.arange(12, dtype=torch.float32).reshape(3, 4) / 8,
    "bf16": torch.tensor([1.0, -2.5, 3.140625, 1e-3], dtype=torch.bfloat16),
    "f16": torch.tensor([0.5, -65504.0, 6.1e-5], dtype=torch.float16),
    "i64": torch.tensor([[1, -2], [3, 2**40]], dtype=torch.int64),
    "scalar": torch.tensor(7.0),
    "empty": torch.zeros(0, 3),
}
save_file(tensors, str(out), metadata={"format": "pt", "note": "collie io fixture"})
print(out)
