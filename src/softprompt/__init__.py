"""softprompt: prompt tuning (Lester, Al-Rfou, Constant 2021) for any frozen Hugging Face LM.

Train one small soft prompt per task on a frozen model; serve many tasks from one batch.
"""
from softprompt.api import classify, evaluate_prompt, generate, train
from softprompt.core.config import PromptConfig, TrainConfig
from softprompt.core.loading import load_model
from softprompt.core.model import PromptedLM
from softprompt.core.prompt import SoftPrompt
from softprompt.core.prompt_file import export_peft, import_peft, load_prompt, read_prompt, save_prompt
from softprompt.errors import DataError, ModelMismatchError, SoftPromptError
from softprompt.tasks.registry import get_task, task_names
from softprompt.training.checkpoint import ResumeMismatch

__version__ = "0.1.0"

__all__ = [
    "DataError", "ModelMismatchError", "PromptConfig", "PromptedLM", "ResumeMismatch", "SoftPrompt", "SoftPromptError",
    "TrainConfig", "classify", "evaluate_prompt", "export_peft", "generate", "get_task", "import_peft",
    "load_model", "load_prompt", "read_prompt", "save_prompt", "task_names", "train",
]
