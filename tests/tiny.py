"""Tiny randomly initialised models and a word-level tokenizer, built in-process (no network)."""
from __future__ import annotations

import dataclasses

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from softprompt.core.model import PromptedLM
from softprompt.tasks.base import Example, Task

WORDS = (
    "the a movie film was is great good bad terrible awful fine boring fun sst2 sentence : "
    "positive negative yes no true false question passage premise hypothesis entailment "
    "not_entailment contradiction neutral answer context what who when why it this that and "
    "of to in love hate plot actors story long short very really quite funny sad dull smart "
    "choice1 choice2 because so word sentence1 sentence2 equivalent not_equivalent duplicate "
    "not_duplicate cb rte copa wic wsc boolq mrpc qqp multirc record squad ? . , ! 0 1 2 3"
).split()
SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]


def make_tokenizer(bos: bool = True, eos_after_input: bool = False) -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate(SPECIALS + sorted(set(WORDS)))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit()])
    if eos_after_input:
        tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 3)])
    elif bos:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 2)])
    from tokenizers import decoders

    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )


def tiny_llama(seed: int = 0, bos: bool = True) -> PromptedLM:
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = make_tokenizer(bos=bos)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        pad_token_id=0, bos_token_id=2, eos_token_id=3, tie_word_embeddings=True,
    )
    return PromptedLM(LlamaForCausalLM(config), tokenizer, model_id="tiny-llama")


def tiny_gemma3(seed: int = 0) -> PromptedLM:
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    tokenizer = make_tokenizer(bos=True)
    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=1, head_dim=8, max_position_embeddings=256,
        pad_token_id=0, bos_token_id=2, eos_token_id=3, sliding_window=8, final_logit_softcapping=30.0,
    )
    return PromptedLM(Gemma3ForCausalLM(config), tokenizer, model_id="tiny-gemma3")


def tiny_t5(seed: int = 0) -> PromptedLM:
    from transformers import T5Config, T5ForConditionalGeneration

    tokenizer = make_tokenizer(bos=False, eos_after_input=True)
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=len(tokenizer), d_model=32, d_ff=64, d_kv=8, num_layers=2, num_heads=4,
        pad_token_id=0, eos_token_id=3, decoder_start_token_id=0, feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
    )
    return PromptedLM(T5ForConditionalGeneration(config), tokenizer, model_id="tiny-t5")


MAKERS = {"llama": tiny_llama, "gemma3": tiny_gemma3, "t5": tiny_t5}


class ToyTask(Task):
    """Sentiment over the tiny vocabulary: learnable from word identity (12 examples, every split)."""

    name = "toy"
    label_words = ("negative", "positive")

    def __init__(self):
        super().__init__(None)

    def load(self, split):
        good = ["great fun", "good story", "funny smart movie", "love this film", "really good", "great actors"]
        bad = ["bad plot", "terrible film", "awful boring story", "hate this movie", "really dull", "sad bad actors"]
        return ([Example(t, "positive", self.label_words) for t in good]
                + [Example(t, "negative", self.label_words) for t in bad])

    def compute_metrics(self, predictions, examples):
        return {"accuracy": 100.0 * sum(p == e.target for p, e in zip(predictions, examples)) / len(examples)}


class LongShortTask(ToyTask):
    """The toy task with a few long inputs, so a random batch is mostly padding."""

    def load(self, split):
        rows = super().load(split)
        for i in (1, 6, 9):
            rows[i] = dataclasses.replace(rows[i], input=" ".join([rows[i].input] * 12))
        return rows
