"""LoRA adapters from `rag finetune`, merged into a local model's weights when it loads.

Merged, an adapter costs nothing per token: the int8 decode copies and the blocked attention
see ordinary linear layers. Kept apart (peft's default), every projection would run twice and
the int8 decode path, which wraps plain layers only, would be lost.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TRAINING_INFO = "training.json"
# adapters this project trained and ships, one folder per model preset (README, Evaluation)
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "adapters"


def resolve_adapter(setting: str, model: str) -> Path | None:
    """The adapter folder the `adapter` setting names for `model`, or None for none.

    "auto" takes the adapter shipped for a preset (rag/adapters/<preset>/) when there is one;
    "" or "none" means the plain model; anything else is a folder from `rag finetune`.
    """
    value = setting.strip()
    if value.lower() in ("", "none"):
        return None
    if value.lower() == "auto":
        from rag.models import GENERATOR_PRESETS

        shipped = SHIPPED_DIR / model
        if model in GENERATOR_PRESETS and (shipped / "adapter_config.json").is_file():
            return shipped
        return None
    return Path(value).expanduser()


def read_adapter(adapter_dir: str | Path) -> dict[str, Any]:
    """training.json of an adapter folder (empty for a peft adapter from elsewhere)."""
    path = Path(adapter_dir)
    if not (path / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{path} is not a LoRA adapter folder (no adapter_config.json)")
    info = path / TRAINING_INFO
    return json.loads(info.read_text(encoding="utf-8")) if info.is_file() else {}


def check_base(adapter_dir: str | Path, model_path: Path | None) -> None:
    """Refuse an adapter trained on another model: its deltas would be noise on this one."""
    info = read_adapter(adapter_dir)
    trained = info.get("base_model_path")
    if trained and model_path is not None and Path(trained).name != model_path.name:
        raise ValueError(f"the adapter in {adapter_dir} was trained on {Path(trained).name}, "
                         f"not on {model_path.name}: pass --model {info.get('base_model')}")


def merge_adapter(model: Any, adapter_dir: str | Path, model_path: Path | None = None) -> Any:
    """`model` with the adapter's deltas added to its weights (in place); returns the model."""
    from peft import PeftModel

    check_base(adapter_dir, model_path)
    peft_model = PeftModel.from_pretrained(model, str(adapter_dir))
    return peft_model.merge_and_unload()
