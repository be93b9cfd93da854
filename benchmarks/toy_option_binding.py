"""Can the nano LLM learn to answer a multiple-choice question with the option's letter, and what makes it learn?

A diagnostic of the failure measured in experiments 5 to 10 (docs/training.md): the bundled-size LLM answers
nearly every multiple-choice question "B", on its training questions too, while it names the same colours and
categories when asked openly. This script isolates that skill from vision. The LLM of the nano recipe (its
Qwen2 shape, learning rate, optimizer, schedule and batch size, read from the recipe config) is trained from scratch on token sequences whose first
position is an *object embedding*: a fixed random code of one of eight colours plus a random per-sample nuisance
vector, through a trained linear layer, as the object tokens reach the LLM through the object MLP. Tasks:

- ``open``: ``[object] which colour ? answer`` -> the colour word;
- ``mcq``: ``[object] which colour ? ( A ) w ( B ) w ( C ) w ( D ) w answer`` -> the letter of the right colour
  (``--mcq-answer colour-letter``: the colour word, then its letter, the model's own colour fed back when scored;
  ``--option-order colour-first``: options written ``w ( A )``);
- ``lookup``: ``[object] which letter is w ? ( A ) ... answer`` -> the letter of ``w`` (text only: the object is an
  unrelated one, so only the word in the question tells the answer).

Each mixture of tasks is trained with several seeds; the multiple-choice accuracy on fresh questions is printed
every ``--eval-every`` steps and written as JSON:

    python benchmarks/toy_option_binding.py --steps 2000 --seeds 0 1 --out benchmarks/results/experiment11/toy_option_binding.json
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn
from transformers import Qwen2Config, Qwen2Model

from pixelrefer.presets import RANDOM_PRESETS
from pixelrefer.recipes.config import load_recipe_config
from pixelrefer.synth.tasks import LETTERS
from pixelrefer.synth.world import COLOURS
from pixelrefer.train.config import TrainConfig
from pixelrefer.train.optim import build_optimizer, build_scheduler, no_decay
from pixelrefer.train.stages import get_stage

# "Ġ" + word: the same word after a space, a token of its own in a byte-level BPE (the qwen2 pre-tokenizer's);
# "Ġ" alone: a space token, as the "options" and "words" pre-tokenizers split it off (synth/config.py, PRETOKENIZERS)
WORDS = ("<pad>", "<object>", "which", "colour", "letter", "is", "?", "(", ")", "answer", "Ġ", *LETTERS, *COLOURS,
         *(f"Ġ{c}" for c in COLOURS))
# how an option names its colour: as the open answer does, as one spaced BPE token, or a space token then the answer's
OPTION_FORMATS = {"joined": lambda c: [c], "bpe": lambda c: [f"Ġ{c}"], "words": lambda c: ["Ġ", c]}
logger = logging.getLogger("toy_option_binding")
VOCAB = {w: i for i, w in enumerate(WORDS)}
COLOUR_NAMES = tuple(COLOURS)
FEATURE_DIM = 32
MIXTURES = {
    "open+mcq": {"open": 0.5, "mcq": 0.5},
    "open+mcq 17%": {"open": 0.83, "mcq": 0.17},  # the share of multiple-choice turns in the nano recipe's data
    "open+mcq 30%": {"open": 0.7, "mcq": 0.3},
    "open+mcq+lookup": {"open": 0.4, "mcq": 0.4, "lookup": 0.2},
    "mcq only": {"mcq": 1.0},
}


class Toy(nn.Module):
    """The nano LLM (from its preset) with a linear object projector and a tied output head."""

    def __init__(self, preset: str, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        text = dict(RANDOM_PRESETS[preset]["text"], vocab_size=len(WORDS), tie_word_embeddings=True)
        self.llm = Qwen2Model(Qwen2Config(**text))
        self.object_proj = nn.Linear(FEATURE_DIM, text["hidden_size"])

    def forward(self, ids: torch.Tensor, objects: torch.Tensor, answer_at: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, T, V)`` at the ``(B, T)`` positions ``answer_at``."""
        embeds = self.llm.embed_tokens(ids)
        embeds = torch.cat([self.object_proj(objects)[:, None], embeds[:, 1:]], dim=1)
        hidden = self.llm(inputs_embeds=embeds, attention_mask=(ids != VOCAB["<pad>"]).long()).last_hidden_state
        at = hidden[torch.arange(len(ids))[:, None], answer_at]
        return at @ self.llm.embed_tokens.weight.T


class World:
    """Samples of the three tasks: token ids, object features, where the answer is predicted, the answer id."""

    def __init__(self, seed: int, options: str, mcq_answer: str = "letter", option_order: str = "letter-first") -> None:
        self.gen = torch.Generator().manual_seed(seed)
        self.name = OPTION_FORMATS[options]
        self.mcq_answer, self.option_order = mcq_answer, option_order
        self.codes = torch.randn(len(COLOUR_NAMES), FEATURE_DIM, generator=torch.Generator().manual_seed(1234))

    def _int(self, n: int) -> int:
        return int(torch.randint(n, (1,), generator=self.gen))

    def _object(self, colour: int) -> torch.Tensor:
        return self.codes[colour] + torch.randn(FEATURE_DIM, generator=self.gen)

    def _options(self, correct: int) -> tuple[list[str], str]:
        others = [c for c in range(len(COLOUR_NAMES)) if c != correct]
        picked = [others[int(i)] for i in torch.randperm(len(others), generator=self.gen)[:3]]
        picked.insert(self._int(4), correct)
        def option(letter: str, c: int) -> tuple[str, ...]:
            tag, name = ("(", letter, ")"), tuple(self.name(COLOUR_NAMES[c]))
            return name + tag if self.option_order == "colour-first" else tag + name

        words = [w for letter, c in zip(LETTERS, picked) for w in option(letter, c)]
        return words, LETTERS[picked.index(correct)]

    def sample(self, task: str) -> tuple[list[str], torch.Tensor, list[str]]:
        """Question tokens (the teacher-forced answer tokens but the last included), object, answer tokens."""
        colour = self._int(len(COLOUR_NAMES))
        if task == "open":
            return ["<object>", "which", "colour", "?", "answer"], self._object(colour), [COLOUR_NAMES[colour]]
        options, letter = self._options(colour)
        if task == "mcq":
            question = ["<object>", "which", "colour", "?", *options, "answer"]
            if self.mcq_answer == "colour-letter":
                return [*question, COLOUR_NAMES[colour]], self._object(colour), [COLOUR_NAMES[colour], letter]
            return question, self._object(colour), [letter]
        unrelated = self._object(self._int(len(COLOUR_NAMES)))
        asked = self.name(COLOUR_NAMES[colour])
        return ["<object>", "which", "letter", "is", *asked, "?", *options, "answer"], unrelated, [letter]

    def batch(self, tasks: list[str]) -> tuple[torch.Tensor, ...]:
        """ids (B, L), objects, the answer positions (B, T) and answer ids (B, T; -100 past a row's answer)."""
        rows = [self.sample(t) for t in tasks]
        length, answer_len = max(len(r[0]) for r in rows), max(len(r[2]) for r in rows)
        ids = torch.full((len(rows), length), VOCAB["<pad>"])
        answer_at = torch.zeros(len(rows), answer_len, dtype=torch.long)
        answers = torch.full((len(rows), answer_len), -100)
        for i, (words, _, answer) in enumerate(rows):
            ids[i, : len(words)] = torch.tensor([VOCAB[w] for w in words])
            first = len(words) - len(answer)
            answer_at[i, : len(answer)] = torch.arange(first, len(words))
            answers[i, : len(answer)] = torch.tensor([VOCAB[w] for w in answer])
        return ids, torch.stack([r[1] for r in rows]), answer_at, answers


@torch.no_grad()
def mcq_accuracy(model: Toy, world: World, n: int) -> float:
    """Letter accuracy, greedy: with a colour before the letter, the model's own colour is fed back first."""
    ids, objects, answer_at, answers = world.batch(["mcq"] * n)
    if answers.shape[1] == 2:
        rows = torch.arange(n)
        ids[rows, answer_at[:, 1]] = model(ids, objects, answer_at[:, :1])[:, 0].argmax(-1)
        answer_at, answers = answer_at[:, 1:], answers[:, 1:]
    return float((model(ids, objects, answer_at)[:, 0].argmax(-1) == answers[:, 0]).float().mean())


def llm_lr(recipe: TrainConfig) -> float:
    """The learning rate of the recipe's LLM group in its stage."""
    return get_stage(recipe.stage, recipe.lrs).lrs["llm"] * recipe.lr_scale


def train(recipe: TrainConfig, mixture: dict[str, float], seed: int, steps: int, eval_every: int,
          options: str, mcq_weight: float, mcq_answer: str = "letter", option_order: str = "letter-first") -> list[dict]:
    """The recipe's LLM-stage optimizer (AdamW, no decay on vectors) and warmup-cosine schedule over ``steps``;
    the loss is the mean over the batch with the multiple-choice answers weighted ``mcq_weight`` times."""
    model = Toy(recipe.model.preset, seed)
    world = World(seed, options, mcq_answer, option_order)
    held = World(10_000 + seed, options, mcq_answer, option_order)
    lr = llm_lr(recipe)
    decay = {skip: [p for n, p in model.named_parameters() if no_decay(n, p) == skip] for skip in (False, True)}
    opt = build_optimizer([{"params": params, "lr": lr, "weight_decay": 0.0 if skip else recipe.optim.weight_decay}
                           for skip, params in decay.items()], recipe.optim)
    schedule = build_scheduler(opt, steps, recipe.optim)
    names, weights = list(mixture), torch.tensor(list(mixture.values()))
    curve = []
    for step in range(steps):
        picks = torch.multinomial(weights, recipe.batch_size, replacement=True, generator=world.gen)
        tasks = [names[int(i)] for i in picks]
        ids, objects, answer_at, answers = world.batch(tasks)
        answer_weights = torch.tensor([mcq_weight if t == "mcq" else 1.0 for t in tasks])[:, None] * (answers != -100)
        logits = model(ids, objects, answer_at)
        losses = nn.functional.cross_entropy(logits.flatten(0, 1), answers.flatten(), reduction="none")
        loss = (answer_weights.flatten() * losses).sum() / answer_weights.sum()
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), recipe.optim.grad_clip)
        opt.step()
        schedule.step()
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            curve.append({"step": step + 1, "loss": round(loss.item(), 4), "mcq_accuracy": mcq_accuracy(model, held, 512)})
            logger.info("%s seed %d step %d: loss %.3f, multiple choice %.1f %%", "+".join(names), seed, step + 1,
                         curve[-1]["loss"], 100 * curve[-1]["mcq_accuracy"])
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="nano", help="the recipe config whose LLM, optimizer and batch are used")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--mixtures", nargs="+", default=list(MIXTURES), choices=list(MIXTURES))
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--options", default="joined", choices=list(OPTION_FORMATS),
                        help="how options name a colour: 'pink' as the open answer, 'Ġpink' (the qwen2 "
                             "pre-tokenizer's spaced word) or 'Ġ' 'pink' (the options and words pre-tokenizers')")
    parser.add_argument("--mcq-weight", type=float, default=1.0, help="loss weight of a multiple-choice answer")
    parser.add_argument("--mcq-answer", default="letter", choices=("letter", "colour-letter"),
                        help="a multiple-choice answer: the letter, or the colour word then the letter")
    parser.add_argument("--option-order", default="letter-first", choices=("letter-first", "colour-first"),
                        help="an option: '( A ) w' (VideoRefer-Bench-Q's layout, the synthetic data's) or 'w ( A )'")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    recipe = load_recipe_config(args.recipe)
    runs = []
    for name in args.mixtures:
        for seed in args.seeds:
            start = time.perf_counter()
            curve = train(recipe, MIXTURES[name], seed, args.steps, args.eval_every, args.options,
                          args.mcq_weight, args.mcq_answer, args.option_order)
            runs.append({"mixture": name, "tasks": MIXTURES[name], "seed": seed, "curve": curve,
                         "seconds": round(time.perf_counter() - start, 1)})
    for r in runs:
        print(f"{r['mixture']:>16} seed {r['seed']}: " + " ".join(f"{c['step']}:{100 * c['mcq_accuracy']:.0f}" for c in r["curve"]))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        used = {"preset": recipe.model.preset, "batch_size": recipe.batch_size, "optim": asdict(recipe.optim),
                "lr": llm_lr(recipe)}
        args.out.write_text(json.dumps({"config": config, "recipe": used, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
